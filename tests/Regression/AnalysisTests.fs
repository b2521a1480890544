module VaeResearch.Regression.AnalysisTests

// End to end through the analysis layer:
//   1. the F# Interactive examples in scripts/ run with `dotnet fsi` against the Release build;
//   2. on the synthetic data set with true latent dimension d = 5, a VAE with D = 20 ends with about d
//      active units, and the activity recomputed from the checkpoint equals the last epoch of activity.csv;
//   3. `vae activity`, `vae parzen`, `vae report` and `vae tables` on small real-MNIST runs: the files they
//      write, the values they carry over, the report's references, and their errors.

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open System.Xml.Linq
open Expecto
open VaeResearch
open VaeResearch.Analysis
open VaeResearch.Training
open VaeResearch.TestSupport


let private progress (line: string) = printfn "%s" line

/// The repository root (this file is tests/Regression/AnalysisTests.fs), whatever the artifacts path.
let private repoRoot = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, "..", ".."))

/// Where the .fsx scripts load the assemblies from (VaeResearch.fsx: ../Cli/bin/Release/net10.0).
let private releaseOutput = Path.Combine(repoRoot, "src", "Cli", "bin", "Release", "net10.0")

/// Longest a child process may run before the test fails.
let private ProcessTimeout = TimeSpan.FromMinutes 4.0

/// Runs a process to completion: (exit code, stdout, stderr).
let private run (file: string) (args: string list) (workingDirectory: string) =
    let psi = ProcessStartInfo(file, args)
    psi.WorkingDirectory <- workingDirectory
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.UseShellExecute <- false
    use p = nonNull (Process.Start psi)
    let stdout = p.StandardOutput.ReadToEndAsync()
    let stderr = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit ProcessTimeout) then
        p.Kill true
        failtest $"{file} {String.Join(' ', args)} did not finish within {ProcessTimeout}"
    p.ExitCode, stdout.Result, stderr.Result

/// The CLI built beside the tests.
let private vae (args: string list) =
    let code, out, err = run "dotnet" (Path.Combine(AppContext.BaseDirectory, "vae.dll") :: args) repoRoot
    progress $"vae {String.Join(' ', args)} -> {code}"
    code, out, err

/// `vae ...` that must succeed; returns stdout.
let private vaeOk (args: string list) =
    let code, out, err = vae args
    Expect.equal code 0 ($"vae {String.Join(' ', args)} failed:\n{err}\n{out}")
    out

/// Makes sure the Release build the scripts load exists and is not older than the analysis sources: CI's
/// `dotnet fsi build.fsx test` builds the solution first; elsewhere this builds src/Cli once.
let private releaseBuild =
    lazy
        (let dll = Path.Combine(releaseOutput, "VaeResearch.Analysis.dll")
         let newest = Directory.GetFiles(Path.Combine(repoRoot, "src", "Analysis.FSharp"), "*.fs") |> Seq.map File.GetLastWriteTimeUtc |> Seq.max
         if not (File.Exists dll) || File.GetLastWriteTimeUtc dll < newest then
             progress "building src/Cli in Release for the .fsx scripts"
             let code, out, err = run "dotnet" [ "build"; Path.Combine(repoRoot, "src", "Cli"); "-c"; "Release"; "-nologo" ] repoRoot
             if code <> 0 then failtest $"dotnet build src/Cli -c Release failed:\n{out}\n{err}")

/// A fresh temporary folder, deleted by `use`.

// ---------------------------------------------------------------------------------------------
// 1. The .fsx scripts

/// Runs scripts/NAME with `dotnet fsi` (no arguments: it trains its own small runs); returns stdout.
let private script (name: string) =
    releaseBuild.Force()
    let clock = Stopwatch.StartNew()
    let code, out, err = run "dotnet" [ "fsi"; Path.Combine(repoRoot, "scripts", name) ] repoRoot
    progress $"dotnet fsi scripts/{name}: exit {code} in {clock.Elapsed.TotalSeconds:F1} s"
    Expect.equal code 0 ($"scripts/{name} failed:\n{err}\n{out}")
    out

/// Paths of .svg files a script reports, each checked to be well-formed XML.
let private checkSvgs (out: string) =
    let files = [ for m in Regex.Matches(out, @"(/[^\s,]+\.svg)") -> m.Groups[1].Value ]
    Expect.isNonEmpty files out
    for f in files do
        Expect.isTrue (File.Exists f) f
        XDocument.Load f |> ignore
    files

// ---------------------------------------------------------------------------------------------
// 2. Active units on the synthetic data set

/// The true latent dimension d of the synthetic data set.
let private TrueDimension = 5

