/// Deedle frames of the analysis layer: the runs, metrics and activity frames built from run folders (column
/// names, types and row keys), the pivot of final active units by model and latent size, the results table's
/// skipped runs, and every CSV the project writes read back with Deedle's Frame.ReadCsv.
module VaeResearch.Properties.FrameTests

open System
open System.IO
open Deedle
open Expecto
open VaeResearch
open VaeResearch.Analysis
open VaeResearch.TestSupport
open VaeResearch.Training

/// Replay seed of the properties below.
let private Seed = (0x5EED_F2A3UL, 0x9E37_79B9_7F4A_7C15UL)

/// Relative tolerance of a value read back through Frame.ReadCsv: Deedle infers decimal for numbers written
/// without an exponent, and decimal -> double may be one ulp off (2^-52 ~ 2.2e-16).
let private ReadCsvTolerance = 1e-15

/// A run folder written with the library's own writers: config.json, metrics.csv and activity.csv for
/// `epochs` epochs with activity values drawn from `random` (log-uniform over 1e-6..10, so some are
/// written with an exponent), plus assignments.csv for epitome models.
let private writeRun (random: Random) (path: string) (config: TrainConfig) (epochs: int) =
    let folder = RunFolder.Create path
    folder.WriteConfig config
    let activity =
        [ for e in 1 .. epochs do
              for u in 0 .. config.Latent - 1 -> ActivityRow(e, u, Math.Pow(10.0, -6.0 + 7.0 * random.NextDouble()), 2.0 * random.NextDouble()) ]
    let active e = activity |> List.filter (fun a -> a.Epoch = e && a.Activity > 0.01) |> List.length
    let metrics =
        [ for e in 1 .. epochs ->
              let bound = -150.0 + float e + random.NextDouble()
              MetricsRow(e, 1e-3, min 1.0 (0.3 * float e), bound - 1.0, bound, 10.0 * random.NextDouble(), active e, 0.25 + random.NextDouble()) ]
    RunCsv.WriteMetrics(folder.MetricsPath, metrics)
    RunCsv.WriteActivity(folder.ActivityPath, activity)
    if config.EpitomeSize.HasValue then
        let size = config.EpitomeSize.Value
        let epitomes = (config.Latent - size) / config.EpitomeStride.GetValueOrDefault size + 1
        RunCsv.WriteAssignments(folder.AssignmentsPath, [ for e in 1 .. epochs do for y in 0 .. epitomes - 1 -> AssignmentRow(e, y, random.Next 1000) ])
    metrics, activity

/// Three runs under one folder: vae D=3 (with eval.json and parzen.json), vae D=5 k=5 with batch norm, and
/// evae D=4 K=2 s=1 (three epitomes).
let private writeThreeRuns (folder: TempFolder) (seed: int) =
    let random = Random seed
    let vae3 = TrainConfig(Latent = 3, Seed = 3UL)
    let vae5 = TrainConfig(Latent = 5, Samples = 5, Batchnorm = true)
    let evae = TrainConfig(Model = ModelKind.Evae, Latent = 4, EpitomeSize = Nullable 2, EpitomeStride = Nullable 1)
    let written =
        [ "vae3", vae3, 3; "vae5", vae5, 2; "evae4", evae, 4 ]
        |> List.map (fun (name, config, epochs) -> name, writeRun random (folder.Sub name) config epochs)
    File.WriteAllText(Path.Combine(folder.Sub "vae3", "eval.json"), """{ "nll": 91.5, "standard_error": 0.25, "k": 5000, "n": 10000, "binarize": "dynamic" }""")
    RunStore.writeParzen (Path.Combine(folder.Sub "vae3", RunStore.ParzenFile))
        { Sigma = 0.2; LogLikelihood = 250.25; StandardError = 2.5; ValidationLogLikelihood = 251.5; NSamples = 100; NTest = 10; NValidation = 10; SigmaSearch = [||]; ValidationInTraining = false }
    written

