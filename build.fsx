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

/// Sums the counters of every TRX file the test run wrote.
let countResults () =
    let files =
        if Directory.Exists resultsDir then Directory.GetFiles(resultsDir, "*.trx", SearchOption.AllDirectories)
        else [||]
    let counter (name: string) =
        files
        |> Array.sumBy (fun f ->
            let doc = XDocument.Load f
            doc.Descendants()
            |> Seq.filter (fun e -> e.Name.LocalName = "Counters")
            |> Seq.sumBy (fun e ->
                match e.Attribute(XName.Get name) with
                | null -> 0
                | a -> int a.Value))
    files.Length, counter "passed", counter "failed" + counter "error" + counter "timeout" + counter "aborted"

let test extra =
    build ()
    if Directory.Exists resultsDir then Directory.Delete(resultsDir, true)
    let code =
        run "dotnet" ([ "test"; solution; "-c"; "Release"; "--no-build"; "-nologo"
                        "--logger"; "trx"; "--logger"; "console;verbosity=normal"
                        "--results-directory"; resultsDir ] @ extra)
    let files, passed, failed = countResults ()
    if files = 0 then eprintfn "build.fsx: the test run wrote no results"
    printfn "%d passed, %d failed" passed failed
    if code <> 0 || failed > 0 || passed = 0 then exit (max code 1)

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
    vae [ "train"; "--out"; run'; "--latent"; "50"; "--epochs"; epochs; "--seed"; "1" ]
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
      "test", "build and run all tests; prints 'N passed, N failed'", test
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
