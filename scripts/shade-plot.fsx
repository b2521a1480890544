// The activity shade plot of a run (activity paper, Figure 3.3): log10 A_u per unit and epoch, units
// sorted by their activity after the first epoch. Writes the SVG (and the sorted activity with KL of
// the eVAE paper's Figure 1) and prints a text version.
//
//   dotnet fsi scripts/shade-plot.fsx [RUN]

#load "ExampleRuns.fsx"

open System
open System.IO
open Deedle
open VaeResearch.Analysis
open ExampleRuns

let run = runsOrExamples 1 |> List.head |> RunStore.load
let history = Activity.history run
let order = Activity.initialOrder history

let out = scratch "shade-plot"
let shadeFile = Path.Combine(out, $"{run.Name}-shade.svg")
let unitsFile = Path.Combine(out, $"{run.Name}-units.svg")
Charts.shade run Activity.DefaultThreshold |> Svg.save shadeFile
Charts.sortedActivity run.Name (Activity.final history) Activity.DefaultThreshold |> Svg.save unitsFile

// Text version from the activity frame (rows: run x epoch x unit): one row per unit (sorted as in the
// SVG), one character per epoch, darker = more active.
let activity = (RunStore.activityFrame [ run ]).GetColumn<float> "activity"
let label = List.head (RunStore.labels [ run ])
let shades = " .:-=+*#%@"
let level (a: float) =
    // log10 A_u from 1e-4 (blank) to 1e1 (@).
    let t = (log10 (max 1e-4 a) + 4.0) / 5.0
    shades[Math.Clamp(int (t * float (shades.Length - 1)), 0, shades.Length - 1)]
printfn "%s: log10 activity per unit (rows, sorted by initial activity) and epoch (columns %d..%d)"
    run.Name history.Epochs[0] history.Epochs[history.Epochs.Length - 1]
for rank, u in Array.indexed order do
    let cells = history.Epochs |> Array.map (fun epoch -> level (Series.get (label, epoch, u) activity)) |> String
    printfn "%4d  unit %3d |%s|" (rank + 1) u cells
printfn "scale: ' ' < 1e-4 ... '@' >= 10; active units at the last epoch (A_u > 0.01): %d"
    (Activity.activeCount Activity.DefaultThreshold history.Activity[history.Activity.Length - 1])
printfn "wrote %s and %s" shadeFile unitsFile
