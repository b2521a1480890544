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
open NUnit.Framework
open VaeResearch
open VaeResearch.Analysis
open VaeResearch.Training
open VaeResearch.TestSupport


let private progress (line: string) = TestContext.Progress.WriteLine line

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
        Assert.Fail $"{file} {String.Join(' ', args)} did not finish within {ProcessTimeout}"
    p.ExitCode, stdout.Result, stderr.Result

/// The CLI built beside the tests.
let private vae (args: string list) =
    let code, out, err = run "dotnet" (Path.Combine(AppContext.BaseDirectory, "vae.dll") :: args) repoRoot
    progress $"vae {String.Join(' ', args)} -> {code}"
    code, out, err

/// `vae ...` that must succeed; returns stdout.
let private vaeOk (args: string list) =
    let code, out, err = vae args
    Assert.That(code, equals 0, $"vae {String.Join(' ', args)} failed:\n{err}\n{out}")
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
             if code <> 0 then Assert.Fail $"dotnet build src/Cli -c Release failed:\n{out}\n{err}")

/// A fresh temporary folder, deleted by `use`.

// ---------------------------------------------------------------------------------------------
// 1. The .fsx scripts

/// Runs scripts/NAME with `dotnet fsi` (no arguments: it trains its own small runs); returns stdout.
let private script (name: string) =
    releaseBuild.Force()
    let clock = Stopwatch.StartNew()
    let code, out, err = run "dotnet" [ "fsi"; Path.Combine(repoRoot, "scripts", name) ] repoRoot
    progress $"dotnet fsi scripts/{name}: exit {code} in {clock.Elapsed.TotalSeconds:F1} s"
    Assert.That(code, equals 0, $"scripts/{name} failed:\n{err}\n{out}")
    out

/// Paths of .svg files a script reports, each checked to be well-formed XML.
let private checkSvgs (out: string) =
    let files = [ for m in Regex.Matches(out, @"(/[^\s,]+\.svg)") -> m.Groups[1].Value ]
    Assert.That(files, Is.Not.Empty, out)
    for f in files do
        Assert.That(File.Exists f, f)
        XDocument.Load f |> ignore
    files

[<Test>]
let ``scripts/compare-runs.fsx compares two runs with Parzen estimates and charts`` () =
    let out = script "compare-runs.fsx"
    Assert.That(out, Does.Contain("active units at 0.01 / 0.02 / 0.1"))
    Assert.That(Regex.Matches(out, "Parzen log-likelihood -?[0-9.]+ \\+/- [0-9.]+ nats").Count, equals 2, out)
    Assert.That(checkSvgs out |> List.map Path.GetFileName, equals [ "bound.svg"; "active-units.svg" ])

[<Test>]
let ``scripts/activity-table.fsx prints the activity table, matching activity.csv`` () =
    let out = script "activity-table.fsx"
    for t in [ "0.01"; "0.02"; "0.1" ] do
        Assert.That(out, Does.Contain($"active units at {t}:"))
    Assert.That(out, Does.Contain("active units per epoch (activity.csv"))
    let m = Regex.Match(out, "largest difference from activity.csv's last epoch: (\\S+)")
    Assert.That(m.Success, out)
    Assert.That(Double.Parse(m.Groups[1].Value, Globalization.CultureInfo.InvariantCulture), Is.LessThan 1e-9)

[<Test>]
let ``scripts/shade-plot.fsx writes the shade plot and prints one row per unit`` () =
    let out = script "shade-plot.fsx"
    Assert.That(Regex.Matches(out, @"^\s+\d+\s+unit\s+\d+ \|", RegexOptions.Multiline).Count, equals 20, out)
    Assert.That(checkSvgs out |> List.map Path.GetFileName, equals [ "vae-shade.svg"; "vae-units.svg" ])

// ---------------------------------------------------------------------------------------------
// 2. Active units on the synthetic data set

/// The true latent dimension d of the synthetic data set.
let private TrueDimension = 5

/// The band for the final active units (A_u > 0.01) of a D = 20 VAE after 20 epochs on the synthetic set:
/// [d, d + 2]. Observed (seeds 0 and 1, 30 epochs): 5 units with A_u of 1.1-1.3, one weakly active unit
/// (A_u 0.02-0.26, still shrinking) and 14 below 0.004, i.e. 6 active units from epoch 17 on.
let private ActiveBand = TrueDimension, TrueDimension + 2

