/// The table of a sweep (SweepTable): a golden pivot from hand-written run folders and sweep.json (two seeds in some
/// cells, an epitome size reduced over, a published value, broken, unfinished, missing and unevaluated runs), the CSV
/// read back with Deedle, the other reductions, spec errors, and the seed mean's independence of the run order.
module VaeResearch.Properties.SweepTableTests

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open Deedle
open Expecto
open FsCheck
open FsCheck.FSharp
open VaeResearch
open VaeResearch.Analysis
open VaeResearch.TestSupport
open VaeResearch.Training

/// Replay seed of the property below.
let private Seed = (0x5EED_7AB1UL, 0x2545_F491_4F6C_DD1DUL)

/// One run of a fixture sweep: its sweep.json entry and what its folder holds.
type private Fixture =
    { Name: string
      /// Settings as sweep.json holds them: key and JSON literal.
      Settings: (string * string) list
      Config: TrainConfig
      /// Epochs written to metrics.csv and activity.csv (the config asks for Config.Epochs).
      Completed: int
      /// A_u of every unit after the last epoch (earlier epochs have 0).
      Activity: float list
      /// parzen.json's log_likelihood, if the run has one.
      Parzen: float option
      /// metrics.csv replaced by one with missing columns.
      Broken: bool
      /// No folder at all.
      Missing: bool }

let private folderOf (name: string) = "runs/" + name

/// Writes a fixture run's folder with the library's writers (config.json, metrics.csv, activity.csv) and
/// parzen.json as JSON text. metrics.csv's active_units is D, deliberately not the count at 0.02.
let private writeFolder (dir: string) (f: Fixture) =
    if not f.Missing then
        let folder = RunFolder.Create(Path.Combine(dir, folderOf f.Name))
        folder.WriteConfig f.Config
        let latent = f.Config.Latent
        RunCsv.WriteMetrics(
            folder.MetricsPath,
            [ for e in 1 .. f.Completed -> MetricsRow(e, 1e-3, 1.0, -100.0 - float e, -101.0 - float e, 5.0, latent, 0.5) ]
        )
        RunCsv.WriteActivity(
            folder.ActivityPath,
            [ for e in 1 .. f.Completed do
                  for u, a in List.indexed f.Activity -> ActivityRow(e, u, (if e = f.Completed then a else 0.0), 0.1) ]
        )
        match f.Parzen with
        | Some ll ->
            File.WriteAllText(
                Path.Combine(folder.Path, "parzen.json"),
                $"""{{ "sigma": 0.2, "log_likelihood": {ll.ToString("R", Globalization.CultureInfo.InvariantCulture)}, "standard_error": 1.5, "validation_log_likelihood": 240.0, "n_samples": 1000 }}"""
            )
        | None -> ()
        if f.Broken then File.WriteAllText(folder.MetricsPath, "epoch,lr,beta\n1,0.001,1\n")

/// sweep.json for fixture runs in the order given (index: each run's position in `indexed`), with the table section
/// and published entries as JSON text.
let private writeSweep (dir: string) (table: string) (published: string) (indexed: (int * Fixture) list) =
    let runs = JsonArray()
    for index, f in indexed do
        let settings = JsonObject()
        for key, literal in f.Settings do
            settings[key] <- JsonNode.Parse literal
        let entry = JsonObject()
        entry["index"] <- JsonValue.Create index
        entry["name"] <- JsonValue.Create f.Name
        entry["folder"] <- JsonValue.Create(folderOf f.Name)
        entry["hash"] <- JsonValue.Create "0123abcd"
        entry["settings"] <- settings
        entry["config"] <- JsonSerializer.SerializeToNode(f.Config, RunFolder.Json)
        runs.Add entry
    let root = JsonObject()
    root["name"] <- JsonValue.Create "fixture-table"
    root["description"] <- JsonValue.Create "Two models, two widths."
    root["spec"] <- JsonValue.Create "/nowhere/spec.toml"
    root["threads_per_run"] <- JsonValue.Create 1
    root["eval"] <- JsonNode.Parse """{ "k": 5000, "parzen": true }"""
    root["table"] <- JsonNode.Parse table
    root["published"] <- JsonNode.Parse published
    root["runs"] <- runs
    File.WriteAllText(Path.Combine(dir, "sweep.json"), root.ToJsonString(RunFolder.Json))