/// The column names of a frame and the names of their types.
let private schema (frame: Frame<'R, string>) =
    Seq.zip frame.ColumnKeys (frame.ColumnTypes |> Seq.map (fun t -> t.Name)) |> Seq.toList

/// Frame.ReadCsv's type for a number column: decimal or double (Deedle infers decimal when no value has an
/// exponent or NaN). A column whose sampled values are all whole numbers reads as Int32 (and one of only 0 and 1
/// as Boolean), so the files below hold fractional values.
let private isNumber (typeName: string) = typeName = "Decimal" || typeName = "Double"

/// Checks a CSV file read with Frame.ReadCsv: the header's column names in order, the type named in `types`
/// (e.g. "Int32", "String") where given, a number type for the other columns; returns the frame.
let private readCsv (path: string) (header: string list) (types: (string * string) list) =
    let frame = Frame.ReadCsv path
    let file = Path.GetFileName path
    Expect.equal (List.ofSeq frame.ColumnKeys) header $"{file}: the columns"
    for name, typeName in schema frame do
        match List.tryFind (fst >> (=) name) types with
        | Some(_, expected) -> Expect.equal typeName expected $"{file}: {name}"
        | None -> Expect.isTrue (isNumber typeName) $"{file}: {name} is a number, got {typeName}"
    frame

/// The same type for several columns.
let private all (typeName: string) (names: string list) = names |> List.map (fun n -> n, typeName)

/// The values of a frame column as doubles, in row order.
let private floats (frame: Frame<'R, string>) (name: string) = frame.GetColumn<float> name |> Series.values |> Seq.toArray

/// Every value within ReadCsvTolerance (relative) of the expected one.
let private closeAll (actual: float[]) (expected: float[]) (message: string) =
    Expect.equal actual.Length expected.Length $"{message}: the count"
    Array.iteri2 (fun i (a: float) e -> within (ReadCsvTolerance * max 1.0 (abs e)) a e $"{message}[{i}]") actual expected

let tests =
    testList "Frames" [
        testCase "the runs frame has one row per run, keyed by folder, with typed columns named as config.json names them" <| fun () ->
            use folder = new TempFolder("vae-frames-")
            writeThreeRuns folder 1 |> ignore
            let scan = RunStore.scan 0.01 folder.Path
            let runs = RunStore.runsFrame scan.Summaries
            Expect.equal (List.ofSeq runs.RowKeys) [ "evae4"; "vae3"; "vae5" ] "row keys: the folders, sorted"
            let types = schema runs |> Map.ofList
            for name, expected in
                [ "description", "String"; "model", "String"; "latent", "Int32"; "k", "Int32"; "epitome_size", "Int32"
                  "epitome_stride", "Int32"; "kl_weight", "Double"; "warmup_epochs", "Int32"; "batchnorm", "Boolean"
                  "seed", "UInt64"; "backend", "String"; "threads", "Int32"; "lr", "Double"; "hidden", "String"
                  "completed_epochs", "Int32"; "test_bound", "Double"; "active_units", "Int32"; "nll", "Double"
                  "nll_k", "Int32"; "parzen_log_likelihood", "Double"; "path", "String" ] do
                Expect.equal (Map.tryFind name types) (Some expected) $"column {name}"
            Expect.equal (runs.GetColumn<string> "model" |> Series.values |> List.ofSeq) [ "evae"; "vae"; "vae" ] "model"
            Expect.equal (runs.GetColumn<int> "k" |> Series.values |> List.ofSeq) [ 1; 1; 5 ] "k: importance samples"
            Expect.equal (runs.GetColumn<int> "epitome_stride" |> Series.observations |> List.ofSeq) [ "evae4", 1 ] "stride, missing for a VAE"
            Expect.equal (runs.GetColumn<bool> "batchnorm" |> Series.get "vae5") true "batchnorm"
            Expect.equal (runs.GetColumn<uint64> "seed" |> Series.get "vae3") 3UL "seed"
            Expect.equal (runs.GetColumn<string> "backend" |> Series.values |> Seq.distinct |> List.ofSeq) [ "native" ] "backend"
            Expect.equal (runs.GetColumn<float> "nll" |> Series.observations |> List.ofSeq) [ "vae3", 91.5 ] "nll only where eval.json exists"
            Expect.equal (runs.GetColumn<int> "parzen_samples" |> Series.observations |> List.ofSeq) [ "vae3", 100 ] "parzen"
            Expect.equal (runs.GetColumn<int> "completed_epochs" |> Series.values |> List.ofSeq) [ 4; 3; 2 ] "completed epochs"
            Expect.equal scan.Skipped [] "nothing skipped"

        property Seed 25 "the metrics and activity frames hold every row of metrics.csv and activity.csv under (run, epoch[, unit])" <| fun (seed: int) ->
            use folder = new TempFolder("vae-frames-")
            let written = writeThreeRuns folder seed
            let scan = RunStore.scan 0.01 folder.Path
            let metrics = RunStore.metricsFrame scan.Runs
            let activity = RunStore.activityFrame scan.Runs
            Expect.equal (List.ofSeq metrics.ColumnKeys) [ "lr"; "beta"; "train_bound"; "test_bound"; "kl"; "active_units"; "seconds" ] "metrics columns"
            Expect.equal (List.ofSeq activity.ColumnKeys) [ "activity"; "kl" ] "activity columns"
            Expect.equal (schema metrics |> List.map snd) [ "Double"; "Double"; "Double"; "Double"; "Double"; "Int32"; "Double" ] "metrics types"
            let expectedMetrics = [ for name, (rows, _) in written |> List.sortBy fst do for m in rows -> (name, m.Epoch), m ]
            Expect.equal (Set.ofSeq metrics.RowKeys) (expectedMetrics |> List.map fst |> Set.ofList) "metrics row keys"
            for key, m in expectedMetrics do
                Expect.equal (metrics.GetColumn<float> "test_bound" |> Series.get key) m.TestBound $"test bound {key}"
                Expect.equal (metrics.GetColumn<int> "active_units" |> Series.get key) m.ActiveUnits $"active units {key}"
            let expectedActivity = [ for name, (_, rows) in written do for a in rows -> (name, a.Epoch, a.Unit), a ]
            Expect.equal activity.RowCount expectedActivity.Length "one activity row per run, epoch and unit"
            for key, a in expectedActivity do
                Expect.equal (activity.GetColumn<float> "activity" |> Series.get key) a.Activity $"activity {key}"
                Expect.equal (activity.GetColumn<float> "kl" |> Series.get key) a.Kl $"kl {key}"
            let counts = Activity.activeByEpoch 0.01 activity
            for key, m in expectedMetrics do
                Expect.equal (Series.get key counts) m.ActiveUnits $"active units from the activity frame {key}"
            // The runs frame's final active units agree with the last epoch.
            let runs = RunStore.runsFrame scan.Summaries
            for name, (rows, _) in written do
                Expect.equal (runs.GetColumn<int> "active_units" |> Series.get name) (List.last rows).ActiveUnits $"final active units of {name}"
            let perUnit = Activity.finalByUnit activity
            Expect.equal (List.ofSeq perUnit.RowKeys) [ 0 .. 4 ] "units 0..4 (the largest D)"
            Expect.equal (perUnit.GetColumn<float> "vae3" |> Series.countValues) 3 "D = 3: units 3 and 4 missing"

        property Seed 25 "a growing activity.csv saved after every epoch holds the rows added so far, as a one-shot write of them" <| fun (seed: int) ->
            use folder = new TempFolder("vae-frames-")
            let random = Random seed
            let units = 1 + random.Next 6
            let csv = RunCsv.Activity()
            let path = folder.File "activity.csv"
            let mutable added = []
            for epoch in 1 .. 1 + random.Next 5 do
                for u in 0 .. units - 1 do
                    let row = ActivityRow(epoch, u, Math.Pow(10.0, -6.0 + 7.0 * random.NextDouble()), 2.0 * random.NextDouble())
                    csv.Add row
                    added <- added @ [ row ]
                csv.Save path
                Expect.equal (RunCsv.ReadActivity path |> List.ofSeq) added $"epoch {epoch}: every row so far, in order"
                let once = folder.File "once.csv"
                RunCsv.WriteActivity(once, added)
                Expect.equal (File.ReadAllBytes path) (File.ReadAllBytes once) $"epoch {epoch}: the bytes of a one-shot write"

        testCase "final active units pivot by model and latent size, averaging runs that share a cell" <| fun () ->
            use folder = new TempFolder("vae-frames-")
            writeThreeRuns folder 2 |> ignore
            // A second VAE with D = 3: the cell holds the mean of the two.
            let random = Random 9
            let metrics, _ = writeRun random (folder.Sub "vae3-seed1") (TrainConfig(Latent = 3, Seed = 1UL)) 2
            let scan = RunStore.scan 0.01 folder.Path
            let runs = RunStore.runsFrame scan.Summaries
            let pivot =
                runs |> Frame.pivotTable (fun _ r -> r.GetAs<string> "model") (fun _ r -> r.GetAs<int> "latent") (fun f -> f.GetColumn<float> "active_units" |> Stats.mean)
            Expect.equal (List.ofSeq pivot.RowKeys) [ "evae"; "vae" ] "rows: models"
            Expect.equal (List.ofSeq pivot.ColumnKeys |> List.sort) [ 3; 4; 5 ] "columns: latent sizes"
            let final name = runs.GetColumn<float> "active_units" |> Series.get name
            Expect.equal (pivot.GetColumn<float> 4 |> Series.get "evae") (final "evae4") "evae D=4"
            Expect.equal (pivot.GetColumn<float> 3 |> Series.get "vae") ((final "vae3" + float (List.last metrics).ActiveUnits) / 2.0) "vae D=3: the mean of two runs"
            Expect.isFalse (pivot.GetColumn<float> 4 |> Series.has "vae") "no vae with D = 4: missing"

        testCase "labels are the fewest last folder names that tell runs apart; a folder listed twice gets a suffix" <| fun () ->
            use folder = new TempFolder("vae-frames-")
            let random = Random 3
            for sub in [ "sweep/a/run"; "sweep/b/run"; "elsewhere/x" ] do
                writeRun random (folder.Sub sub) (TrainConfig(Latent = 2)) 1 |> ignore
            let a, b = RunStore.load (folder.Sub "sweep/a/run"), RunStore.load (folder.Sub "sweep/b/run")
            Expect.equal (RunStore.labels [ a; b ]) [ "a/run"; "b/run" ] "the parent folder tells them apart"
            Expect.equal (RunStore.labels [ a ]) [ "run" ] "one run: its name"
            Expect.equal (RunStore.labels [ a; RunStore.load (folder.Sub "elsewhere/x") ]) [ "run"; "x" ] "different names: the names"
            Expect.equal (RunStore.labels [ a; a ]) [ "run"; "run-2" ] "a repeat"
            Expect.equal (List.ofSeq (RunStore.metricsFrame [ a; b ]).RowKeys) [ "a/run", 1; "b/run", 1 ] "metrics rows keyed by label"

        testCase "a run folder that does not load is skipped with its reason; none loading is an error" <| fun () ->
            use folder = new TempFolder("vae-frames-")
            writeThreeRuns folder 4 |> ignore
            let broken = folder.Sub "vae5"
            File.WriteAllText(Path.Combine(broken, "metrics.csv"), "epoch,lr\n1,0.001\n")
            let scan = RunStore.scan 0.01 folder.Path
            Expect.equal (scan.Summaries |> List.map (fun s -> s.Run)) [ "evae4"; "vae3" ] "the readable runs"
            Expect.equal (scan.Skipped |> List.map (fun s -> s.Run)) [ "vae5" ] "the broken one"
            Expect.stringContains scan.Skipped.Head.Reason "metrics.csv" "the reason names the file"
            let markdown, csvFile, skipped = Tables.write folder.Path (folder.File "results.md") 0.01
            Expect.equal skipped.Length 1 "write reports it"
            let text = File.ReadAllText markdown
            Expect.stringContains text "Skipped 1 run folder(s)" "listed under the table"
            Expect.stringContains text "- vae5: " "with its name"
            Expect.equal (File.ReadAllLines csvFile).Length 3 "the CSV: header and the two readable runs"
            for name in [ "evae4"; "vae3" ] do
                File.WriteAllText(Path.Combine(folder.Sub name, "config.json"), "{")
            let e = catches<VaeResearchException> (fun () -> RunStore.scan 0.01 folder.Path |> ignore)
            Expect.stringContains e.Message "none of the 3 run folder(s)" "none loads"
            Expect.stringContains e.Message "vae5: " "names each reason"

        testCase "every CSV the project writes reads with Frame.ReadCsv: column names, types and values" <| fun () ->
            use folder = new TempFolder("vae-frames-")
            let written = writeThreeRuns folder 5 |> Map.ofList
            let metrics, activity = written["evae4"]
            let run = folder.Sub "evae4"
            let metricsFrame = readCsv (Path.Combine(run, "metrics.csv")) (List.ofArray RunCsv.MetricsHeader) (all "Int32" [ "epoch"; "active_units" ])
            closeAll (floats metricsFrame "test_bound") [| for m in metrics -> m.TestBound |] "metrics.csv test_bound"
            closeAll (floats metricsFrame "seconds") [| for m in metrics -> m.Seconds |] "metrics.csv seconds"
            let activityFrame = readCsv (Path.Combine(run, "activity.csv")) (List.ofArray RunCsv.ActivityHeader) (all "Int32" [ "epoch"; "unit" ])
            closeAll (floats activityFrame "activity") [| for a in activity -> a.Activity |] "activity.csv activity"
            closeAll (floats activityFrame "kl") [| for a in activity -> a.Kl |] "activity.csv kl"
            // NOTE: Deedle reads a column of only 0 and 1 as Boolean: assignments.csv of a two-epitome model, and the
            // active column of `vae activity --csv` always.
            readCsv (Path.Combine(run, "assignments.csv")) (List.ofArray RunCsv.AssignmentHeader) (all "Int32" [ "epoch"; "epitome"; "count" ]) |> ignore
            // vae activity --csv
            let units = Activity.final (Activity.history (RunStore.load run))
            Activity.writeCsv (folder.File "units.csv") 0.01 units
            let unitsFrame = readCsv (folder.File "units.csv") [ "unit"; "activity"; "kl"; "active" ] [ "unit", "Int32"; "active", "Boolean" ]
            closeAll (floats unitsFrame "activity") [| for u in units -> u.Activity |] "units.csv activity"
            // vae tables: the CSV beside the Markdown (summaries of all three runs; vae3 has eval.json and parzen.json).
            let _, tablesCsv, _ = Tables.write folder.Path (folder.File "results.md") 0.01
            let tables =
                readCsv tablesCsv
                    [ "run"; "model"; "latent"; "epochs"; "train_bound"; "test_bound"; "nll"; "nll_standard_error"; "nll_k"; "nll_n"
                      "active_units"; "active_threshold"; "parzen_log_likelihood"; "parzen_standard_error"; "parzen_sigma" ]
                    (all "Int32" [ "latent"; "epochs"; "nll_k"; "nll_n"; "active_units" ] @ all "String" [ "run"; "model" ])
            Expect.equal (tables.GetColumn<string> "model" |> Series.values |> List.ofSeq) [ "evae D=4 K=2 s=1 k=1"; "vae D=3 k=1"; "vae D=5 k=5 bn" ] "model"
            Expect.equal (tables.GetColumn<int> "nll_k" |> Series.values |> List.ofSeq) [ 5000 ] "nll_k: missing where not evaluated"
            closeAll (floats tables "test_bound") [| for name in [ "evae4"; "vae3"; "vae5" ] -> (List.last (fst written[name])).TestBound |] "tables test_bound"
    ]
