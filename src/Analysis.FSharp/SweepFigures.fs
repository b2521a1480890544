namespace VaeResearch.Analysis

// The figures of a sweep (`vae sweep figures DIR`), drawn from the saved runs in the papers' layouts:
// - active units per epoch, one line per run (activity paper, Figures 3.1 and 3.2);
// - per run, the activity shade plot (activity paper, Figure 3.3) and the units sorted by activity with their KL
//   (eVAE paper, Figures 1-3);
// - the table's value against its innermost numeric row key, one panel per column (eVAE paper, Figure 7: Parzen
//   log-density against epitome size, one panel per latent size D). Rows without that key (the VAE beside the
//   eVAE's epitome sizes) are dashed horizontal references.
// Only finished runs are drawn, as in the table: an unfinished, missing or unreadable run is listed as skipped with
// the reason. figures.md links every figure with its caption, for REPRODUCTION.md and the like.

open System
open System.Globalization
open System.IO
open System.Text
open VaeResearch
open VaeResearch.Training

/// One figure written by <c>SweepFigures.write</c>: its file (in the output folder) and caption.
type SweepFigure =
    { /// File name, relative to the output folder.
      File: string
      /// What it shows.
      Caption: string }

/// The figures of a sweep folder.
[<RequireQualifiedAccess>]
module SweepFigures =

    /// Name of the Markdown index written beside the figures.
    [<Literal>]
    let IndexFile = "figures.md"

    let private inv = CultureInfo.InvariantCulture

    /// A curve needs this many distinct values of its x key; a table whose innermost numeric row key has fewer gets no
    /// value chart (two points make a slope, not a shape).
    [<Literal>]
    let MinimumCurvePoints = 3

    /// The finished runs of the plan that have activity rows, loaded, and the others with the reason they are left out.
    let private finishedRuns (plan: SweepPlan) : (SweepRunPlan * Run) list * SkippedRun list =
        let results =
            [ for run in plan.Runs ->
                  run,
                  match SweepTable.finished plan run with
                  | Result.Ok(loaded, _) when loaded.Activity.Length = 0 -> Result.Error "activity.csv has no rows"
                  | Result.Ok(loaded, _) -> Result.Ok loaded
                  | Result.Error why -> Result.Error why ]
        [ for run, r in results do match r with Result.Ok loaded -> run, loaded | Result.Error _ -> () ],
        [ for run, r in results do match r with Result.Error why -> { Run = run.Name; Reason = why.ReplaceLineEndings " " } | Result.Ok _ -> () ]

    /// Whether a canonical setting value reads as a number.
    let private number (value: string) =
        match Double.TryParse(value, NumberStyles.Float, inv) with
        | true, x when Double.IsFinite x -> Some x
        | _ -> None

    /// The innermost row key whose set values are all numbers, with at least MinimumCurvePoints distinct ones.
    let curveKey (table: SweepTable) =
        let rows = table.Plan.Table.Rows
        [ for i in List.length rows - 1 .. -1 .. 0 do
              let values = table.RowKeys |> List.map (fun key -> key[i]) |> List.filter (fun v -> v <> "") |> List.distinct
              if values.Length >= MinimumCurvePoints && values |> List.forall (fun v -> (number v).IsSome) then i ]
        |> List.tryHead

    /// "key=value, key=value" ("—" for a value the run does not set).
    let private describe (keys: string list) (values: string list) =
        let shown (v: string) = if v = "" then "—" else v
        String.Join(", ", List.map2 (fun k v -> k + "=" + shown v) keys values)

    /// <summary>
    /// The table's value against row key <paramref name="i"/>, one chart per column key: one line per combination of
    /// the other row keys that has that key, and a dashed horizontal line for each that has not (a reference such as
    /// the VAE beside the eVAE's epitome sizes). Cells without a value are left out, and so is a column without any.
    /// </summary>
    let valueCharts (table: SweepTable) (i: int) : (string list * LineChart) list =
        let spec = table.Plan.Table
        let xKey = spec.Rows[i]
        let xs = table.RowKeys |> List.choose (fun key -> number key[i])
        let xLo, xHi = List.min xs, List.max xs
        [ for column in table.ColumnKeys do
              let cells = table.Cells |> List.filter (fun c -> c.Column = column && c.Mean.IsSome)
              let groups = cells |> List.groupBy (fun c -> c.Row |> List.removeAt i) // keeps the table's row order
              let series =
                  [ for n, (others, members) in List.indexed groups do
                        let name = describe (List.removeAt i spec.Rows) others
                        let name = if name = "" then spec.Value else name
                        let curve = members |> List.choose (fun c -> number c.Row[i] |> Option.map (fun x -> x, c.Mean.Value)) |> List.sortBy fst
                        match curve, members |> List.filter (fun c -> c.Row[i] = "") with
                        | [], reference :: _ ->
                            { Name = $"{name} (no {xKey})"; Points = [| xLo, reference.Mean.Value; xHi, reference.Mean.Value |]; Colour = Svg.colour n; Dashed = true }
                        | [], [] -> ()
                        | points, _ -> { Name = name; Points = Array.ofList points; Colour = Svg.colour n; Dashed = false } ]
              let where = describe spec.Columns column
              column,
              { Title = (if where = "" then $"{spec.Value} against {xKey}" else $"{spec.Value} against {xKey}: {where}")
                XLabel = xKey
                YLabel = spec.Value
                Series = series
                IntegerX = xs |> List.forall (fun x -> x = Math.Round x)
                YFromZero = spec.Value = "active_units"
                LogX = false } ]
        |> List.filter (fun (_, chart) -> not chart.Series.IsEmpty)

    /// <summary>
    /// Draws the figures of the sweep folder <paramref name="sweepDir"/> into <paramref name="outDir"/> (default
    /// DIR/figures) and writes figures.md there, linking each with its caption and listing the runs left out.
    /// Returns the figures in the order figures.md lists them. A sweep with no finished run is an error.
    /// </summary>
    let write (sweepDir: string) (outDir: string option) : SweepFigure list =
        let table = SweepTable.load sweepDir
        let plan = table.Plan
        let threshold = plan.Table.Threshold
        let thresholdText = threshold.ToString inv
        let runs, skipped = finishedRuns plan
        if runs.IsEmpty then
            let reasons = String.Join("; ", skipped |> List.map (fun s -> $"{s.Run}: {s.Reason}"))
            raise (VaeResearchException($"sweep '{plan.Title}' has no finished run to draw ({reasons})"))
        let dir = outDir |> Option.defaultValue (Path.Combine(plan.Directory, "figures"))
        Directory.CreateDirectory dir |> ignore
        let figures = ResizeArray<SweepFigure>()
        let save file node caption =
            Svg.save (Path.Combine(dir, file)) node
            figures.Add { File = file; Caption = caption }
        let loaded = runs |> List.map snd
        save "active-units.svg" (Charts.activeUnits loaded threshold)
            $"Active units per epoch (A_u > {thresholdText}), one line per run (activity paper, Figures 3.1-3.2)."
        match curveKey table with
        | Some i ->
            for column, chart in valueCharts table i do
                let where = describe plan.Table.Columns column
                let file = Report.fileLabel ("value-" + (if where = "" then plan.Table.Value else where)) + ".svg"
                save file (Charts.lineChart chart)
                    $"""{plan.Table.Value} against {plan.Table.Rows[i]}{(if where = "" then "" else $" at {where}")}, from the sweep's table (as the eVAE paper's Figure 7 draws Parzen log-density against epitome size)."""
        | None -> ()
        for (run, loadedRun), label in List.zip runs (Report.labels loaded) do
            save $"{label}-shade.svg" (Charts.shade loadedRun threshold)
                $"{run.Name}: log10 activity per unit (rows, sorted by activity after the first epoch) and epoch (activity paper, Figure 3.3)."
            save $"{label}-units.svg" (Charts.sortedActivity run.Name (Activity.final (Activity.history loadedRun)) threshold)
                $"{run.Name}: units sorted by activity after the last epoch, with their KL to the prior (eVAE paper, Figures 1-3)."
        let md = StringBuilder()
        md.Append($"# Figures: {plan.Title}\n\n") |> ignore
        if plan.Description <> "" then md.Append(plan.Description.Trim()).Append("\n\n") |> ignore
        md.Append($"Drawn by `vae sweep figures` from {runs.Length} finished run(s) of {plan.Runs.Length}; activity threshold {thresholdText}.\n\n") |> ignore
        for f in figures do
            md.Append($"![{f.Caption}]({f.File})\n\n{f.Caption}\n\n") |> ignore
        if skipped.IsEmpty then md.Append("Runs left out: none.\n") |> ignore
        else
            md.Append("Runs left out:\n\n") |> ignore
            for s in skipped do
                md.Append($"- {s.Run}: {s.Reason}\n") |> ignore
        AtomicFile.WriteAllText(Path.Combine(dir, IndexFile), md.ToString())
        List.ofSeq figures
