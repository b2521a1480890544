namespace VaeResearch.Analysis

// The papers' charts as SVG: bound and active units per epoch for several runs (activity paper
// Figures 2.x and 3.1-3.2), the activity shade plot (activity paper Figure 3.3), sorted per-unit
// activity with the per-unit KL (eVAE paper Figure 1), and the 2-D latent scatter (activity paper Figure 4.2).

open System
open System.Globalization
open VaeResearch.Training

/// One line of a line chart.
type Series =
    { /// Legend text.
      Name: string
      /// (x, y) points in drawing order; non-finite points are skipped.
      Points: (float * float)[]
      /// Stroke colour (#rrggbb).
      Colour: string
      /// Dashed stroke (e.g. the training bound next to the solid test bound).
      Dashed: bool }

/// A line chart: title, axis labels and series.
type LineChart =
    { /// Title above the plot.
      Title: string
      /// Label of the x axis.
      XLabel: string
      /// Label of the y axis.
      YLabel: string
      /// The lines.
      Series: Series list
      /// Whether x takes integer values only (epochs): ticks at integers.
      IntegerX: bool
      /// Include 0 in the y range (counts).
      YFromZero: bool
      /// x on a log(1 + x) scale, ticks at 0, 1, 2, 5, 10, 20, ...: long runs whose first epochs matter most.
      LogX: bool }