[<Test>]
let ``a D = 20 VAE on synthetic data with d = 5 ends with about d active units`` () =
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
    Assert.That(active, Is.InRange(fst ActiveBand, snd ActiveBand))
    Assert.That((RunStore.finalMetrics stored).Value.ActiveUnits, equals active, "metrics.csv counts the same units")
    // The same statistic recomputed from the checkpoint over the same test images.
    let recomputed = Activity.ofRun (TrainedRun.Load stored.Path) None
    for u in 0 .. 19 do
        Assert.That(recomputed[u].Activity, Is.EqualTo(final[u].Activity).Within(1e-9 * max 1.0 final[u].Activity), $"unit {u}")
        Assert.That(recomputed[u].Kl, Is.EqualTo(final[u].Kl).Within(1e-9 * max 1.0 final[u].Kl), $"unit {u} KL")

// ---------------------------------------------------------------------------------------------
// 3. The CLI on small MNIST runs

/// Two small MNIST runs (2-D VAE and an eVAE with 4 epitomes of 2 units), trained once for the module.
let private mnistRuns =
    lazy
        (let root = Directory.CreateTempSubdirectory("vae-analysis-runs-").FullName
         let common = [ "--epochs"; "2"; "--train-subset"; "2000"; "--test-subset"; "500"; "--hidden"; "64,64" ]
         vaeOk ([ "train"; "--out"; Path.Combine(root, "z2"); "--latent"; "2" ] @ common) |> ignore
         vaeOk ([ "train"; "--out"; Path.Combine(root, "evae"); "--model"; "evae"; "--latent"; "8"; "--epitome-size"; "2" ] @ common) |> ignore
         root)

[<OneTimeTearDown>]
let removeRuns () =
    if mnistRuns.IsValueCreated then
        try Directory.Delete(mnistRuns.Value, true) with :? IOException -> ()

[<Test>]
let ``vae activity prints the units and writes the CSV`` () =
    use folder = new TempFolder("vae-analysis-e2e-")
    let z2 = Path.Combine(mnistRuns.Force(), "z2")
    let out = vaeOk [ "activity"; z2; "--threshold"; "0.02"; "--csv"; folder.File "units.csv" ]
    Assert.That(out, Does.Contain("over 10000 test images (population variance)"))
    let train = vaeOk [ "activity"; z2; "--split"; "train"; "--subset"; "700" ]
    Assert.That(train, Does.Contain("over 700 train images"))
    Assert.That(out, Does.Contain("active units (of 2):"))
    Assert.That(out, Does.Contain("at 0.02"))
    let lines = File.ReadAllLines(folder.File "units.csv")
    Assert.That(lines[0], equals "unit,activity,kl,active")
    Assert.That(lines.Length, equals 3)

[<Test>]
let ``vae parzen scores a run and the same samples from a .npy file identically`` () =
    use folder = new TempFolder("vae-analysis-e2e-")
    let z2 = Path.Combine(mnistRuns.Force(), "z2")
    vaeOk [ "sample"; z2; "--n"; "800"; "--npy"; folder.File "samples.npy" ] |> ignore
    vaeOk [ "parzen"; "--samples"; folder.File "samples.npy"; "--validation"; "200"; "--json"; folder.File "from-npy.json" ] |> ignore
    let out = vaeOk [ "parzen"; z2; "--n"; "800"; "--validation"; "200" ]
    Assert.That(out, Does.Contain("Parzen log-likelihood ="))
    let fromRun = RunStore.readParzen (Path.Combine(z2, RunStore.ParzenFile))
    let fromNpy = RunStore.readParzen (folder.File "from-npy.json")
    Assert.That(fromRun, equals fromNpy)
    Assert.That((fromRun.NSamples, fromRun.NValidation, fromRun.NTest), equals ((800, 200, 10000)))
    Assert.That(Parzen.SigmaGrid, Does.Contain fromRun.Sigma)
    let fixedSigma = vaeOk [ "parzen"; "--samples"; folder.File "samples.npy"; "--sigma"; "0.2"; "--validation"; "200" ]
    Assert.That(fixedSigma, Does.Contain("sigma = 0.2000"))

