// Compare two runs: final metrics side by side, the active units at the papers' three thresholds, the
// Parzen estimate of each (1,000 samples, a quick version of the protocol), and the bound and
// active-unit charts as SVG.
//
//   dotnet fsi scripts/compare-runs.fsx [RUN_A RUN_B]

#load "ExampleRuns.fsx"

open System.IO
open VaeResearch.Analysis
open VaeResearch.Training
open ExampleRuns

let runs = runsOrExamples 2 |> RunStore.loadMany

for run in runs do
    printfn "%s" (RunStore.summary run)

printfn ""
printfn "%-16s %12s %12s %8s %s" "run" "test bound" "KL" "epochs" "active units at 0.01 / 0.02 / 0.1"
for run in runs do
    let final = Activity.final (Activity.history run) |> Array.map (fun u -> u.Activity)
    let counts = Activity.PaperThresholds |> Array.map (fun t -> string (Activity.activeCount t final)) |> String.concat " / "
    match RunStore.finalMetrics run with
    | Some m -> printfn "%-16s %12.2f %12.2f %8d %s" run.Name m.TestBound m.Kl m.Epoch counts
    | None -> printfn "%-16s (no completed epoch)" run.Name

// Parzen estimates with 1,000 samples and 500 validation images (the full protocol: `vae parzen RUN`).
printfn ""
for run in runs do
    let trained = TrainedRun.Load run.Path
    let samples = Parzen.samplesOfRun trained 1000 0UL
    let validation, test = Parzen.referenceData (Some trained.Config) None 500
    let result = Parzen.evaluate samples validation test None
    printfn "%-16s Parzen log-likelihood %.1f +/- %.1f nats (sigma %.3f, %d samples, %d test images)"
        run.Name result.LogLikelihood result.StandardError result.Sigma result.NSamples result.NTest

let out = scratch "compare-runs"
Charts.bound runs |> Svg.save (Path.Combine(out, "bound.svg"))
Charts.activeUnits runs Activity.DefaultThreshold |> Svg.save (Path.Combine(out, "active-units.svg"))
printfn ""
printfn "charts: %s, %s" (Path.Combine(out, "bound.svg")) (Path.Combine(out, "active-units.svg"))
