// VaeResearch build script: plain `dotnet fsi build.fsx TARGET [ARGS...]`, no packages.
//
//   build   Release build of the whole solution
//   test    build, run every test project, print "N passed, N failed" from the real counts
//   bench   build the CLI and run `vae bench` (extra arguments are passed on, e.g. --json FILE)
//   demo    the main job: a short demo on real MNIST with a report
//   clean   remove build outputs and test results

open System
open System.Diagnostics
open System.IO
open System.Xml.Linq

let root = __SOURCE_DIRECTORY__
let solution = Path.Combine(root, "VaeResearch.sln")
let resultsDir = Path.Combine(root, "artifacts", "test-results")

/// Runs a process in the repository root, streaming its output; returns the exit code.
let run (file: string) (args: string list) =
    let psi = ProcessStartInfo(file, args)
    psi.WorkingDirectory <- root
    psi.UseShellExecute <- false
    use p = Process.Start psi
    p.WaitForExit()
    p.ExitCode

let orFail what code =
    if code <> 0 then
        eprintfn "build.fsx: %s failed (exit code %d)" what code
        exit code

let build () =
    run "dotnet" [ "build"; solution; "-c"; "Release"; "-nologo"; "-clp:ErrorsOnly;Summary" ]
    |> orFail "build"

/// The test programs (Expecto): name and assembly, relative to the repository root.
let testPrograms =
    [ "Properties", "tests/Properties/bin/Release/net10.0/VaeResearch.Properties.dll"
      "Regression", "tests/Regression/bin/Release/net10.0/VaeResearch.Regression.dll" ]

/// Starts one test program writing its JUnit summary to artifacts/test-results/NAME.xml; its output is
/// streamed line by line with the program's name in front (the two programs run side by side).
let startTests (name: string, dll: string) (extra: string list) =
    let junit = Path.Combine(resultsDir, name + ".xml")
    let psi = ProcessStartInfo("dotnet", [ Path.Combine(root, dll); "--no-spinner"; "--colours"; "0"; "--junit-summary"; junit ] @ extra)
    psi.WorkingDirectory <- root
    psi.UseShellExecute <- false
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    let p = new Process(StartInfo = psi)
    let echo (e: DataReceivedEventArgs) = match e.Data with null -> () | line -> lock stdout (fun () -> printfn "[%s] %s" name line)
    p.OutputDataReceived.Add echo
    p.ErrorDataReceived.Add echo
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p, junit

/// One test's outcome as Expecto's JUnit summary records it.
type Outcome = { Name: string; Failure: string option; Skipped: string option }

/// The outcomes in a JUnit summary: a <testcase> with <failure>/<error> failed, with <skipped> was skipped.
let readJUnit (file: string) =
    let doc = XDocument.Load file
    [ for case in doc.Descendants() |> Seq.filter (fun e -> e.Name.LocalName = "testcase") ->
        let child (local: string) =
            case.Elements() |> Seq.tryFind (fun e -> e.Name.LocalName = local)
            |> Option.map (fun e ->
                let message = match e.Attribute(XName.Get "message") with null -> "" | a -> a.Value
                if e.Value.Trim() = "" then message else e.Value.Trim())
        let attribute (n: string) = match case.Attribute(XName.Get n) with null -> "" | a -> a.Value
        let name = match attribute "classname" with "" -> attribute "name" | c -> c + "." + attribute "name"
        { Name = name
          Failure = child "failure" |> Option.orElse (child "error")
          Skipped = child "skipped" } ]

