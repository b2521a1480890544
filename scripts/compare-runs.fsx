// Compare two runs with Deedle frames: the runs frame's settings and final metrics side by side, final
// active units pivoted by KL weight and latent size at the papers' three thresholds, the activity of
// every unit across runs, the Parzen estimate of each (1,000 samples, a quick version of the protocol),
// and the bound and active-unit charts as SVG.
//
//   dotnet fsi scripts/compare-runs.fsx [RUN_A RUN_B]

#load "ExampleRuns.fsx"

open System.IO
open Deedle
open VaeResearch.Analysis
open VaeResearch.Training
open ExampleRuns

let runs = runsOrExamples 2 |> RunStore.loadMany

for run in runs do
    printfn "%s" (RunStore.summary run)

// One row per run: a few of the runs frame's columns.
let frame = RunStore.runsFrame (RunStore.summaries Activity.DefaultThreshold runs)
printfn "%s" (frame.Columns.[ [ "model"; "latent"; "kl_weight"; "completed_epochs"; "test_bound"; "kl"; "active_units" ] ].Format())

// Final active units by KL weight (rows) and latent size (columns), at each of the papers' thresholds.
for t in Activity.PaperThresholds do
    printfn "final active units at A_u > %g:" t
    RunStore.runsFrame (RunStore.summaries t runs)
    |> Frame.pivotTable (fun _ r -> r.GetAs<float> "kl_weight") (fun _ r -> r.GetAs<int> "latent") (fun f -> f.GetColumn<float> "active_units" |> Stats.mean)
    |> fun pivot -> printfn "%s" (pivot.Format())

// A_u of every unit after the last epoch, one column per run.
printfn "activity per unit after the last epoch (activity.csv):"
printfn "%s" ((RunStore.activityFrame runs |> Activity.finalByUnit).Format())

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