/// The band for the final active units (A_u > 0.01) of a D = 20 VAE after 20 epochs on the synthetic set:
/// [d, d + 2]. Observed (seeds 0 and 1, 30 epochs): 5 units with A_u of 1.1-1.3, one weakly active unit
/// (A_u 0.02-0.26, still shrinking) and 14 below 0.004, i.e. 6 active units from epoch 17 on.
let private ActiveBand = TrueDimension, TrueDimension + 2

// ---------------------------------------------------------------------------------------------
// 3. The CLI on small MNIST runs

/// Two small MNIST runs (2-D VAE and an eVAE with 4 epitomes of 2 units), trained once for the module.
let private mnistRuns =
    lazy
        (let root = Directory.CreateTempSubdirectory("vae-analysis-runs-").FullName
         afterRunTests (fun () -> try Directory.Delete(root, true) with :? IOException -> ())
         let common = [ "--epochs"; "2"; "--train-subset"; "2000"; "--test-subset"; "500"; "--hidden"; "64,64" ]
         vaeOk ([ "train"; "--out"; Path.Combine(root, "z2"); "--latent"; "2" ] @ common) |> ignore
         vaeOk ([ "train"; "--out"; Path.Combine(root, "evae"); "--model"; "evae"; "--latent"; "8"; "--epitome-size"; "2" ] @ common) |> ignore
         root)

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Analysis" [

        testCase "scripts/compare-runs.fsx compares two runs with Parzen estimates and charts" <| fun () ->
            let out = script "compare-runs.fsx"
            for t in [ "0.01"; "0.02"; "0.1" ] do
                Expect.stringContains out $"final active units at A_u > {t}:" "the pivot at each of the papers' thresholds"
            Expect.stringContains out "activity per unit after the last epoch" "the per-unit frame"
            Expect.equal (Regex.Matches(out, "Parzen log-likelihood -?[0-9.]+ \\+/- [0-9.]+ nats").Count) 2 out
            Expect.equal (checkSvgs out |> List.map Path.GetFileName) ([ "bound.svg"; "active-units.svg" ]) "checkSvgs out |> List.map Path.GetFileName"

        testCase "scripts/activity-table.fsx prints the activity table, matching activity.csv" <| fun () ->
            let out = script "activity-table.fsx"
            for t in [ "0.01"; "0.02"; "0.1" ] do
                Expect.stringContains out ($"active units at {t}:") "out"
            Expect.stringContains out ("active units per epoch (activity.csv") "out"
            let m = Regex.Match(out, "largest difference from activity.csv's last epoch: (\\S+)")
            Expect.isTrue m.Success out
            Expect.isLessThan (Double.Parse(m.Groups[1].Value, Globalization.CultureInfo.InvariantCulture)) 1e-9 "Double.Parse(m.Groups[1].Value, Globalization.CultureInfo.InvariantCulture)"

        testCase "scripts/shade-plot.fsx writes the shade plot and prints one row per unit" <| fun () ->
            let out = script "shade-plot.fsx"
            Expect.equal (Regex.Matches(out, @"^\s+\d+\s+unit\s+\d+ \|", RegexOptions.Multiline).Count) 20 out
            Expect.equal (checkSvgs out |> List.map Path.GetFileName) ([ "vae-shade.svg"; "vae-units.svg" ]) "checkSvgs out |> List.map Path.GetFileName"

        testCase "a D = 20 VAE on synthetic data with d = 5 ends with about d active units" <| fun () ->
            use folder = new TempFolder("vae-analysis-e2e-")
            let config = TrainConfig(Dataset = "synthetic", SyntheticDimension = TrueDimension, Latent = 20, Epochs = 20, Seed = 0UL)
            let data = Trainer.LoadData(config, null, null)
            let quiet =
                { new ITrainingProgress with
                    member _.Info _ = ()
                    member _.EpochStarted(_, _, _) = ()
                    member _.BatchCompleted(_, _) = ()
                    member _.EpochCompleted row = if row.Epoch % 5 = 0 then progress $"epoch {row.Epoch}: {row.ActiveUnits} active units" }
            let clock = Stopwatch.StartNew()
            Trainer.Run(config, RunFolder.Create(folder.File "run"), false, data, quiet) |> ignore
            progress $"trained in {clock.Elapsed.TotalSeconds:F1} s"
            let stored = RunStore.load (folder.File "run")
            let history = Activity.history stored
            let final = Activity.final history
            let active = Activity.activeCount Activity.DefaultThreshold (final |> Array.map (fun u -> u.Activity))
            progress $"""final activity: {String.Join(", ", final |> Array.map (fun u -> u.Activity.ToString "G3"))}"""
            inRange (fst ActiveBand) (snd ActiveBand) active "active"
            Expect.equal ((RunStore.finalMetrics stored).Value.ActiveUnits) active ("metrics.csv counts the same units")
            // The same statistic recomputed from the checkpoint over the same test images.
            let recomputed = Activity.ofRun (TrainedRun.Load stored.Path) None
            for u in 0 .. 19 do
                within (float (1e-9 * max 1.0 final[u].Activity)) (float (recomputed[u].Activity)) (float (final[u].Activity)) ($"unit {u}")
                within (float (1e-9 * max 1.0 final[u].Kl)) (float (recomputed[u].Kl)) (float (final[u].Kl)) ($"unit {u} KL")

        testCase "vae activity prints the units and writes the CSV" <| fun () ->
            use folder = new TempFolder("vae-analysis-e2e-")
            let z2 = Path.Combine(mnistRuns.Force(), "z2")
            let out = vaeOk [ "activity"; z2; "--threshold"; "0.02"; "--csv"; folder.File "units.csv" ]
            Expect.stringContains out ("over 10000 test images (population variance)") "out"
            let train = vaeOk [ "activity"; z2; "--split"; "train"; "--subset"; "700" ]
            Expect.stringContains train ("over 700 train images") "train"
            Expect.stringContains out ("active units (of 2):") "out"
            Expect.stringContains out ("at 0.02") "out"
            let lines = File.ReadAllLines(folder.File "units.csv")
            Expect.equal (lines[0]) ("unit,activity,kl,active") "lines[0]"
            Expect.equal lines.Length 3 "lines.Length"

        testCase "vae parzen scores a run and the same samples from a .npy file identically" <| fun () ->
            use folder = new TempFolder("vae-analysis-e2e-")
            let z2 = Path.Combine(mnistRuns.Force(), "z2")
            vaeOk [ "sample"; z2; "--n"; "800"; "--npy"; folder.File "samples.npy" ] |> ignore
            vaeOk [ "parzen"; "--samples"; folder.File "samples.npy"; "--validation"; "200"; "--json"; folder.File "from-npy.json" ] |> ignore
            let out = vaeOk [ "parzen"; z2; "--n"; "800"; "--validation"; "200" ]
            Expect.stringContains out ("Parzen log-likelihood =") "out"
            let fromRun = RunStore.readParzen (Path.Combine(z2, RunStore.ParzenFile))
            let fromNpy = RunStore.readParzen (folder.File "from-npy.json")
            Expect.equal fromRun fromNpy "fromRun"
            Expect.equal ((fromRun.NSamples, fromRun.NValidation, fromRun.NTest)) ((800, 200, 10000)) "(fromRun.NSamples, fromRun.NValidation, fromRun.NTest)"
            Expect.contains Parzen.SigmaGrid fromRun.Sigma "sigma is a grid point"
            let fixedSigma = vaeOk [ "parzen"; "--samples"; folder.File "samples.npy"; "--sigma"; "0.2"; "--validation"; "200" ]
            Expect.stringContains fixedSigma ("sigma = 0.2000") "fixedSigma"

        testCase "vae parzen runs the full protocol (10,000 samples, 1,000 validation, 10,000 test images)" <| fun () ->
            use folder = new TempFolder("vae-analysis-e2e-")
            let evae = Path.Combine(mnistRuns.Force(), "evae")
            let clock = Stopwatch.StartNew()
            let out = vaeOk [ "parzen"; evae; "--json"; folder.File "parzen.json" ]
            progress $"full Parzen protocol: {clock.Elapsed.TotalSeconds:F1} s wall, including process start and MNIST load: {out.Trim()}"
            let result = RunStore.readParzen (folder.File "parzen.json")
            Expect.equal ((result.NSamples, result.NValidation, result.NTest, result.SigmaSearch.Length)) ((10000, 1000, 10000, 10)) "(result.NSamples, result.NValidation, result.NTest, result.SigmaSearch.Length)"
            Expect.isTrue (Double.IsFinite result.LogLikelihood && result.StandardError > 0.0) ($"{result}")

        testCase "vae report writes an offline page that references only the files it wrote" <| fun () ->
            use folder = new TempFolder("vae-analysis-e2e-")
            let root = mnistRuns.Force()
            let z2, evae = Path.Combine(root, "z2"), Path.Combine(root, "evae")
            vaeOk [ "eval"; z2; "--k"; "10"; "--subset"; "100" ] |> ignore
            let outDir = folder.File "report"
            vaeOk [ "report"; z2; evae; "--out"; outDir; "--samples"; "36" ] |> ignore
            let html = File.ReadAllText(Path.Combine(outDir, "index.html"))
            let referenced = [ for m in Regex.Matches(html, "(?:src|href)=\"([^\"]*)\"") -> m.Groups[1].Value ] |> List.distinct
            let files = Directory.GetFiles outDir |> Array.map (fun f -> nonNull (Path.GetFileName f)) |> Array.filter ((<>) "index.html") |> Array.sort
            // Every reference is a plain file name in the folder; every file there is shown; nothing points elsewhere.
            for r in referenced do
                Expect.isMatch r ("^[A-Za-z0-9._-]+$") ("a relative file name")
                Expect.isTrue (File.Exists(Path.Combine(outDir, r))) r
            Expect.equal (referenced |> List.sort |> List.toArray) files "referenced |> List.sort |> List.toArray"
            notContains html ("http:") "html"
            notContains html ("https:") "html"
            for expected in [ "bound.svg"; "active-units.svg"; "z2-shade.svg"; "z2-units.svg"; "z2-scatter.svg"; "z2-scatter.png"; "z2-manifold.png"
                              "z2-reconstructions.png"; "z2-samples.png"; "evae-epitomes.png"; "evae-shade.svg" ] do
                Expect.contains files expected "the report's files"
            for f in files do
                let path = Path.Combine(outDir, f)
                if f.EndsWith ".svg" then XDocument.Load path |> ignore
                else Expect.equal ((File.ReadAllBytes path)[.. 3]) ([| 137uy; 80uy; 78uy; 71uy |]) f
            Expect.stringContains html ("z2") "html"
            Expect.stringContains html ("NLL") "html"

        testCase "vae tables lists every run under a folder with its NLL, active units and Parzen estimate" <| fun () ->
            use folder = new TempFolder("vae-analysis-e2e-")
            let root = mnistRuns.Force()
            let z2 = Path.Combine(root, "z2")
            vaeOk [ "eval"; z2; "--k"; "5"; "--subset"; "50" ] |> ignore
            vaeOk [ "parzen"; z2; "--n"; "300"; "--validation"; "100" ] |> ignore
            let out = vaeOk [ "tables"; root; "--out"; folder.File "results.md" ]
            let markdown = File.ReadAllText(folder.File "results.md")
            Expect.equal out markdown "out"
            Expect.stringContains markdown ("| evae | evae D=8 K=2 s=2 k=1 | 2 |") "markdown"
            Expect.stringContains markdown ("| z2 | vae D=2 k=1 | 2 |") "markdown"
            let csv = File.ReadAllLines(folder.File "results.csv")
            let header = csv[0].Split(',')
            let z2Row = csv |> Array.find (fun l -> l.StartsWith "z2,")
            let cell (name: string) = z2Row.Split(',')[Array.IndexOf(header, name)]
            let eval = RunStore.readEval (Path.Combine(z2, "eval.json"))
            let parzen = RunStore.readParzen (Path.Combine(z2, RunStore.ParzenFile))
            let number (s: string) = Double.Parse(s, Globalization.CultureInfo.InvariantCulture)
            Expect.equal (number (cell "nll")) eval.Nll "number (cell \"nll\")"
            Expect.equal (number (cell "parzen_log_likelihood")) parzen.LogLikelihood "number (cell \"parzen_log_likelihood\")"
            Expect.equal (cell "active_units") ("2") "cell \"active_units\""
            let evaeRow = csv |> Array.find (fun l -> l.StartsWith "evae,")
            Expect.equal (evaeRow.Split(',')[Array.IndexOf(header, "nll")]) ("") ("no eval.json: empty cell")

        testCase "the analysis commands fail with one clear line for bad input" <| fun () ->
            use folder = new TempFolder("vae-analysis-e2e-")
            let fails (args: string list) (expected: string) =
                let code, _, err = vae args
                Expect.notEqual code 0 (String.Join(' ', args))
                Expect.stringContains err expected (String.Join(' ', args))
                notContains err ("   at ") ("no stack trace")
            fails [ "report"; folder.Path; "--out"; folder.File "r" ] "config.json"
            fails [ "activity"; folder.File "missing" ] "does not exist"
            fails [ "parzen" ] "give either RUN or --samples"
            fails [ "tables"; folder.Path; "--out"; folder.File "t.md" ] "no run folders"
            fails [ "tables"; mnistRuns.Force(); "--out"; folder.File "t.csv" ] "Markdown"
            File.WriteAllText(folder.File "bad.npy", "not numpy")
            fails [ "parzen"; "--samples"; folder.File "bad.npy" ] "bad.npy"
            // A run whose metrics.csv lost a column: the error names the file and the column.
            let copy = folder.File "broken"
            Directory.CreateDirectory copy |> ignore
            for f in Directory.GetFiles(Path.Combine(mnistRuns.Force(), "z2")) do
                File.Copy(f, Path.Combine(copy, nonNull (Path.GetFileName f)))
            let metrics = Path.Combine(copy, "metrics.csv")
            let lines = File.ReadAllLines metrics
            File.WriteAllLines(metrics, lines |> Array.map (fun l -> String.Join(',', l.Split(',') |> Array.removeAt 5)))
            fails [ "report"; copy; "--out"; folder.File "r2" ] "column 'kl'"
            fails [ "tables"; folder.Path; "--out"; folder.File "t2.md" ] "metrics.csv"
    ]