let private vae latent (hidden: int[]) seed = TrainConfig(Latent = latent, Hidden = hidden, Epochs = 2, Seed = seed)

let private evae latent size (hidden: int[]) seed =
    TrainConfig(Model = ModelKind.Evae, Latent = latent, EpitomeSize = Nullable size, Hidden = hidden, Epochs = 2, Seed = seed)

let private fixture name settings config activity parzen =
    { Name = name; Settings = settings; Config = config; Completed = config.Epochs; Activity = activity; Parzen = Some parzen; Broken = false; Missing = false }

/// The golden sweep, in grid order. Cells (value parzen, annotate active units at 0.02, reduce max over epitome_size):
/// vae/2/20: seeds 250.2 (2 active) and 252.6 (1, the second setting left to the config); vae/2/20,20: 260.42 (2)
/// and a broken run; evae/4/20: epitome_size 2 with seeds 270.2 (3), 271.4 (4) and epitome_size 4 with 269.9 (2);
/// evae/4/20,20: unfinished, missing and unevaluated runs only.
let private golden =
    let v seed hidden = [ "model", "\"vae\""; "latent", "2"; "hidden", hidden; "seed", string seed ]
    let e size seed hidden = [ "model", "\"evae\""; "latent", "4"; "hidden", hidden; "epitome_size", string size; "seed", string seed ]
    [ fixture "vae-2-20-s1" (v 1 "\"20\"") (vae 2 [| 20 |] 1UL) [ 0.5; 0.03 ] 250.2
      fixture "vae-2-20-s2" [ "model", "\"vae\""; "latent", "2.0"; "seed", "2" ] (vae 2 [| 20 |] 2UL) [ 0.5; 0.015 ] 252.6
      fixture "vae-2-20x20-s1" (v 1 "\"20,20\"") (vae 2 [| 20; 20 |] 1UL) [ 0.5; 0.03 ] 260.42
      { fixture "vae-2-20x20-s2" (v 2 "\"20,20\"") (vae 2 [| 20; 20 |] 2UL) [ 0.5; 0.03 ] 999.0 with Broken = true }
      fixture "evae-4-20-K2-s1" (e 2 1 "\"20\"") (evae 4 2 [| 20 |] 1UL) [ 0.4; 0.3; 0.05; 0.001 ] 270.2
      fixture "evae-4-20-K2-s2" (e 2 2 "\"20\"") (evae 4 2 [| 20 |] 2UL) [ 0.4; 0.3; 0.05; 0.021 ] 271.4
      fixture "evae-4-20-K4-s1" (e 4 1 "\"20\"") (evae 4 4 [| 20 |] 1UL) [ 0.9; 0.019; 0.5; 0.0 ] 269.9
      { fixture "evae-4-20x20-K2-s1" (e 2 1 "\"20,20\"") (evae 4 2 [| 20; 20 |] 1UL) [ 0.4; 0.3; 0.05; 0.0 ] 999.0 with Completed = 1 }
      { fixture "evae-4-20x20-K4-s1" (e 4 1 "\"20,20\"") (evae 4 4 [| 20; 20 |] 1UL) [ 0.4; 0.3; 0.05; 0.0 ] 999.0 with Missing = true }
      { fixture "evae-4-20x20-K2-s2" (e 2 2 "\"20,20\"") (evae 4 2 [| 20; 20 |] 2UL) [ 0.4; 0.3; 0.05; 0.0 ] 999.0 with Parzen = None } ]

let private goldenTable reduce =
    $"""{{ "rows": ["model", "latent"], "columns": ["hidden"], "value": "parzen", "annotate": "active_units", "reduce": "{reduce}", "threshold": 0.02 }}"""

/// Published: vae/2/20 = 253 (2); evae/4/20,20 = 275.5 without an annotation (latent written as 4.0).
let private goldenPublished =
    """[ { "where": { "model": "vae", "latent": 2, "hidden": "20" }, "value": 253, "annotate": 2 },
         { "where": { "model": "evae", "latent": 4.0, "hidden": "20,20" }, "value": 275.5 } ]"""

let private writeGolden (dir: string) reduce =
    for f in golden do
        writeFolder dir f
    writeSweep dir (goldenTable reduce) goldenPublished (List.indexed golden)

