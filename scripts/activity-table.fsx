// The activity table of a run: A_u = Cov_x(E_q[u]) and the KL of every unit over the whole test set,
// recomputed from the checkpoint, sorted by activity, with the active counts at 0.01, 0.02 and 0.1 and
// the per-epoch active counts recorded during training (activity.csv).
//
//   dotnet fsi scripts/activity-table.fsx [RUN]

#load "ExampleRuns.fsx"

open Deedle
open VaeResearch.Analysis
open VaeResearch.Training
open ExampleRuns

let run = runsOrExamples 1 |> List.head |> RunStore.load
let trained = TrainedRun.Load run.Path
let units = Activity.ofRun trained None
let activity = units |> Array.map (fun u -> u.Activity)

printfn "%s" (RunStore.summary run)
printfn "%5s %5s %12s %10s  %s" "rank" "unit" "activity" "KL" "active (0.01)"
for rank, u in Array.indexed (Activity.sortedUnits activity |> Array.map (fun i -> units[i])) do
    printfn "%5d %5d %12.4g %10.4f  %s" (rank + 1) u.Unit u.Activity u.Kl (if u.Activity > Activity.DefaultThreshold then "yes" else "")
for t in Activity.PaperThresholds do
    printfn "active units at %g: %d of %d" t (Activity.activeCount t activity) activity.Length

// Per-epoch active counts from the run's activity frame (rows: run x epoch x unit).
let counts =
    Activity.activeByEpoch Activity.DefaultThreshold (RunStore.activityFrame [ run ])
    |> Series.observations
    |> Seq.map (fun ((_, epoch), count) -> $"{epoch}:{count}")
    |> String.concat " "
printfn "active units per epoch (activity.csv, A_u > 0.01): %s" counts

// The checkpoint's activity agrees with the last row of activity.csv when training evaluated the whole test set.
if not run.Config.TestSubset.HasValue then
    let recorded = Activity.final (Activity.history run)
    let largest = Array.map2 (fun (a: UnitActivity) (b: UnitActivity) -> abs (a.Activity - b.Activity)) units recorded |> Array.max
    printfn "largest difference from activity.csv's last epoch: %.2g" largest