/// Runs both test programs (`--filter TEXT` keeps the tests whose full name contains TEXT), prints every
/// failure and skip with its message (a failing property's message holds its FsCheck replay seed), and
/// ends with "N passed, N failed, N skipped" counted from the JUnit summaries.
let test (args: string list) =
    let extra =
        match args with
        | [] -> []
        | [ "--filter"; text ] -> [ "--match"; text ]
        | _ ->
            eprintfn "usage: dotnet fsi build.fsx test [--filter TEXT]"
            exit 2
    build ()
    if Directory.Exists resultsDir then Directory.Delete(resultsDir, true)
    Directory.CreateDirectory resultsDir |> ignore
    let started = testPrograms |> List.map (fun program -> program, startTests program extra)
    let outcomes =
        [ for (name, _), (p, junit) in started do
            p.WaitForExit()
            if File.Exists junit then yield! readJUnit junit
            else yield { Name = name; Failure = Some $"{name} exited with code {p.ExitCode} and wrote no results"; Skipped = None } ]
    let failed = outcomes |> List.filter (fun o -> o.Failure.IsSome)
    let skipped = outcomes |> List.filter (fun o -> o.Failure.IsNone && o.Skipped.IsSome)
    let passed = outcomes.Length - failed.Length - skipped.Length
    for o in skipped do printfn "SKIPPED %s: %s" o.Name (defaultArg o.Skipped "")
    for o in failed do printfn "FAILED %s:\n%s\n" o.Name (defaultArg o.Failure "")
    printfn "%d passed, %d failed, %d skipped" passed failed.Length skipped.Length
    if failed.Length > 0 || passed = 0 then exit 1

let vae (args: string list) =
    run (Path.Combine(root, "vae")) args |> orFail ("vae " + String.Join(" ", args))

/// The main job: a short demo on real MNIST (fetched on first use) that trains a VAE, evaluates its
/// log-likelihood and writes samples, reconstructions and a report under runs/demo.
let demo (args: string list) =
    let epochs = match args with [ e ] -> e | _ -> "20"
    let dir = Path.Combine(root, "runs", "demo")
    if Directory.Exists dir then Directory.Delete(dir, true)
    let run' = Path.Combine(dir, "vae")
    vae [ "data"; "fetch" ]
    // NOTE: the first 50,000 training images only, so that `vae parzen` chooses sigma on images 50,000-50,999,
    // which the model never saw (Goodfellow et al.'s protocol).
    vae [ "train"; "--out"; run'; "--latent"; "50"; "--epochs"; epochs; "--train-subset"; "50000"; "--seed"; "1" ]
    vae [ "eval"; run'; "--k"; "5000"; "--subset"; "1000" ]
    vae [ "sample"; run'; "--n"; "100"; "--png"; Path.Combine(dir, "samples.png") ]
    vae [ "reconstruct"; run'; "--n"; "50"; "--png"; Path.Combine(dir, "reconstructions.png") ]
    vae [ "activity"; run' ]
    vae [ "parzen"; run' ]
    vae [ "report"; run'; "--out"; Path.Combine(dir, "report") ]
    vae [ "tables"; dir; "--out"; Path.Combine(dir, "results.md") ]
    printfn "demo: report in %s; run folder %s" (Path.Combine(dir, "report", "index.html")) run'

let targets : (string * string * (string list -> unit)) list =
    [ "build", "Release build of the whole solution", (fun _ -> build ())
      "test", "build and run all tests (--filter TEXT: only those whose name contains TEXT); prints 'N passed, N failed, N skipped'", test
      "bench", "run `vae bench` (arguments are passed on)", (fun args -> vae ("bench" :: args))
      "demo", "the main job: train and evaluate a VAE on real MNIST (optional argument: epochs, default 20)", demo
      "clean", "remove build outputs and test results", (fun _ ->
        for dir in Directory.GetDirectories(root, "*", SearchOption.AllDirectories) do
            let name = Path.GetFileName dir
            if (name = "bin" || name = "obj") && Directory.Exists dir && not (dir.Contains "node_modules") then
                Directory.Delete(dir, true)
        if Directory.Exists resultsDir then Directory.Delete(resultsDir, true)) ]

let usage () =
    eprintfn "usage: dotnet fsi build.fsx TARGET [ARGS...]"
    eprintfn "targets:"
    for name, doc, _ in targets do eprintfn "  %-6s %s" name doc

match fsi.CommandLineArgs |> Array.toList |> List.tail with
| [] ->
    usage ()
    exit 2
| target :: rest ->
    match targets |> List.tryFind (fun (n, _, _) -> n = target) with
    | Some (_, _, action) -> action rest
    | None ->
        eprintfn "build.fsx: unknown target '%s'" target
        usage ()
        exit 2
