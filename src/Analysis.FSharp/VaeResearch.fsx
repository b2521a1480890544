// VaeResearch in F# Interactive: loads the built assemblies (with Deedle) and prints records and frames readably.
//
// Build once (Release):   dotnet build src/Cli -c Release      (or: dotnet fsi build.fsx build)
// Then, from any folder:  dotnet fsi
//   > #load "src/Analysis.FSharp/VaeResearch.fsx";;
//   > let run = RunStore.load "runs/demo/vae";;                  // config, metrics, activity, eval, parzen
//   > run.Metrics |> Array.last;;
//   > Activity.history run |> Activity.activeCounts 0.1;;        // per-epoch active units at the activity paper's threshold
//   > Charts.shade run 0.01 |> Svg.save "shade.svg";;
//   > let scan = RunStore.scan 0.01 "runs";;                     // every run under a folder, summarized
//   > let runs = RunStore.runsFrame scan.Summaries;;             // one row per run, a typed column per setting
//   > runs |> Frame.pivotTable (fun _ r -> r.GetAs<string> "model") (fun _ r -> r.GetAs<int> "latent")
//            (fun f -> f.GetColumn<float> "active_units" |> Stats.mean);;
//   > RunStore.activityFrame scan.Runs |> Activity.finalByUnit;; // A_u per unit (rows) and run (columns)
//
// The paths below are relative to this file, so the script works from any working directory.

#r "../Cli/bin/Release/net10.0/System.Numerics.Tensors.dll"
#r "../Cli/bin/Release/net10.0/VaeResearch.Core.dll"
#r "../Cli/bin/Release/net10.0/Deedle.dll"
#r "../Cli/bin/Release/net10.0/VaeResearch.Analysis.dll"

open System
open System.Globalization
open System.Text.Json
open Deedle
open VaeResearch
open VaeResearch.Analysis
open VaeResearch.Training

let private invariant (format: string) (v: float) = v.ToString(format, CultureInfo.InvariantCulture)

// A run prints as one line; its fields (Metrics, Activity, Config, ...) print in full when asked for.
fsi.AddPrinter<Run>(fun run -> $"Run {RunStore.summary run}")

fsi.AddPrinter<MetricsRow>(fun m ->
    $"""epoch {m.Epoch}: lr {invariant "G4" m.Lr}, beta {invariant "G4" m.Beta}, train {invariant "F2" m.TrainBound}, test {invariant "F2" m.TestBound}, KL {invariant "F2" m.Kl}, {m.ActiveUnits} active, {invariant "F1" m.Seconds} s""")

fsi.AddPrinter<ActivityRow>(fun a -> $"""epoch {a.Epoch} unit {a.Unit}: A_u {invariant "G4" a.Activity}, KL {invariant "F4" a.Kl}""")

// The configuration as config.json spells it (snake_case), on one line.
fsi.AddPrinter<TrainConfig>(fun c ->
    JsonSerializer.Serialize(c, JsonSerializerOptions(RunFolder.Json, WriteIndented = false)))

fsi.AddPrinter<UnitActivity>(fun u -> $"""unit {u.Unit}: A_u {invariant "G4" u.Activity}, KL {invariant "F4" u.Kl}""")

fsi.AddPrinter<Points>(fun p -> $"Points [{p.Count} x {p.Dim}]")

fsi.AddPrinter<ActivityHistory>(fun h ->
    let span = if h.Epochs.Length = 0 then "none" else $"{h.Epochs[0]}..{h.Epochs[h.Epochs.Length - 1]}"
    $"ActivityHistory: {h.Units} units x {h.Epochs.Length} epochs ({span})")

fsi.AddPrinter<SvgNode>(fun node ->
    match node with
    | Element(name, _, children) -> $"<{name}> with {children.Length} children (Svg.save PATH to write it)"
    | Text t -> t)

// Frames and series print as Deedle formats them: a table, the first and last rows when there are many.
fsi.AddPrinter<Internal.IFsiFormattable>(fun frame -> "\n" + frame.Format())

// A summary prints as one line, a scan as its counts; their fields print in full when asked for.
fsi.AddPrinter<RunSummary>(fun s ->
    let active = s.ActiveUnits |> Option.map (fun a -> $"{a}/{s.Latent} active") |> Option.defaultValue "active units unknown"
    let nll = s.Eval |> Option.map (fun e -> $", NLL {Tables.formatEval e}") |> Option.defaultValue ""
    $"RunSummary {s.Run} ({s.Description}): {s.CompletedEpochs} epochs, test bound {Tables.formatBound s.TestBound}, {active}{nll}")

fsi.AddPrinter<RunScan>(fun scan ->
    let skipped = scan.Skipped |> List.map (fun s -> $"\n  skipped {s.Run}: {s.Reason}") |> String.concat ""
    $"RunScan of {scan.Root}: {scan.Runs.Length} run(s){skipped}")