/// SVG charts of runs and unit statistics.
[<RequireQualifiedAccess>]
module Charts =

    /// Chart width in pixels.
    [<Literal>]
    let Width = 780.0

    /// Chart height in pixels.
    [<Literal>]
    let Height = 440.0

    /// At most this many epoch columns in a shade plot; longer runs are binned (geometric mean per bin).
    [<Literal>]
    let MaxShadeColumns = 300

    /// Runs of at least this many epochs get a log(1 + epoch) axis in the active-units chart: Burda et al.'s 3280-epoch
    /// runs prune their units in the first few dozen.
    [<Literal>]
    let LogEpochsFrom = 1000

    /// Activities below this floor are drawn at the floor in the shade plot (log scale).
    [<Literal>]
    let ActivityFloor = 1e-6

    type private Plot = { Left: float; Top: float; Width: float; Height: float }

    let private plotArea legendWidth =
        { Left = 74.0; Top = 44.0; Width = Width - 74.0 - 24.0 - legendWidth; Height = Height - 44.0 - 58.0 }

    /// A 1-2-5 step about (hi - lo) / target.
    let private niceStep (range: float) (target: int) =
        let raw = range / float (max 1 target)
        let magnitude = Math.Pow(10.0, floor (log10 raw))
        let f = raw / magnitude
        (if f <= 1.0 then 1.0 elif f <= 2.0 then 2.0 elif f <= 5.0 then 5.0 else 10.0) * magnitude

    /// <summary>
    /// Ticks for [lo, hi]: (axis minimum, axis maximum, tick values, step). With <paramref name="pad"/> the axis
    /// extends to whole steps around the data; otherwise it is the data range and the ticks lie inside it.
    /// </summary>
    let ticks (lo: float) (hi: float) (target: int) (integer: bool) (pad: bool) =
        let lo, hi =
            if not (Double.IsFinite lo && Double.IsFinite hi) then 0.0, 1.0
            elif hi - lo <= 1e-12 * max 1.0 (abs hi) then
                let half = if integer then 1.0 else max 0.5 (abs hi * 0.05)
                lo - half, hi + half
            else lo, hi
        let step = niceStep (hi - lo) target
        let step = if integer then max 1.0 (round step) else step
        let first = if pad then floor (lo / step) * step else ceil (lo / step - 1e-9) * step
        let last = if pad then ceil (hi / step) * step else floor (hi / step + 1e-9) * step
        let count = int (round ((last - first) / step))
        let values = Array.init (count + 1) (fun i -> first + float i * step)
        // NOTE: floor(lo / step) * step can land an ulp above lo; the axis always covers the data.
        (if pad then min first lo else lo), (if pad then max last hi else hi), values, step

    /// A tick label with as many decimals as the step needs.
    let tickLabel (step: float) (v: float) =
        let decimals = if step >= 1.0 then 0 else int (ceil (-log10 step - 1e-9))
        let v = if abs v < step * 1e-6 then 0.0 else v
        v.ToString("F" + string decimals, CultureInfo.InvariantCulture)

    let private tickFont = [ "font-size", "11"; "fill", "#333" ]

    /// <summary>
    /// Ticks of a log(1 + x) axis over [0, hi]: (axis minimum, axis maximum, tick positions, the label of a position),
    /// positions log10(1 + v) for v in 0, 1, 2, 5, 10, 20, 50, ... up to hi.
    /// </summary>
    let logTicks (hi: float) =
        let hi = max 1.0 hi
        let values = [| yield 0.0; for d in 0 .. int (floor (log10 hi)) do for m in [ 1.0; 2.0; 5.0 ] do if m * 10.0 ** float d <= hi then yield m * 10.0 ** float d |]
        0.0, log10 (1.0 + hi), values |> Array.map (fun v -> log10 (1.0 + v)),
        fun (p: float) -> (round (10.0 ** p - 1.0)).ToString("F0", CultureInfo.InvariantCulture)

    /// A linear axis from <see cref="ticks"/>: its ticks labelled with the decimals their step needs.
    let private labelled (lo: float, hi: float, values: float[], step: float) = lo, hi, values, tickLabel step

    /// Axes, grid, ticks and labels of a plot; returns the nodes and the x and y maps to pixels. A tick's label is
    /// <paramref name="xTickLabel"/> of its x.
    let private axes (plot: Plot) (title: string) (xLabel: string) (yLabel: string) (xr: float * float * float[] * (float -> string))
        (yr: float * float * float[] * float) =
        let x0, x1, xTicks, xTickLabel = xr
        let y0, y1, yTicks, yStep = yr
        let px x = plot.Left + (x - x0) / (x1 - x0) * plot.Width
        let py y = plot.Top + plot.Height - (y - y0) / (y1 - y0) * plot.Height
        let bottom = plot.Top + plot.Height
        let nodes =
            // NOTE: centred on the chart, not the plot (a legend or colour bar narrows the plot), and shrunk to fit it.
            [ Svg.text (Width / 2.0) 24.0 "middle" title [ "font-size", Svg.num (min 15.0 ((Width - 16.0) / (0.62 * float (max 1 title.Length)))); "font-weight", "bold" ]
              Svg.group [ "class", "grid"; "stroke", "#e5e5e5"; "stroke-width", "1" ] [
                  for t in xTicks do
                      Svg.line (px t) plot.Top (px t) bottom []
                  for t in yTicks do
                      Svg.line plot.Left (py t) (plot.Left + plot.Width) (py t) [] ]
              Svg.rect plot.Left plot.Top plot.Width plot.Height [ "fill", "none"; "stroke", "#333" ]
              Svg.group [ "class", "x-axis" ] [
                  for t in xTicks do
                      Svg.line (px t) bottom (px t) (bottom + 5.0) [ "stroke", "#333" ]
                      Svg.text (px t) (bottom + 18.0) "middle" (xTickLabel t) tickFont
                  Svg.text (plot.Left + plot.Width / 2.0) (bottom + 42.0) "middle" xLabel [ "font-size", "13" ] ]
              Svg.group [ "class", "y-axis" ] [
                  for t in yTicks do
                      Svg.line (plot.Left - 5.0) (py t) plot.Left (py t) [ "stroke", "#333" ]
                      Svg.text (plot.Left - 8.0) (py t + 4.0) "end" (tickLabel yStep t) tickFont
                  let x, y = plot.Left - 56.0, plot.Top + plot.Height / 2.0
                  Svg.text x y "middle" yLabel [ "font-size", "13"; "transform", $"rotate(-90 {Svg.num x} {Svg.num y})" ] ] ]
        nodes, px, py

    let private shorten (s: string) = if s.Length <= 30 then s else s.Substring(0, 29) + "…"

    /// A legend to the right of the plot: (name, swatch) pairs, one per line.
    let private legend (plot: Plot) (entries: (string * (float -> float -> SvgNode)) list) =
        let x = plot.Left + plot.Width + 16.0
        Svg.group [ "class", "legend" ] [
            for i, (name, swatch) in List.indexed entries do
                let y = plot.Top + 8.0 + 18.0 * float i
                swatch x y
                Svg.text (x + 26.0) (y + 4.0) "start" (shorten name) [ "font-size", "11" ] ]

    let private lineSwatch colour dashed x y =
        Svg.line x y (x + 20.0) y ([ "stroke", colour; "stroke-width", "2" ] @ (if dashed then [ "stroke-dasharray", "5 3" ] else []))

    /// <summary>
    /// A line chart with axes, ticks, grid and a legend; each series is a &lt;g class="series"&gt; with a &lt;title&gt;.
    /// </summary>
    let lineChart (chart: LineChart) : SvgNode =
        let toX x = if chart.LogX then log10 (1.0 + x) else x
        let finite = chart.Series |> List.collect (fun s -> s.Points |> Array.filter (fun (x, y) -> Double.IsFinite x && Double.IsFinite y) |> Array.toList)
        let xs, ys = List.map fst finite, List.map snd finite
        let range values fallback = if List.isEmpty values then fallback else List.min values, List.max values
        let xLo, xHi = range xs (0.0, 1.0)
        let yLo, yHi = range ys (0.0, 1.0)
        let yLo, yHi = if chart.YFromZero then min 0.0 yLo, max 0.0 yHi else yLo, yHi
        let longest = chart.Series |> List.map (fun s -> (shorten s.Name).Length) |> List.fold max 0
        let plot = plotArea (if chart.Series.IsEmpty then 0.0 else 40.0 + 6.5 * float longest)
        let xAxis =
            if chart.LogX then logTicks xHi
            else labelled (ticks xLo xHi 8 chart.IntegerX false)
        let frame, px, py = axes plot chart.Title chart.XLabel chart.YLabel xAxis (ticks yLo yHi 6 (chart.YFromZero && chart.IntegerX) true)
        let px x = px (toX x)
        let series =
            [ for s in chart.Series do
                  let points = s.Points |> Array.filter (fun (x, y) -> Double.IsFinite x && Double.IsFinite y)
                  let stroke = [ "stroke", s.Colour; "stroke-width", "2" ] @ (if s.Dashed then [ "stroke-dasharray", "5 3" ] else [])
                  Svg.group [ "class", "series" ] [
                      Svg.title s.Name
                      Svg.polyline (points |> Array.map (fun (x, y) -> px x, py y)) stroke
                      if points.Length <= 40 then
                          for x, y in points do
                              Svg.circle (px x) (py y) 2.5 [ "fill", s.Colour ] ] ]
        let key = legend plot [ for s in chart.Series -> s.Name, lineSwatch s.Colour s.Dashed ]
        Svg.document Width Height (frame @ series @ [ key ])

    /// (epoch, value) of one run in a frame column keyed (run, epoch), by epoch; missing values left out.
    let private perEpoch (label: string) (column: Deedle.Series<string * int, float>) =
        column.Observations
        |> Seq.filter (fun kv -> fst kv.Key = label)
        |> Seq.map (fun kv -> float (snd kv.Key), kv.Value)
        |> Seq.sortBy fst
        |> Seq.toArray

    /// Test bound (solid) and training bound (dashed) per epoch for several runs (their metrics frame).
    let bound (runs: Run list) : SvgNode =
        let metrics = RunStore.metricsFrame runs
        let test = metrics.GetColumn<float> "test_bound"
        let train = metrics.GetColumn<float> "train_bound"
        lineChart
            { Title = "Bound per epoch"
              XLabel = "epoch"
              YLabel = "bound (nats per image; higher is better)"
              Series =
                [ for i, (run, label) in List.indexed (List.zip runs (RunStore.labels runs)) do
                      { Name = $"{run.Name} test"; Points = perEpoch label test; Colour = Svg.colour i; Dashed = false }
                      { Name = $"{run.Name} train"; Points = perEpoch label train; Colour = Svg.colour i; Dashed = true } ]
              IntegerX = true
              YFromZero = false
              LogX = false }

    /// <summary>
    /// Active units (A_u above <paramref name="threshold"/>) per epoch for several runs, from their activity frame.
    /// </summary>
    let activeUnits (runs: Run list) (threshold: float) : SvgNode =
        let counts = Activity.activeByEpoch threshold (RunStore.activityFrame runs) |> Deedle.Series.mapValues float
        let logX = counts.Keys |> Seq.map snd |> Seq.fold max 0 >= LogEpochsFrom
        lineChart
            { Title = $"Active units per epoch (A_u > {threshold.ToString(CultureInfo.InvariantCulture)})"
              XLabel = if logX then "epoch (log scale: log(1 + epoch))" else "epoch"
              YLabel = "active units"
              Series =
                [ for i, (run, label) in List.indexed (List.zip runs (RunStore.labels runs)) ->
                      { Name = run.Name; Points = perEpoch label counts; Colour = Svg.colour i; Dashed = false } ]
              IntegerX = true
              YFromZero = true
              LogX = logX }

    /// Anchors of the shade plot's colour ramp (viridis, dark = inactive, yellow = active).
    let private ramp =
        [| 68.0, 1.0, 84.0; 59.0, 82.0, 139.0; 33.0, 145.0, 140.0; 94.0, 201.0, 98.0; 253.0, 231.0, 37.0 |]

    /// The ramp colour at t in [0, 1] (clamped).
    let rampColour (t: float) =
        let t = if Double.IsNaN t then 0.0 else Math.Clamp(t, 0.0, 1.0)
        let position = t * float (ramp.Length - 1)
        let i = min (ramp.Length - 2) (int (floor position))
        let f = position - float i
        let r0, g0, b0 = ramp[i]
        let r1, g1, b1 = ramp[i + 1]
        let mix a b = byte (round (a + (b - a) * f))
        mix r0 r1, mix g0 g1, mix b0 b1

    /// The activity shade plot (activity paper, Figure 3.3): log10 A_u per unit (rows, sorted by activity after the
    /// first recorded epoch, most active at the top) per epoch (columns), with a colour bar marking the threshold.
    let shade (run: Run) (threshold: float) : SvgNode =
        let history = Activity.history run
        let order = Activity.initialOrder history
        let epochs = history.Epochs
        let columns = min epochs.Length MaxShadeColumns
        let log10Activity (a: float) = log10 (max ActivityFloor a)
        // Column c covers epochs [c E / C, (c + 1) E / C): the geometric mean of A_u over the bin.
        let bins = Array.init columns (fun c -> c * epochs.Length / columns, (c + 1) * epochs.Length / columns)
        let cell (u: int) (c: int) =
            let a, b = bins[c]
            Seq.average (seq { for i in a .. b - 1 -> log10Activity (history.Activity[i][u]) })
        let values = Array.init history.Units (fun rank -> Array.init columns (cell order[rank]))
        let all = values |> Array.collect id
        let lo = if all.Length = 0 then -6.0 else floor (Array.min all)
        let hi = if all.Length = 0 then 0.0 else max (lo + 1.0) (ceil (Array.max all))
        let plot = { plotArea 90.0 with Left = 74.0 }
        let firstEpoch, lastEpoch = (if epochs.Length = 0 then 0.0, 1.0 else float epochs[0], float epochs[epochs.Length - 1])
        // Columns are centred on their epochs: the axis runs half a column beyond the first and last.
        let halfColumn = if columns = 0 then 0.5 else (lastEpoch - firstEpoch + 1.0) / float columns / 2.0
        let xRange = firstEpoch - halfColumn, lastEpoch + halfColumn
        let _, _, xTicks, xStep = ticks firstEpoch lastEpoch 8 true false
        let _, _, yTicks, yStep = ticks 1.0 (float (max 1 history.Units)) 8 true false
        let units = float (max 1 history.Units)
        let frame, px, _ =
            axes plot $"Activity per unit and epoch: {run.Name}" "epoch"
                "unit, sorted by initial activity (rank)"
                (labelled (fst xRange, snd xRange, xTicks, xStep)) (0.5, units + 0.5, [||], yStep)
        let rowHeight = plot.Height / units
        let rowTop rank = plot.Top + float rank * rowHeight
        let columnX c = px (firstEpoch - halfColumn + float c * 2.0 * halfColumn)
        // 48 colour levels: finer than the eye separates, and runs of equal cells merge into one rectangle.
        let colourOf (v: float) = rampColour (round ((v - lo) / (hi - lo) * 47.0) / 47.0)
        let rows =
            [ for rank in 0 .. history.Units - 1 do
                  let u = order[rank]
                  // Adjacent columns of the same colour merge into one rectangle, which keeps the file small.
                  let cells = ResizeArray()
                  let mutable start = 0
                  for c in 1 .. columns do
                      if c = columns || colourOf (values[rank][c]) <> colourOf (values[rank][start]) then
                          let colour = Svg.hex (colourOf (values[rank][start]))
                          cells.Add(Svg.rect (columnX start) (rowTop rank) (columnX c - columnX start + 0.3) (rowHeight + 0.3) [ "fill", colour ])
                          start <- c
                  Svg.group [ "class", "unit" ] (Svg.title $"unit {u} (rank {rank + 1})" :: List.ofSeq cells) ]
        let yAxis =
            Svg.group [ "class", "y-ticks" ] [
                for t in yTicks do
                    let y = rowTop (int t - 1) + rowHeight / 2.0
                    Svg.line (plot.Left - 5.0) y plot.Left y [ "stroke", "#333" ]
                    Svg.text (plot.Left - 8.0) (y + 4.0) "end" (tickLabel 1.0 t) tickFont ]
        // Colour bar with log10 ticks and the threshold.
        let barX = plot.Left + plot.Width + 24.0
        let barY v = plot.Top + plot.Height - (v - lo) / (hi - lo) * plot.Height
        let steps = 64
        let colourBar =
            Svg.group [ "class", "colour-bar" ] [
                for i in 0 .. steps - 1 do
                    let v0 = lo + (hi - lo) * float i / float steps
                    let v1 = lo + (hi - lo) * float (i + 1) / float steps
                    Svg.rect barX (barY v1) 16.0 (barY v0 - barY v1 + 0.3) [ "fill", Svg.hex (colourOf ((v0 + v1) / 2.0)) ]
                Svg.rect barX plot.Top 16.0 plot.Height [ "fill", "none"; "stroke", "#333" ]
                let _, _, barTicks, _ = ticks lo hi 6 true false
                for t in barTicks do
                    Svg.line (barX + 16.0) (barY t) (barX + 21.0) (barY t) [ "stroke", "#333" ]
                    Svg.text (barX + 24.0) (barY t + 4.0) "start" $"1e{int t}" tickFont
                let t = log10 threshold
                if t >= lo && t <= hi then
                    Svg.line (barX - 4.0) (barY t) (barX + 20.0) (barY t) [ "stroke", "white"; "stroke-width", "2"; "stroke-dasharray", "3 2" ]
                Svg.text (barX + 8.0) (plot.Top - 8.0) "middle" "A_u" [ "font-size", "12" ] ]
        let note =
            Svg.text (plot.Left + plot.Width) (Height - 8.0) "end"
                $"colour: log10 A_u; dashed mark: threshold {threshold.ToString(CultureInfo.InvariantCulture)}"
                [ "font-size", "10"; "fill", "#555" ]
        Svg.document Width Height (frame @ [ Svg.group [ "class", "cells" ] rows; yAxis; colourBar; note ])

    /// Sorted per-unit activity (bars, left axis) with the per-unit KL (line, right axis), as in the eVAE paper's
    /// Figure 1; the dashed line is the activity threshold.
    let sortedActivity (title: string) (units: UnitActivity[]) (threshold: float) : SvgNode =
        let order = Activity.sortedUnits (units |> Array.map (fun u -> u.Activity))
        let sorted = order |> Array.map (fun i -> units[i])
        let n = sorted.Length
        let plot = { plotArea 150.0 with Width = Width - 74.0 - 24.0 - 150.0 - 50.0 }
        let maxActivity = sorted |> Array.fold (fun m u -> max m u.Activity) threshold
        let maxKl = sorted |> Array.fold (fun m u -> max m u.Kl) 0.0
        let active = Activity.activeCount threshold (units |> Array.map (fun u -> u.Activity))
        let frame, px, py =
            axes plot $"{title}: {active} of {n} units active (A_u > {threshold.ToString(CultureInfo.InvariantCulture)})"
                "unit rank (sorted by activity)" "activity A_u = Cov_x(E_q[u])"
                (ticks 0.5 (float (max 1 n) + 0.5) 10 true false |> fun (_, _, t, s) -> labelled (0.5, float (max 1 n) + 0.5, t |> Array.filter (fun v -> v >= 1.0), s))
                (ticks 0.0 maxActivity 6 false true)
        let k0, k1, klTicks, klStep = ticks 0.0 (max maxKl 1e-3) 6 false true
        let pk v = plot.Top + plot.Height - (v - k0) / (k1 - k0) * plot.Height
        let barWidth = plot.Width / float (max 1 n) * 0.7
        let klColour = Svg.colour 3
        let bars =
            Svg.group [ "class", "series" ] [
                Svg.title "activity"
                for rank, u in Array.indexed sorted do
                    let x = px (float (rank + 1))
                    Svg.element "rect"
                        [ "x", Svg.num (x - barWidth / 2.0); "y", Svg.num (py u.Activity); "width", Svg.num barWidth
                          "height", Svg.num (max 0.0 (py 0.0 - py u.Activity)); "fill", (if u.Activity > threshold then Svg.colour 0 else "#9ecae1") ]
                        [ Svg.title (sprintf "unit %d: A_u = %.4g, KL = %.4g nats" u.Unit u.Activity u.Kl) ] ]
        let kl =
            Svg.group [ "class", "series" ] [
                Svg.title "KL"
                Svg.polyline (sorted |> Array.mapi (fun rank u -> px (float (rank + 1)), pk u.Kl)) [ "stroke", klColour; "stroke-width", "2" ]
                for rank, u in Array.indexed sorted do
                    Svg.circle (px (float (rank + 1))) (pk u.Kl) 2.5 [ "fill", klColour ] ]
        let right = plot.Left + plot.Width
        let klAxis =
            Svg.group [ "class", "y2-axis" ] [
                for t in klTicks do
                    Svg.line right (pk t) (right + 5.0) (pk t) [ "stroke", klColour ]
                    Svg.text (right + 8.0) (pk t + 4.0) "start" (tickLabel klStep t) [ "font-size", "11"; "fill", klColour ]
                let mid = plot.Top + plot.Height / 2.0
                Svg.text (right + 46.0) mid "middle" "KL(q(z_u|x) || p(z_u)) (nats)"
                    [ "font-size", "13"; "fill", klColour; "transform", $"rotate(90 {Svg.num (right + 46.0)} {Svg.num mid})" ] ]
        let thresholdLine =
            Svg.line plot.Left (py threshold) right (py threshold) [ "class", "threshold"; "stroke", "#444"; "stroke-dasharray", "6 4" ]
        let key =
            let boxPlot = { plot with Width = plot.Width + 50.0 }
            legend boxPlot
                [ "activity (active)", (fun x y -> Svg.rect x (y - 5.0) 20.0 10.0 [ "fill", Svg.colour 0 ])
                  "activity (inactive)", (fun x y -> Svg.rect x (y - 5.0) 20.0 10.0 [ "fill", "#9ecae1" ])
                  "KL (right axis)", lineSwatch klColour false
                  $"threshold {threshold.ToString(CultureInfo.InvariantCulture)}", (fun x y -> Svg.line x y (x + 20.0) y [ "stroke", "#444"; "stroke-dasharray", "6 4" ]) ]
        Svg.document Width Height (frame @ [ bars; thresholdLine; kl; klAxis; key ])

    /// <summary>
    /// 2-D latent scatter (activity paper, Figure 4.2): one point per image at its posterior mean (z_1, z_2),
    /// coloured by label; one &lt;g class="series"&gt; per label.
    /// </summary>
    let scatter (title: string) (points: (float * float)[]) (labels: int[]) : SvgNode =
        if points.Length <> labels.Length then invalidArg (nameof labels) $"{points.Length} points but {labels.Length} labels"
        let xs = points |> Array.map fst
        let ys = points |> Array.map snd
        let span (v: float[]) = if v.Length = 0 then 0.0, 1.0 else Array.min v, Array.max v
        let plot = { plotArea 80.0 with Width = Height - 44.0 - 58.0 }
        let plot = { plot with Left = 74.0 + (Width - 80.0 - 24.0 - 74.0 - plot.Width) / 2.0 }
        // Equal scales on both axes: a square plot over the union of both ranges.
        let lo = min (fst (span xs)) (fst (span ys))
        let hi = max (snd (span xs)) (snd (span ys))
        let frame, px, py = axes plot title "z_1 (posterior mean)" "z_2 (posterior mean)" (labelled (ticks lo hi 6 false true)) (ticks lo hi 6 false true)
        let classes = labels |> Array.distinct |> Array.sort
        let groups =
            [ for c in classes ->
                  Svg.group [ "class", "series"; "fill", Svg.colour c; "fill-opacity", "0.65" ] [
                      Svg.title $"label {c}"
                      for i in 0 .. points.Length - 1 do
                          if labels[i] = c then
                              Svg.circle (px (fst points[i])) (py (snd points[i])) 1.6 [] ] ]
        let key =
            legend { plot with Width = plot.Width - 10.0 }
                [ for c in classes -> $"{c}", (fun x y -> Svg.circle (x + 10.0) y 4.0 [ "fill", Svg.colour c ]) ]
        Svg.document Width Height (frame @ groups @ [ key ])