[<Test>]
let ``vae parzen runs the full protocol (10,000 samples, 1,000 validation, 10,000 test images)`` () =
    use folder = new TempFolder("vae-analysis-e2e-")
    let evae = Path.Combine(mnistRuns.Force(), "evae")
    let clock = Stopwatch.StartNew()
    let out = vaeOk [ "parzen"; evae; "--json"; folder.File "parzen.json" ]
    progress $"full Parzen protocol: {clock.Elapsed.TotalSeconds:F1} s wall, including process start and MNIST load: {out.Trim()}"
    let result = RunStore.readParzen (folder.File "parzen.json")
    Assert.That((result.NSamples, result.NValidation, result.NTest, result.SigmaSearch.Length), equals ((10000, 1000, 10000, 10)))
    Assert.That(Double.IsFinite result.LogLikelihood && result.StandardError > 0.0, $"{result}")

[<Test>]
let ``vae report writes an offline page that references only the files it wrote`` () =
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
        Assert.That(r, Does.Match "^[A-Za-z0-9._-]+$", "a relative file name")
        Assert.That(File.Exists(Path.Combine(outDir, r)), r)
    Assert.That(referenced |> List.sort |> List.toArray, equals files)
    Assert.That(html, Does.Not.Contain "http:")
    Assert.That(html, Does.Not.Contain "https:")
    for expected in [ "bound.svg"; "active-units.svg"; "z2-shade.svg"; "z2-units.svg"; "z2-scatter.svg"; "z2-scatter.png"; "z2-manifold.png"
                      "z2-reconstructions.png"; "z2-samples.png"; "evae-epitomes.png"; "evae-shade.svg" ] do
        Assert.That(files, Does.Contain expected)
    for f in files do
        let path = Path.Combine(outDir, f)
        if f.EndsWith ".svg" then XDocument.Load path |> ignore
        else Assert.That((File.ReadAllBytes path)[.. 3], equals [| 137uy; 80uy; 78uy; 71uy |], f)
    Assert.That(html, Does.Contain("z2"))
    Assert.That(html, Does.Contain("NLL"))

[<Test>]
let ``vae tables lists every run under a folder with its NLL, active units and Parzen estimate`` () =
    use folder = new TempFolder("vae-analysis-e2e-")
    let root = mnistRuns.Force()
    let z2 = Path.Combine(root, "z2")
    vaeOk [ "eval"; z2; "--k"; "5"; "--subset"; "50" ] |> ignore
    vaeOk [ "parzen"; z2; "--n"; "300"; "--validation"; "100" ] |> ignore
    let out = vaeOk [ "tables"; root; "--out"; folder.File "results.md" ]
    let markdown = File.ReadAllText(folder.File "results.md")
    Assert.That(out, equals markdown)
    Assert.That(markdown, Does.Contain "| evae | evae D=8 K=2 s=2 k=1 | 2 |")
    Assert.That(markdown, Does.Contain "| z2 | vae D=2 k=1 | 2 |")
    let csv = File.ReadAllLines(folder.File "results.csv")
    let header = csv[0].Split(',')
    let z2Row = csv |> Array.find (fun l -> l.StartsWith "z2,")
    let cell (name: string) = z2Row.Split(',')[Array.IndexOf(header, name)]
    let eval = RunStore.readEval (Path.Combine(z2, "eval.json"))
    let parzen = RunStore.readParzen (Path.Combine(z2, RunStore.ParzenFile))
    let number (s: string) = Double.Parse(s, Globalization.CultureInfo.InvariantCulture)
    Assert.That(number (cell "nll"), equals eval.Nll)
    Assert.That(number (cell "parzen_log_likelihood"), equals parzen.LogLikelihood)
    Assert.That(cell "active_units", equals "2")
    let evaeRow = csv |> Array.find (fun l -> l.StartsWith "evae,")
    Assert.That(evaeRow.Split(',')[Array.IndexOf(header, "nll")], equals "", "no eval.json: empty cell")

[<Test>]
let ``the analysis commands fail with one clear line for bad input`` () =
    use folder = new TempFolder("vae-analysis-e2e-")
    let fails (args: string list) (expected: string) =
        let code, _, err = vae args
        Assert.That(code, Is.Not.EqualTo 0, String.Join(' ', args))
        Assert.That(err, Does.Contain expected, String.Join(' ', args))
        Assert.That(err, Does.Not.Contain "   at ", "no stack trace")
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