/// The arithmetic mean and sample standard deviation, computed here.
let private meanSd (xs: float list) =
    let n = float xs.Length
    let m = List.sum xs / n
    m, sqrt (List.sumBy (fun x -> (x - m) * (x - m)) xs / (n - 1.0))

let private close (actual: float) (expected: float) message = within (1e-9 * (1.0 + abs expected)) actual expected message

/// A frame's row as (column, text) with missing values as "".
let private cellOf (frame: Frame<int, string>) (row: int) (column: string) =
    frame.GetColumn<string> column |> Series.tryGet row |> Option.defaultValue ""

let private number (frame: Frame<int, string>) (row: int) (column: string) =
    frame.GetColumn<float> column |> Series.tryGet row

let tests =
    testList "SweepTable" [
        testCase "golden Markdown: seeds, max over epitome size, published value, skipped runs with reasons" <| fun () ->
            use folder = new TempFolder("vae-sweeptable-")
            writeGolden folder.Path "max"
            let table = SweepTable.load folder.Path
            let brokenReason =
                try RunStore.load (folder.Sub "runs/vae-2-20x20-s2") |> ignore; "loaded"
                with :? VaeResearchException as e -> e.Message
            Expect.stringContains brokenReason "metrics.csv" "the broken run's own error names metrics.csv"
            let expected =
                String.concat "" [
                    "# fixture-table\n\n"
                    "Two models, two widths.\n\n"
                    "| model | latent | hidden=20 | hidden=20,20 |\n"
                    "|---|---|---:|---:|\n"
                    "| vae | 2 | 251.4 ± 1.7 (1.5) [paper 253 (2), -1.6] | 260.4 (2) |\n"
                    "| evae | 4 | 270.8 ± 0.8 (3.5) | — [paper 275.5] |\n"
                    "\n"
                    "Value: parzen; in parentheses: active_units; reduce: max over epitome_size; activity threshold: 0.02. "
                    "A cell with several seeds shows their mean ± sample standard deviation; [paper P (A), d] is the published value and d = ours − paper.\n"
                    "\n"
                    "Skipped runs:\n\n"
                    $"- vae-2-20x20-s2: {brokenReason}\n"
                    "- evae-4-20x20-K2-s1: unfinished: 1 of 2 epochs completed\n"
                    "- evae-4-20x20-K4-s1: folder runs/evae-4-20x20-K4-s1 does not exist (the run has not started)\n"
                    "- evae-4-20x20-K2-s2: value parzen: no parzen.json (vae parzen has not run)\n" ]
            Expect.equal (SweepTable.markdown table) expected "the Markdown table"
            Expect.equal (table.Skipped |> List.map (fun s -> s.Run)) [ "vae-2-20x20-s2"; "evae-4-20x20-K2-s1"; "evae-4-20x20-K4-s1"; "evae-4-20x20-K2-s2" ] "skipped, in grid order"
            Expect.equal table.Observations.RowCount 6 "six runs measured"
            Expect.equal (table.Observations.GetColumn<string> "hidden" |> Series.values |> List.ofSeq) [ "20"; "20"; "20,20"; "20"; "20"; "20" ] "hidden from settings, or from config's [20] where settings leave it out"

        testCase "CSV read back with Deedle: one line per cell, mean and sample sd over seeds, published and difference" <| fun () ->
            use folder = new TempFolder("vae-sweeptable-")
            writeGolden folder.Path "max"
            let md, csvPath = SweepTable.write folder.Path None SweepTableOverrides.None
            Expect.equal md (folder.File "table.md") "default Markdown path"
            Expect.equal csvPath (folder.File "table.csv") "the CSV beside it"
            let text = File.ReadAllText csvPath
            Expect.equal (text.Split('\n')[0]) "model,latent,hidden,value,sd,n_seeds,annotation,published,published_annotation,difference,chosen" "header"
            Expect.stringContains text "vae,2,\"20,20\"," "a key with a comma is quoted"
            // Deedle would read "20,20" as 2020 (a thousands separator) without the schema; pandas needs nothing.
            let frame = Frame.ReadCsv(csvPath, schema = "hidden=string")
            Expect.equal frame.RowCount 4 "rows x columns cells"
            Expect.equal (frame.GetColumn<string> "model" |> Series.values |> List.ofSeq) [ "vae"; "vae"; "evae"; "evae" ] "model"
            Expect.equal (frame.GetColumn<int> "latent" |> Series.values |> List.ofSeq) [ 2; 2; 4; 4 ] "latent"
            Expect.equal (frame.GetColumn<string> "hidden" |> Series.values |> List.ofSeq) [ "20"; "20,20"; "20"; "20,20" ] "hidden"
            let m0, sd0 = meanSd [ 250.2; 252.6 ]
            close (number frame 0 "value").Value m0 "vae/20 mean"
            close (number frame 0 "sd").Value sd0 "vae/20 sample sd"
            Expect.equal (frame.GetColumn<int> "n_seeds" |> Series.values |> List.ofSeq) [ 2; 1; 2; 0 ] "seeds per cell"
            close (number frame 0 "annotation").Value 1.5 "vae/20 active units at 0.02, averaged"
            close (number frame 0 "published").Value 253.0 "published"
            close (number frame 0 "published_annotation").Value 2.0 "published annotation"
            close (number frame 0 "difference").Value (m0 - 253.0) "ours - published"
            close (number frame 1 "value").Value 260.42 "vae/20,20: the one run that loaded"
            Expect.isNone (number frame 1 "sd") "one seed: no sd"
            let m2, sd2 = meanSd [ 270.2; 271.4 ]
            close (number frame 2 "value").Value m2 "evae/20: the best epitome size's seed mean"
            close (number frame 2 "sd").Value sd2 "its sd"
            close (number frame 2 "annotation").Value 3.5 "its annotation"
            Expect.equal (cellOf frame 2 "chosen") "epitome_size=2" "the setting chosen"
            Expect.isNone (number frame 3 "value") "evae/20,20: no run measured"
            close (number frame 3 "published").Value 275.5 "but published"
            Expect.isNone (number frame 3 "difference") "no difference without a value"
            Expect.equal (File.ReadAllText md) (SweepTable.markdown (SweepTable.load folder.Path)) "write writes the Markdown"

        testCase "overrides: another threshold keeps the published values, another value drops them, bad names are refused" <| fun () ->
            use folder = new TempFolder("vae-sweeptable-")
            writeGolden folder.Path "max"
            let rows (md: string) = md.Split('\n') |> Array.filter (fun l -> l.StartsWith "| vae" || l.StartsWith "| evae") |> List.ofArray
            // Active units at 0.1: vae-2-20 seeds 1 and 1, vae-2-20x20 1; evae-4-20 K = 2 seeds 2 and 2, K = 4 2 (max: the first);
            // evae-4-20x20 K = 2 seed 2 has no parzen.json but its activity counts.
            let at01 = { SweepTableOverrides.None with Threshold = Some 0.1 }
            let md, _ = SweepTable.write folder.Path None at01
            Expect.equal md (folder.File "table-threshold-0.1.md") "named after the change"
            Expect.isFalse (File.Exists(folder.File "table.md")) "the spec's table path is not written"
            Expect.equal
                (rows (File.ReadAllText md))
                [ "| vae | 2 | 251.4 ± 1.7 (1) [paper 253 (2), -1.6] | 260.4 (1) |"; "| evae | 4 | 270.8 ± 0.8 (2) | — [paper 275.5] |" ]
                "parzen annotated with active units at 0.1, beside the paper's"
            let units = { Value = Some "active_units"; Annotate = Some "none"; Threshold = Some 0.1 }
            let md, _ = SweepTable.write folder.Path None units
            Expect.equal md (folder.File "table-active_units-annotate-none-threshold-0.1.md") "every change in the name"
            let text = File.ReadAllText md
            Expect.equal (rows text) [ "| vae | 2 | 1 ± 0.0 | 1 |"; "| evae | 4 | 2 ± 0.0 | 2 |" ] "active units at 0.1, no annotation"
            Expect.stringContains text "Value: active_units; in parentheses: none; reduce: max over epitome_size; activity threshold: 0.1." "the footer"
            Expect.isFalse (text.Contains "match no cell") "the published parzen values are not listed either"
            let refused overrides = (throws<VaeResearchException> (fun () -> SweepTable.write folder.Path None overrides |> ignore)).Message
            Expect.stringContains (refused { units with Value = Some "elbo" }) "--value: expected one of nll" "unknown value"
            Expect.stringContains (refused { units with Annotate = Some "x" }) "--annotate: expected none or one of" "unknown annotation"
            Expect.stringContains (refused { units with Threshold = Some -1.0 }) "--threshold: expected a number >= 0, got -1" "negative threshold"
            Expect.stringContains (refused { units with Threshold = Some nan }) "--threshold: expected a number >= 0, got NaN" "NaN threshold"

        testCase "reduce min picks the lowest setting, reduce mean averages the settings' seed means" <| fun () ->
            use folder = new TempFolder("vae-sweeptable-")
            writeGolden folder.Path "min"
            let cell (t: SweepTable) = t.Cells |> List.find (fun c -> c.Row = [ "evae"; "4" ] && c.Column = [ "20" ])
            let low = cell (SweepTable.load folder.Path)
            Expect.equal (low.Mean, low.StandardDeviation, low.Seeds, low.AnnotationMean, low.Chosen) (Some 269.9, None, 1, Some 2.0, "epitome_size=4") "min: epitome size 4"
            Expect.stringContains (SweepTable.markdown (SweepTable.load folder.Path)) "| evae | 4 | 269.9 (2) |" "min cell text"
            writeSweep folder.Path (goldenTable "mean") goldenPublished (List.indexed golden)
            let mean = cell (SweepTable.load folder.Path)
            let m2, sd2 = meanSd [ 270.2; 271.4 ]
            close mean.Mean.Value ((m2 + 269.9) / 2.0) "mean of the two settings' seed means"
            close mean.StandardDeviation.Value sd2 "pooled sd: the one setting with seeds"
            Expect.equal mean.Seeds 1 "the fewest seeds of any setting"
            close mean.AnnotationMean.Value ((3.5 + 2.0) / 2.0) "annotation: mean over the settings"
            Expect.equal mean.Chosen "" "no single setting"

        testCase "a run without the annotation, or with every run broken, is skipped and the table still builds" <| fun () ->
            use folder = new TempFolder("vae-sweeptable-")
            let runs =
                [ { fixture "a" [ "model", "\"vae\""; "latent", "2" ] (vae 2 [| 20 |] 1UL) [] 250.0 with Completed = 2 }
                  { fixture "b" [ "model", "\"vae\""; "latent", "3" ] (vae 3 [| 20 |] 1UL) [ 0.5; 0.5; 0.5 ] 250.0 with Broken = true } ]
            for f in runs do
                writeFolder folder.Path f
            writeSweep folder.Path """{ "rows": ["latent"], "columns": [], "value": "parzen", "annotate": "active_units", "threshold": 0.02 }""" "[]" (List.indexed runs)
            let table = SweepTable.load folder.Path
            Expect.equal (table.Cells |> List.map (fun c -> c.Mean)) [ None; None ] "no cell has a value"
            Expect.equal (table.Skipped |> List.map (fun s -> s.Run)) [ "a"; "b" ] "both skipped"
            Expect.equal table.Skipped[0].Reason "annotate active_units: activity.csv has no rows, and active units at threshold 0.02 need them" "reason a"
            let md = SweepTable.markdown table
            Expect.stringContains md "| latent | parzen |\n|---|---:|\n| 2 | — |\n| 3 | — |\n" "no columns: one value column"

        testCase "spec errors name sweep.json and the key; a sweep without a table says so" <| fun () ->
            use folder = new TempFolder("vae-sweeptable-")
            let runs = List.indexed (List.take 1 golden)
            writeSweep folder.Path """{ "rows": ["model"], "columns": [], "value": "elbo" }""" "[]" runs
            let e = throws<FileFormatException> (fun () -> SweepTable.load folder.Path |> ignore)
            Expect.equal (e.Path, e.Field) (folder.File "sweep.json", "table.value") "unknown value"
            writeSweep folder.Path """{ "rows": ["model"], "columns": ["hidden"], "value": "nll" }""" """[ { "where": { "seed": 1 }, "value": 80 } ]""" runs
            let e = throws<FileFormatException> (fun () -> SweepTable.load folder.Path |> ignore)
            Expect.equal e.Field "published[0].where.seed" "a where key that is not a row or column"
            writeSweep folder.Path """{ "rows": ["no_such_setting"], "value": "nll" }""" "[]" runs
            let e = throws<FileFormatException> (fun () -> SweepTable.load folder.Path |> ignore)
            Expect.stringContains e.Message "no_such_setting" "a row key that no run has"
            writeSweep folder.Path "null" "[]" runs
            let e = throws<VaeResearchException> (fun () -> SweepTable.load folder.Path |> ignore)
            Expect.stringContains e.Message "no [table] section" "no table"
            let e = throws<VaeResearchException> (fun () -> SweepTable.write folder.Path (Some(folder.File "t.csv")) SweepTableOverrides.None |> ignore)
            Expect.stringContains e.Message "--out names the Markdown file" "--out with .csv"

        testCase "figures: value against epitome size per latent, the VAE as a dashed reference, an unfinished run left out" <| fun () ->
            use folder = new TempFolder("vae-sweepfigures-")
            let e latent size parzen =
                fixture $"evae-{latent}-K{size}" [ "model", "\"evae\""; "latent", string latent; "epitome_size", string size; "seed", "1" ]
                    (evae latent size [| 20 |] 1UL) (List.replicate latent 0.5) parzen
            let v latent parzen =
                fixture $"vae-{latent}" [ "model", "\"vae\""; "latent", string latent; "seed", "1" ] (vae latent [| 20 |] 1UL) (List.replicate latent 0.5) parzen
            // Grid order puts K = 3 before K = 2: the curve is drawn by epitome size, not by grid order.
            let runs = [ v 6 200.0; e 6 1 210.0; e 6 3 230.0; e 6 2 220.5; v 12 205.0; e 12 1 211.0; e 12 2 212.0; { e 12 3 999.0 with Completed = 1 } ]
            for f in runs do
                writeFolder folder.Path f
            writeSweep folder.Path """{ "rows": ["model", "epitome_size"], "columns": ["latent"], "value": "parzen", "threshold": 0.02 }""" "[]" (List.indexed runs)
            let table = SweepTable.load folder.Path
            Expect.equal (SweepFigures.curveKey table) (Some 1) "epitome_size, the innermost row key, is the x axis"
            let charts = SweepFigures.valueCharts table 1
            Expect.equal (charts |> List.map fst) [ [ "6" ]; [ "12" ] ] "one chart per latent size"
            let seriesOf (chart: LineChart) = chart.Series |> List.map (fun s -> s.Name, s.Points, s.Dashed)
            Expect.equal (seriesOf (snd charts[0]))
                [ "model=vae (no epitome_size)", [| 1.0, 200.0; 3.0, 200.0 |], true
                  "model=evae", [| 1.0, 210.0; 2.0, 220.5; 3.0, 230.0 |], false ] "latent 6: the VAE across the x range, the eVAE by K"
            Expect.equal (seriesOf (snd charts[1]))
                [ "model=vae (no epitome_size)", [| 1.0, 205.0; 3.0, 205.0 |], true
                  "model=evae", [| 1.0, 211.0; 2.0, 212.0 |], false ] "latent 12: the unfinished K = 3 run has no point"
            Expect.equal (snd charts[0]).Title "parzen against epitome_size: latent=6" "title"
            // A column whose cells have no value yet gets no chart.
            writeSweep folder.Path """{ "rows": ["model", "epitome_size"], "columns": ["latent"], "value": "parzen", "threshold": 0.02 }""" "[]"
                (List.indexed (runs @ [ { e 18 1 999.0 with Missing = true }; { e 18 2 999.0 with Missing = true }; { e 18 3 999.0 with Missing = true } ]))
            Expect.equal (SweepFigures.valueCharts (SweepTable.load folder.Path) 1 |> List.map fst) [ [ "6" ]; [ "12" ] ] "latent 18, nothing finished: no chart"
            writeSweep folder.Path """{ "rows": ["model", "epitome_size"], "columns": ["latent"], "value": "parzen", "threshold": 0.02 }""" "[]" (List.indexed runs)
            let figures = SweepFigures.write folder.Path None
            let out = folder.Sub "figures"
            let files = figures |> List.map (fun f -> f.File)
            Expect.equal files.Length (1 + 2 + 2 * 7) "active units, two value panels, shade and sorted units of the 7 finished runs"
            Expect.containsAll files [ "active-units.svg"; "value-latent_6.svg"; "value-latent_12.svg"; "evae-6-K3-shade.svg"; "vae-12-units.svg" ] "file names"
            Expect.isFalse (List.exists (fun (f: string) -> f.StartsWith "evae-12-K3") files) "no figure of the unfinished run"
            for f in files do
                Expect.equal (nonNull (Xml.Linq.XDocument.Load(Path.Combine(out, f)).Root)).Name.LocalName "svg" $"{f} is well-formed SVG"
            let md = File.ReadAllText(Path.Combine(out, SweepFigures.IndexFile))
            for f in figures do
                Expect.stringContains md $"]({f.File})" $"figures.md links {f.File}"
            Expect.stringContains md "- evae-12-K3: unfinished: 1 of 2 epochs completed" "the unfinished run is listed with the reason"
            // Only the innermost numeric row key with three values makes a curve: latent as a row with two values does not.
            writeSweep folder.Path """{ "rows": ["latent"], "columns": ["model"], "value": "parzen" }""" "[]" (List.indexed runs)
            Expect.isNone (SweepFigures.curveKey (SweepTable.load folder.Path)) "two latent sizes: no curve"
            // Nothing finished: an error that names each run's reason, and no figures.md.
            use empty = new TempFolder("vae-sweepfigures-")
            writeSweep empty.Path """{ "rows": ["latent"], "value": "parzen" }""" "[]" [ 0, { v 6 200.0 with Missing = true } ]
            let error = throws<VaeResearchException> (fun () -> SweepFigures.write empty.Path None |> ignore)
            Expect.stringContains error.Message "vae-6: folder runs/vae-6 does not exist" "the reason"
            Expect.isFalse (File.Exists(Path.Combine(empty.Path, "figures", SweepFigures.IndexFile))) "nothing written"

        testCase "canonical values: 8 and 8.0 agree, strings are kept, arrays join with commas, null is empty" <| fun () ->
            let c (text: string) = SweepTable.canonical (JsonDocument.Parse(text).RootElement)
            Expect.equal [ c "8"; c "8.0"; c "8e0"; c "0.5"; c "\"8.0\""; c "[500, 500]"; c "null"; c "true" ] [ "8"; "8"; "8"; "0.5"; "8.0"; "500,500"; ""; "true" ] "canonical"

        property Seed 20 "a cell's value is the arithmetic mean over seeds whatever the order of the runs in sweep.json" <| fun () ->
            let genCase =
                gen {
                    let! counts = Gen.arrayOfLength 2 (Gen.choose (1, 5))
                    let! values = Gen.arrayOfLength (Array.sum counts) (Gen.choose (-2_000_000, 2_000_000) |> Gen.map (fun i -> float i / 997.0))
                    let! order = Gen.shuffle [| 0 .. Array.sum counts - 1 |]
                    return counts, values, order
                }
            Prop.forAll (Arb.fromGen genCase) (fun (counts, values, order) ->
                use folder = new TempFolder("vae-sweeptable-prop-")
                let runs =
                    [ for cell, count in Array.indexed counts do
                          for s in 1 .. count -> cell, s ]
                    |> List.mapi (fun i (cell, s) ->
                        let hidden = [| 20 + cell |]
                        cell, fixture $"r{i}" [ "hidden", $"\"{20 + cell}\""; "seed", string s ] (vae 2 hidden (uint64 s)) [ 0.5; 0.5 ] values[i])
                for _, f in runs do
                    writeFolder folder.Path f
                let table = """{ "rows": [], "columns": ["hidden"], "value": "parzen" }"""
                let indexed = runs |> List.map snd |> List.indexed
                writeSweep folder.Path table "[]" indexed
                let inOrder = SweepTable.load folder.Path
                writeSweep folder.Path table "[]" [ for i in order -> indexed[i] ]
                let shuffled = SweepTable.load folder.Path
                Expect.equal (SweepTable.csv shuffled) (SweepTable.csv inOrder) "the same CSV whatever the order"
                Expect.equal (SweepTable.markdown shuffled) (SweepTable.markdown inOrder) "the same Markdown whatever the order"
                for cell, count in Array.indexed counts do
                    let xs = [ for (c, f) in runs do if c = cell then f.Parzen.Value ]
                    let got = shuffled.Cells |> List.find (fun c -> c.Column = [ string (20 + cell) ])
                    close got.Mean.Value (List.sum xs / float count) $"cell {cell}: mean"
                    Expect.equal got.Seeds count $"cell {cell}: seeds"
                    if count > 1 then close got.StandardDeviation.Value (snd (meanSd xs)) $"cell {cell}: sample sd"
                    else Expect.isNone got.StandardDeviation $"cell {cell}: one seed, no sd")
    ]
