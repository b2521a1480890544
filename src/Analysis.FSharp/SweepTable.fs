namespace VaeResearch.Analysis

// The table of a sweep (`vae sweep table DIR`): the spec's [table] section applied to the runs that
// `vae sweep run` recorded in DIR/sweep.json. Every planned run is measured from its run folder (the run
// store's summary); a run that is missing, broken or unfinished, or lacks the value the table needs, is
// skipped with the reason and the table is built from the others. The runs that were measured form a Deedle
// frame (one row per run: its row and column keys, the other settings, seed, value and annotation), and the
// table is its pivot: row keys x column keys, each cell averaged over seeds first and then reduced over the
// remaining settings (mean, max or min). Published values from the spec sit beside the cells they match.
//
// Layout of the Markdown table: the spec's own shape (one line per row key, one column per column key),
// so that it reads like the paper's table; a cell is "ours" with the published value in brackets:
//     283.1 ± 1.2 (8) [paper 283 (8), +0.1]
// i.e. mean ± sample standard deviation over seeds (the "±" part only with several seeds), the annotation in
// parentheses, then the paper's value, its annotation and ours − paper. The CSV has the same numbers unrounded,
// one line per cell, for pandas or Deedle.

open System
open System.Globalization
open System.IO
open System.Text
open System.Text.Json
open Deedle
open VaeResearch
open VaeResearch.Training

/// <summary>
/// How a cell of a sweep table combines the settings that are neither its row keys, its column keys nor the seed
/// (the spec's <c>reduce</c>), after averaging over seeds.
/// </summary>
[<RequireQualifiedAccess>]
type SweepReduce =
    /// The mean of the settings' seed means.
    | Mean
    /// The setting combination with the highest seed mean.
    | Max
    /// The setting combination with the lowest seed mean.
    | Min

/// <summary>
/// The spec's <c>[table]</c> section, as sweep.json records it.
/// </summary>
type SweepTableSpec =
    { /// Setting keys whose values make the table's rows, outer first.
      Rows: string list
      /// Setting keys whose values make the table's columns, outer first.
      Columns: string list
      /// What a cell shows: nll, parzen, test_bound, train_bound, kl, active_units or a metrics.csv column.
      Value: string
      /// What a cell shows in parentheses (same choices as Value), if anything.
      Annotate: string option
      /// How a cell combines the settings that vary besides rows, columns and seed.
      Reduce: SweepReduce
      /// Activity threshold of active_units (A_u above it counts as active).
      Threshold: float }

/// <summary>
/// What <c>vae sweep table --value/--annotate/--threshold</c> changes in the spec's table: the same runs and layout,
/// another quantity or activity threshold. None keeps the spec's choice.
/// </summary>
type SweepTableOverrides =
    { /// The quantity the cells show instead of the spec's value.
      Value: string option
      /// The quantity in parentheses instead of the spec's annotation; "none" for none.
      Annotate: string option
      /// The activity threshold of active_units instead of the spec's.
      Threshold: float option }

    /// The spec's table as it is.
    static member None = { Value = None; Annotate = None; Threshold = None }

    /// Overrides from the command line's options (null: not given).
    static member OfOptions(value: string | null, annotate: string | null, threshold: Nullable<float>) =
        { Value = Option.ofObj value; Annotate = Option.ofObj annotate; Threshold = Option.ofNullable threshold }

/// <summary>
/// A published value from the spec's <c>[[published]]</c> entries: the cell it belongs to and the paper's numbers.
/// </summary>
type PublishedEntry =
    { /// Row and column keys with their canonical values (see <c>SweepTable.canonical</c>); a cell matches when all agree.
      Where: (string * string) list
      /// The published value.
      Number: float
      /// The published value as the spec wrote it (canonical text, e.g. "283").
      Text: string
      /// The published annotation as the spec wrote it, if any.
      Annotation: string option }

/// One run that sweep.json lists, with the keys the table reads from it.
type SweepRunPlan =
    { /// Position in the sweep (sweep.json's "index"); orders rows, columns and ties.
      Index: int
      /// The run's name (sweep.json's "name").
      Name: string
      /// Full path of its run folder.
      Folder: string
      /// Every setting the spec gave the run, canonical, in sweep.json's order.
      Settings: (string * string) list
      /// Its values of the table's row keys (settings first, then config).
      RowKey: string list
      /// Its values of the table's column keys.
      ColumnKey: string list
      /// The settings that are neither row keys, column keys nor the seed: the ones a cell reduces over.
      Others: (string * string) list
      /// Its seed (canonical).
      Seed: string
      /// Epochs its configuration asks for, when sweep.json records the configuration.
      Epochs: int option }

/// <summary>
/// sweep.json read into a plan: the table to build, the published values and the runs.
/// </summary>
type SweepPlan =
    { /// The sweep folder (full path).
      Directory: string
      /// The sweep's name (title of the table).
      Title: string
      /// The sweep's description ("" when none).
      Description: string
      /// The table section of the spec.
      Table: SweepTableSpec
      /// The spec's published values.
      Published: PublishedEntry list
      /// The planned runs, ordered by Index.
      Runs: SweepRunPlan list }

/// One cell of a sweep table.
type SweepCell =
    { /// Values of the row keys.
      Row: string list
      /// Values of the column keys.
      Column: string list
      /// The cell's value (None: no run of the cell could be measured).
      Mean: float option
      /// Sample standard deviation over seeds (None with one seed); for reduce = mean, pooled over the settings.
      StandardDeviation: float option
      /// Seeds (runs) behind the value: those of the chosen setting (max, min), the fewest of any setting (mean).
      Seeds: int
      /// The annotation: the seed mean of the chosen setting (max, min), or the mean over the settings (mean).
      AnnotationMean: float option
      /// The other settings of the value for max and min (and for mean when only one combination exists), e.g. "epitome_size=5".
      Chosen: string
      /// The published value of the cell, if the spec has one.
      Paper: PublishedEntry option
      /// Ours − published, when both exist.
      Difference: float option }

/// <summary>
/// A sweep's table: the plan, the layout (row and column keys in grid order), every cell row by row, the frame of
/// measured runs the cells were pivoted from, and the runs that were skipped with the reasons.
/// </summary>
type SweepTable =
    { /// What sweep.json asked for.
      Plan: SweepPlan
      /// Row keys in grid order (first run that has them).
      RowKeys: string list list
      /// Column keys in grid order.
      ColumnKeys: string list list
      /// Every cell, row by row (RowKeys x ColumnKeys).
      Cells: SweepCell list
      /// <summary>
      /// The runs that were measured, one row each, keyed by position: <c>run</c>, <c>index</c>, the row and column
      /// keys by name, <c>cell_row</c> and <c>cell_column</c> (the keys joined), <c>setting</c> (the other settings),
      /// <c>seed</c>, <c>value</c> and <c>annotation</c> (missing without annotate).
      /// </summary>
      Observations: Frame<int, string>
      /// The runs left out, with the reason (missing, broken, unfinished, or without the value).
      Skipped: SkippedRun list }

/// <summary>
/// Builds the table of a sweep folder (<c>vae sweep table</c>) from its sweep.json and run folders.
/// </summary>
[<RequireQualifiedAccess>]
module SweepTable =

    /// File name of the sweep record inside a sweep folder.
    [<Literal>]
    let SweepFile = "sweep.json"

    /// The values a table can show (besides any other metrics.csv column).
    let private named = [ "nll"; "parzen"; "test_bound"; "train_bound"; "kl"; "active_units" ]

    let private inv = CultureInfo.InvariantCulture

    /// Whether a table can show <paramref name="name"/>: one of the named values or a metrics.csv column.
    let private isQuantity (name: string) = List.contains name named || Array.contains name RunCsv.MetricsHeader

    /// What a table can show, as errors and --help say it.
    let quantities =
        $"""one of {String.Join(", ", named)} or a metrics.csv column ({String.Join(", ", RunCsv.MetricsHeader)})"""

    let private kind (e: JsonElement) = e.ValueKind.ToString().ToLowerInvariant()

    /// <summary>
    /// A JSON value as keys compare and show it: strings as they are; numbers normalised (8 and 8.0 give "8",
    /// 0.5 gives "0.5"); true and false; null as ""; an array as its items joined by commas (so config.json's hidden
    /// [500, 500] matches the spec's "500,500"); an object as its JSON text.
    /// </summary>
    let rec canonical (value: JsonElement) : string =
        match value.ValueKind with
        | JsonValueKind.String -> nonNull (value.GetString())
        | JsonValueKind.Number ->
            match value.TryGetInt64() with
            | true, i -> i.ToString(inv)
            | _ ->
                match value.TryGetUInt64() with
                | true, u -> u.ToString(inv)
                | _ ->
                    let d = value.GetDouble()
                    if Double.IsInteger d && abs d < 9e18 then (int64 d).ToString(inv) else d.ToString("R", inv)
        | JsonValueKind.True -> "true"
        | JsonValueKind.False -> "false"
        | JsonValueKind.Array -> String.Join(",", value.EnumerateArray() |> Seq.map canonical)
        | JsonValueKind.Object -> value.GetRawText()
        | _ -> ""

    /// A member of an object, null included.
    let private tryMember (e: JsonElement) (key: string) =
        if e.ValueKind <> JsonValueKind.Object then None
        else
            match e.TryGetProperty key with
            | true, v -> Some v
            | _ -> None

    /// A member of an object that is not null.
    let private tryValue (e: JsonElement) (key: string) =
        tryMember e key |> Option.filter (fun v -> v.ValueKind <> JsonValueKind.Null)

    /// Reads sweep.json's members with errors naming the file and the key.
    type private Reader(file: string) =
        member _.Fail(field: string, expected: string, found: string) : 'T = raise (FileFormatException(file, field, expected, found))

        member this.String(e: JsonElement, key: string, field: string) =
            match tryValue e key with
            | Some v when v.ValueKind = JsonValueKind.String -> nonNull (v.GetString())
            | Some v -> this.Fail(field, "a string", kind v)
            | None -> this.Fail(field, "a string", "no such key")

        member this.OptionalString(e: JsonElement, key: string, field: string) =
            tryValue e key |> Option.map (fun _ -> this.String(e, key, field))

        member this.Number(v: JsonElement, field: string) =
            match v.ValueKind with
            | JsonValueKind.Number -> v.GetDouble()
            | JsonValueKind.String ->
                match Double.TryParse(nonNull (v.GetString()), NumberStyles.Float, inv) with
                | true, x -> x
                | _ -> this.Fail(field, "a number", $"'{v.GetString()}'")
            | _ -> this.Fail(field, "a number", kind v)

        member this.Int(v: JsonElement, field: string) =
            let x = this.Number(v, field)
            if Double.IsInteger x && abs x <= float Int32.MaxValue then int x else this.Fail(field, "an integer", x.ToString("R", inv))

        member this.Strings(e: JsonElement, key: string, field: string) =
            match tryValue e key with
            | None -> []
            | Some v when v.ValueKind = JsonValueKind.Array ->
                [ for i, item in Seq.indexed (v.EnumerateArray()) ->
                      if item.ValueKind = JsonValueKind.String then nonNull (item.GetString())
                      else this.Fail($"{field}[{i}]", "a string", kind item) ]
            | Some v -> this.Fail(field, "an array of strings", kind v)

        member this.Objects(e: JsonElement, key: string, field: string) =
            match tryValue e key with
            | None -> []
            | Some v when v.ValueKind = JsonValueKind.Array ->
                [ for i, item in Seq.indexed (v.EnumerateArray()) ->
                      if item.ValueKind = JsonValueKind.Object then item else this.Fail($"{field}[{i}]", "an object", kind item) ]
            | Some v -> this.Fail(field, "an array", kind v)

    let private readTable (r: Reader) (table: JsonElement) : SweepTableSpec =
        let rows = r.Strings(table, "rows", "table.rows")
        let columns = r.Strings(table, "columns", "table.columns")
        match rows |> List.tryFind (fun k -> List.contains k columns) with
        | Some k -> r.Fail("table.columns", "keys that are not also rows", $"'{k}' in both")
        | None -> ()
        match rows @ columns |> List.countBy id |> List.tryFind (fun (_, n) -> n > 1) with
        | Some(k, _) -> r.Fail("table", "each key once in rows and columns", $"'{k}' twice")
        | None -> ()
        let quantity field name = if isQuantity name then name else r.Fail(field, quantities, $"'{name}'")
        let value = quantity "table.value" (r.String(table, "value", "table.value"))
        let annotate = r.OptionalString(table, "annotate", "table.annotate") |> Option.map (quantity "table.annotate")
        let reduce =
            match r.OptionalString(table, "reduce", "table.reduce") with
            | None
            | Some "mean" -> SweepReduce.Mean
            | Some "max" -> SweepReduce.Max
            | Some "min" -> SweepReduce.Min
            | Some other -> r.Fail("table.reduce", "mean, max or min", $"'{other}'")
        let threshold =
            match tryValue table "threshold" with
            | None -> UnitStatistics.DefaultThreshold
            | Some v ->
                let t = r.Number(v, "table.threshold")
                if t >= 0.0 && Double.IsFinite t then t else r.Fail("table.threshold", "a number >= 0", t.ToString("R", inv))
        { Rows = rows; Columns = columns; Value = value; Annotate = annotate; Reduce = reduce; Threshold = threshold }

    let private readPublished (r: Reader) (table: SweepTableSpec) (i: int) (entry: JsonElement) : PublishedEntry =
        let field = $"published[{i}]"
        let where =
            match tryValue entry "where" with
            | Some w when w.ValueKind = JsonValueKind.Object ->
                [ for p in w.EnumerateObject() ->
                      if List.contains p.Name (table.Rows @ table.Columns) then p.Name, canonical p.Value
                      else r.Fail($"{field}.where.{p.Name}", "a key of table.rows or table.columns", $"'{p.Name}'") ]
            | Some w -> r.Fail($"{field}.where", "an object", kind w)
            | None -> r.Fail($"{field}.where", "an object", "no such key")
        let value =
            match tryValue entry "value" with
            | Some v -> v
            | None -> r.Fail($"{field}.value", "a number", "no such key")
        { Where = where
          Number = r.Number(value, $"{field}.value")
          Text = canonical value
          Annotation = tryValue entry "annotate" |> Option.map canonical }

    let private readRun (r: Reader) (dir: string) (table: SweepTableSpec) (position: int) (run: JsonElement) : SweepRunPlan =
        let field = $"runs[{position}]"
        let name = r.String(run, "name", $"{field}.name")
        let folder = r.String(run, "folder", $"{field}.folder")
        let settings =
            match tryValue run "settings" with
            | Some s when s.ValueKind = JsonValueKind.Object -> s
            | Some s -> r.Fail($"{field}.settings", "an object", kind s)
            | None -> r.Fail($"{field}.settings", "an object", "no such key")
        let config = tryValue run "config"
        let lookup key =
            match tryMember settings key with
            | Some v -> Some(canonical v)
            | None -> config |> Option.bind (fun c -> tryMember c key) |> Option.map canonical
        let required role key =
            match lookup key with
            | Some v -> v
            | None -> r.Fail($"{field} ({name})", $"the table's {role} key '{key}' among its settings or config", "neither")
        let keys = table.Rows @ table.Columns
        let settingList = [ for p in settings.EnumerateObject() -> p.Name, canonical p.Value ]
        { Index = (match tryValue run "index" with Some v -> r.Int(v, $"{field}.index") | None -> position)
          Name = name
          Folder = Path.GetFullPath(Path.Combine(dir, folder))
          Settings = settingList
          RowKey = table.Rows |> List.map (required "row")
          ColumnKey = table.Columns |> List.map (required "column")
          Others = settingList |> List.filter (fun (k, _) -> k <> "seed" && not (List.contains k keys))
          Seed = lookup "seed" |> Option.defaultValue ""
          Epochs =
            match tryValue settings "epochs" |> Option.orElse (config |> Option.bind (fun c -> tryValue c "epochs")) with
            | Some v -> Some(r.Int(v, $"{field}.config.epochs"))
            | None -> None }

    /// <summary>
    /// Reads <c>DIR/sweep.json</c> (written by <c>vae sweep run</c>) into a plan. A missing file, invalid JSON, a sweep
    /// without a table section or a table that names an unknown value or key is an error naming the file and the key.
    /// </summary>
    let readPlan (sweepDir: string) : SweepPlan =
        let dir = Path.GetFullPath sweepDir
        let file = Path.Combine(dir, SweepFile)
        if not (File.Exists file) then
            raise (VaeResearchException($"no {SweepFile} in '{sweepDir}' (vae sweep run writes it)"))
        let text =
            try File.ReadAllText file
            with :? IOException | :? UnauthorizedAccessException as e -> raise (VaeResearchException($"cannot read {file}: {e.Message}", e))
        let doc =
            try JsonDocument.Parse text
            with :? JsonException as e -> raise (FileFormatException(file, "document", "valid JSON", e.Message, e))
        use _ = doc
        let root = doc.RootElement
        let r = Reader file
        if root.ValueKind <> JsonValueKind.Object then r.Fail("document", "a JSON object", kind root)
        let table =
            match tryValue root "table" with
            | Some t when t.ValueKind = JsonValueKind.Object -> readTable r t
            | Some t -> r.Fail("table", "an object", kind t)
            | None -> raise (VaeResearchException($"{file}: the sweep's spec has no [table] section, so there is no table to build"))
        let published = r.Objects(root, "published", "published") |> List.mapi (readPublished r table)
        let runs =
            r.Objects(root, "runs", "runs")
            |> List.mapi (readRun r dir table)
            |> List.sortBy (fun run -> run.Index)
        { Directory = dir
          Title = r.OptionalString(root, "name", "name") |> Option.defaultValue (nonNull (Path.GetFileName dir))
          Description = r.OptionalString(root, "description", "description") |> Option.defaultValue ""
          Table = table
          Published = published
          Runs = runs }

    /// A quantity of a measured run, or why it has none.
    let private quantity (threshold: float) (run: Run) (summary: RunSummary) (name: string) : Result<float, string> =
        let have reason value = match value with Some v -> Result.Ok v | None -> Result.Error reason
        match name with
        | "nll" -> summary.Eval |> Option.map (fun e -> e.Nll) |> have "no eval.json (vae eval has not run)"
        | "parzen" -> summary.Parzen |> Option.map (fun p -> p.LogLikelihood) |> have $"no {RunStore.ParzenFile} (vae parzen has not run)"
        | "active_units" ->
            summary.ActiveUnits
            |> Option.map float
            |> have $"""activity.csv has no rows, and active units at threshold {threshold.ToString inv} need them"""
        | "test_bound" -> summary.TestBound |> have "no completed epoch"
        | "train_bound" -> summary.TrainBound |> have "no completed epoch"
        | "kl" -> summary.Kl |> have "no completed epoch"
        | column ->
            RunStore.finalMetrics run
            |> Option.map (fun m ->
                match column with
                | "epoch" -> float m.Epoch
                | "lr" -> m.Lr
                | "beta" -> m.Beta
                | "seconds" -> m.Seconds
                | other -> raise (InvalidOperationException($"no metrics.csv column '{other}'")))
            |> have "no completed epoch"

    /// <summary>
    /// A planned run loaded with its summary (at the table's threshold) when it has completed every epoch its
    /// configuration asks for, or why not: no folder, unfinished, or unreadable (the run store's error).
    /// </summary>
    let finished (plan: SweepPlan) (run: SweepRunPlan) : Result<Run * RunSummary, string> =
        let relative = Path.GetRelativePath(plan.Directory, run.Folder).Replace('\\', '/')
        if not (Directory.Exists run.Folder) then Result.Error $"folder {relative} does not exist (the run has not started)"
        else
            try
                let loaded = RunStore.load run.Folder
                let summary = RunStore.summarize plan.Table.Threshold run.Name loaded
                let planned = run.Epochs |> Option.defaultValue summary.Epochs
                if summary.CompletedEpochs < planned then
                    Result.Error $"unfinished: {summary.CompletedEpochs} of {planned} epochs completed"
                else Result.Ok(loaded, summary)
            with :? VaeResearchException | :? IOException | :? UnauthorizedAccessException | :? JsonException as e -> Result.Error e.Message

    /// Measures one planned run: its value and annotation, or why it is skipped.
    let private measure (spec: SweepTableSpec) (plan: SweepPlan) (run: SweepRunPlan) : Result<float * float option, string> =
        match finished plan run with
        | Result.Error why -> Result.Error why
        | Result.Ok(loaded, summary) ->
            let get role name =
                match quantity spec.Threshold loaded summary name with
                | Result.Ok v when Double.IsFinite v -> Result.Ok v
                | Result.Ok v -> Result.Error $"{role} {name} is {v.ToString inv}"
                | Result.Error why -> Result.Error $"{role} {name}: {why}"
            match get "value" spec.Value with
            | Result.Error why -> Result.Error why
            | Result.Ok value ->
                match spec.Annotate with
                | None -> Result.Ok(value, None)
                | Some name ->
                    match get "annotate" name with
                    | Result.Ok a -> Result.Ok(value, Some a)
                    | Result.Error why -> Result.Error why

    /// Joins key values into one frame key.
    let private join (values: string list) = String.Join("\u001f", values)

    /// "key=value, key=value".
    let private label (pairs: (string * string) list) = String.Join(", ", pairs |> List.map (fun (k, v) -> $"{k}={v}"))

    /// The statistics of one cell before its published value is added.
    type private CellStats =
        { Mean: float
          Sd: float option
          Seeds: int
          Annotation: float option
          Chosen: string }

    let private finite (v: float) = if Double.IsFinite v then Some v else None

    /// One cell from its runs (rows of the observations frame): seed statistics per setting combination, then reduce.
    let private summarizeCell (reduce: SweepReduce) (cell: Frame<int, string>) : CellStats =
        let byCombination = cell |> Frame.groupRowsByString "setting"
        let values = byCombination.GetColumn<float> "value"
        let means = values |> Stats.levelMean fst
        let sds = values |> Stats.levelStdDev fst
        let counts = values |> Stats.levelCount fst
        let annotations = byCombination.GetColumn<float> "annotation" |> Stats.levelMean fst
        let first = byCombination.GetColumn<float> "index" |> Stats.levelMin fst
        let combinations =
            [ for setting, mean in Series.observations means ->
                  {| Setting = setting
                     Mean = mean
                     Sd = Series.tryGet setting sds |> Option.bind finite
                     Seeds = Series.get setting counts
                     Annotation = Series.tryGet setting annotations |> Option.bind finite
                     First = Series.get setting first |} ]
        let pick (order: float -> float) =
            let best = combinations |> List.sortBy (fun c -> order c.Mean, c.First) |> List.head
            { Mean = best.Mean; Sd = best.Sd; Seeds = best.Seeds; Annotation = best.Annotation; Chosen = best.Setting }
        match reduce with
        | SweepReduce.Max -> pick (fun m -> -m)
        | SweepReduce.Min -> pick id
        | SweepReduce.Mean ->
            let variances = combinations |> List.choose (fun c -> c.Sd |> Option.map (fun s -> s * s))
            { Mean = Stats.mean means
              Sd = (if variances.IsEmpty then None else Some(sqrt (List.average variances)))
              Seeds = combinations |> List.map (fun c -> c.Seeds) |> List.min
              Annotation = Stats.mean annotations |> finite
              Chosen = (match combinations with [ only ] -> only.Setting | _ -> "") }

    /// <summary>
    /// Builds the table of a plan: measures every run (skipping, with the reason, those that cannot be measured),
    /// pivots the measured runs into cells and matches the published values. Never fails because of a run.
    /// </summary>
    let build (plan: SweepPlan) : SweepTable =
        let spec = plan.Table
        let measured = plan.Runs |> List.map (fun run -> run, measure spec plan run)
        let skipped =
            [ for run, result in measured do
                  match result with
                  | Result.Error why -> { Run = run.Name; Reason = why.ReplaceLineEndings " " }
                  | Result.Ok _ -> () ]
        let observed = [| for run, result in measured do match result with Result.Ok(v, a) -> run, v, a | Result.Error _ -> () |]
        let keys = Array.init observed.Length id
        let column name (value: SweepRunPlan * float * float option -> 'V) = name, Series(keys, Array.map value observed) :> ISeries<int>
        let keyColumns =
            [ for i, key in List.indexed spec.Rows do
                  column key (fun (run, _, _) -> run.RowKey[i])
              for i, key in List.indexed spec.Columns do
                  column key (fun (run, _, _) -> run.ColumnKey[i]) ]
        let internalColumns =
            [ column "run" (fun (run, _, _) -> run.Name)
              column "index" (fun (run, _, _) -> float run.Index)
              column "cell_row" (fun (run, _, _) -> join run.RowKey)
              column "cell_column" (fun (run, _, _) -> join run.ColumnKey)
              column "setting" (fun (run, _, _) -> label run.Others)
              column "seed" (fun (run, _, _) -> run.Seed)
              column "value" (fun (_, v, _) -> v)
              column "annotation" (fun (_, _, a) -> Option.defaultValue nan a) ]
        let taken = internalColumns |> List.map fst
        let observations =
            Frame.ofColumns (internalColumns @ (keyColumns |> List.filter (fun (k, _) -> not (List.contains k taken))))
        let pivot =
            if observed.Length = 0 then None
            else
                observations
                |> Frame.pivotTable (fun _ r -> r.GetAs<string> "cell_row") (fun _ r -> r.GetAs<string> "cell_column") (summarizeCell spec.Reduce)
                |> Some
        let stats row col =
            match pivot with
            | Some p when p.ColumnKeys |> Seq.contains (join col) -> p.GetColumn<CellStats>(join col) |> Series.tryGet (join row)
            | _ -> None
        let rowKeys = plan.Runs |> List.map (fun r -> r.RowKey) |> List.distinct
        let columnKeys = plan.Runs |> List.map (fun r -> r.ColumnKey) |> List.distinct
        let paper (row: string list) (col: string list) =
            let values = List.zip (spec.Rows @ spec.Columns) (row @ col)
            plan.Published |> List.tryFind (fun p -> p.Where |> List.forall (fun kv -> List.contains kv values))
        let cells =
            [ for row in rowKeys do
                  for col in columnKeys ->
                      let s = stats row col
                      let published = paper row col
                      { Row = row
                        Column = col
                        Mean = s |> Option.map (fun s -> s.Mean)
                        StandardDeviation = s |> Option.bind (fun s -> s.Sd)
                        Seeds = s |> Option.map (fun s -> s.Seeds) |> Option.defaultValue 0
                        AnnotationMean = s |> Option.bind (fun s -> s.Annotation)
                        Chosen = s |> Option.map (fun s -> s.Chosen) |> Option.defaultValue ""
                        Paper = published
                        Difference =
                          match s, published with
                          | Some s, Some p -> Some(s.Mean - p.Number)
                          | _ -> None } ]
        { Plan = plan
          RowKeys = rowKeys
          ColumnKeys = columnKeys
          Cells = cells
          Observations = observations
          Skipped = skipped }

    /// <summary>
    /// The plan with the table's value, annotation or activity threshold replaced (<c>SweepTableOverrides</c>). The
    /// spec's published values are of its own value, so they are dropped when the value changes. A name that is not a
    /// quantity, or a threshold that is negative or not finite, is an error naming the option.
    /// </summary>
    let withOverrides (overrides: SweepTableOverrides) (plan: SweepPlan) : SweepPlan =
        let check option (expected: string) name =
            if isQuantity name then name else raise (VaeResearchException($"--{option}: expected {expected}, got '{name}'"))
        let table = plan.Table
        let value = overrides.Value |> Option.map (check "value" quantities) |> Option.defaultValue table.Value
        let annotate =
            match overrides.Annotate with
            | Some "none" -> None
            | Some name -> Some(check "annotate" ("none or " + quantities) name)
            | None -> table.Annotate
        let threshold =
            match overrides.Threshold with
            | Some t when not (t >= 0.0 && Double.IsFinite t) ->
                raise (VaeResearchException($"""--threshold: expected a number >= 0, got {t.ToString("R", inv)}"""))
            | Some t -> t
            | None -> table.Threshold
        { plan with
            Table = { table with Value = value; Annotate = annotate; Threshold = threshold }
            Published = if value = table.Value then plan.Published else [] }

    /// <summary>
    /// The table of the sweep folder <paramref name="sweepDir"/>: <c>readPlan</c>, then <c>build</c>.
    /// </summary>
    let load (sweepDir: string) : SweepTable = readPlan sweepDir |> build

    /// <summary>
    /// A number as the Markdown table shows it (invariant culture): parzen with one decimal; nll, the bounds and kl
    /// with two; active units and epochs whole (one decimal when a mean is not whole); anything else with four
    /// significant digits.
    /// </summary>
    let format (quantity: string) (value: float) =
        match quantity with
        | "parzen" -> value.ToString("F1", inv)
        | "nll"
        | "test_bound"
        | "train_bound"
        | "kl" -> value.ToString("F2", inv)
        | "active_units"
        | "epoch" -> value.ToString((if Double.IsInteger value then "F0" else "F1"), inv)
        | _ -> value.ToString("G4", inv)

    /// A standard deviation as the table shows it: as <c>format</c>, but whole counts get one decimal.
    let private formatSpread (quantity: string) (sd: float) =
        match quantity with
        | "active_units"
        | "epoch" -> sd.ToString("F1", inv)
        | _ -> format quantity sd

    /// <summary>
    /// A difference with its sign, e.g. "+0.1" or "-2.35" (as <c>format</c>; no sign when it rounds to zero).
    /// </summary>
    let formatDifference (quantity: string) (difference: float) =
        let magnitude = format quantity (abs difference)
        if Double.Parse(magnitude, inv) = 0.0 then magnitude
        elif difference > 0.0 then "+" + magnitude
        else "-" + magnitude

    /// A key value as the table shows it (a dash for a null setting).
    let private shown (value: string) = if value = "" then "—" else value

    /// <summary>
    /// The Markdown text of a cell: "283.1 (8)", with several seeds "283.1 ± 1.2 (8)", with a published value
    /// "283.1 ± 1.2 (8) [paper 283 (8), +0.1]"; a dash when no run of the cell could be measured.
    /// </summary>
    let cellText (spec: SweepTableSpec) (cell: SweepCell) =
        let ours =
            match cell.Mean with
            | None -> "—"
            | Some mean ->
                let sd = cell.StandardDeviation |> Option.map (fun s -> " ± " + formatSpread spec.Value s) |> Option.defaultValue ""
                let annotation =
                    match spec.Annotate, cell.AnnotationMean with
                    | Some name, Some a -> $" ({format name a})"
                    | _ -> ""
                format spec.Value mean + sd + annotation
        match cell.Paper with
        | None -> ours
        | Some p ->
            let annotation = p.Annotation |> Option.map (fun a -> $" ({a})") |> Option.defaultValue ""
            let difference = cell.Difference |> Option.map (fun d -> ", " + formatDifference spec.Value d) |> Option.defaultValue ""
            $"{ours} [paper {p.Text}{annotation}{difference}]"

    /// The settings besides rows, columns and seed that take more than one value in the sweep.
    let private varying (plan: SweepPlan) =
        plan.Runs
        |> List.collect (fun r -> r.Others)
        |> List.groupBy fst
        |> List.filter (fun (_, values) -> (values |> List.distinct |> List.length) > 1)
        |> List.map fst

    /// <summary>
    /// The table as Markdown: the sweep's name as the title, its description, the table (row keys, then one column
    /// per column key; see <c>cellText</c>), a line naming the value, the annotation, the reduction and the
    /// activity threshold, published values that match no cell (if any), and the skipped runs with their reasons.
    /// </summary>
    let markdown (table: SweepTable) =
        let plan = table.Plan
        let spec = plan.Table
        let escape (s: string) = s.Replace("|", "\\|")
        let line (cells: string seq) = "| " + String.Join(" | ", cells |> Seq.map escape) + " |\n"
        let sb = StringBuilder()
        sb.Append("# ").Append(plan.Title).Append("\n\n") |> ignore
        if plan.Description <> "" then sb.Append(plan.Description.Trim()).Append("\n\n") |> ignore
        let columnLabels =
            if spec.Columns.IsEmpty then [ spec.Value ]
            else table.ColumnKeys |> List.map (fun key -> label (List.zip spec.Columns (List.map shown key)))
        sb.Append(line (spec.Rows @ columnLabels))
          .Append("|" + String.Join("|", [ for _ in spec.Rows -> "---" ] @ [ for _ in columnLabels -> "---:" ]) + "|\n")
        |> ignore
        let cells = table.Cells |> List.chunkBySize (max 1 table.ColumnKeys.Length)
        for row, rowCells in List.zip table.RowKeys cells do
            sb.Append(line ((row |> List.map shown) @ (rowCells |> List.map (cellText spec)))) |> ignore
        let annotate = spec.Annotate |> Option.defaultValue "none"
        let reduce = (string spec.Reduce).ToLowerInvariant()
        let over =
            match varying plan with
            | [] -> " (no other setting varies)"
            | keys -> " over " + String.Join(", ", keys)
        sb.Append('\n')
          .Append($"Value: {spec.Value}; in parentheses: {annotate}; reduce: {reduce}{over}; activity threshold: {spec.Threshold.ToString inv}. ")
          .Append("A cell with several seeds shows their mean ± sample standard deviation; [paper P (A), d] is the published value and d = ours − paper.\n")
        |> ignore
        let unmatched =
            plan.Published
            |> List.filter (fun p -> not (table.Cells |> List.exists (fun c -> c.Paper = Some p)))
        if not unmatched.IsEmpty then
            sb.Append("\nPublished values that match no cell: ")
              .Append(String.Join("; ", unmatched |> List.map (fun p -> $"{label p.Where} = {p.Text}")))
              .Append(".\n")
            |> ignore
        if table.Skipped.IsEmpty then sb.Append("\nSkipped runs: none.\n") |> ignore
        else
            sb.Append("\nSkipped runs:\n\n") |> ignore
            for s in table.Skipped do
                sb.Append("- ").Append(s.Run).Append(": ").Append(s.Reason).Append('\n') |> ignore
        sb.ToString()

    /// <summary>
    /// The table as CSV, one line per cell (invariant culture, fields with a comma, quote or line break quoted):
    /// the row keys and column keys by name, then <c>value</c>, <c>sd</c>, <c>n_seeds</c>, <c>annotation</c>,
    /// <c>published</c>, <c>published_annotation</c>, <c>difference</c> (ours − published) and <c>chosen</c> (the
    /// other settings of the value; see <c>SweepCell.Chosen</c>); a missing number is an empty field. pandas reads it
    /// as it is; Deedle's <c>Frame.ReadCsv</c> parses a key like hidden = "500,500" as the number 500500 (a thousands
    /// separator) unless the column's type is given: <c>Frame.ReadCsv(path, schema = "hidden=string")</c>.
    /// </summary>
    let csv (table: SweepTable) =
        let spec = table.Plan.Table
        let quote (s: string) = if s.IndexOfAny [| ','; '"'; '\n'; '\r' |] >= 0 then "\"" + s.Replace("\"", "\"\"") + "\"" else s
        let number (v: float option) = v |> Option.map (fun x -> x.ToString("R", inv)) |> Option.defaultValue ""
        let sb = StringBuilder()
        let header =
            spec.Rows @ spec.Columns
            @ [ "value"; "sd"; "n_seeds"; "annotation"; "published"; "published_annotation"; "difference"; "chosen" ]
        sb.Append(String.Join(",", header |> List.map quote)).Append('\n') |> ignore
        for c in table.Cells do
            let fields =
                (c.Row @ c.Column)
                @ [ number c.Mean
                    number c.StandardDeviation
                    string c.Seeds
                    number c.AnnotationMean
                    number (c.Paper |> Option.map (fun p -> p.Number))
                    c.Paper |> Option.bind (fun p -> p.Annotation) |> Option.defaultValue ""
                    number c.Difference
                    c.Chosen ]
            sb.Append(String.Join(",", fields |> List.map quote)).Append('\n') |> ignore
        sb.ToString()

    /// An --out that names the CSV instead of the Markdown file is an error (checked before any work).
    let private checkMarkdownPath (mdPath: string) =
        if (nonNull (Path.GetExtension mdPath)).Equals(".csv", StringComparison.OrdinalIgnoreCase) then
            raise (VaeResearchException($"--out names the Markdown file (e.g. table.md); the CSV is written beside it, got '{mdPath}'"))

    /// <summary>
    /// Writes the Markdown of <paramref name="table"/> to <paramref name="mdPath"/> and the CSV beside it (same name,
    /// .csv), atomically; returns both full paths.
    /// </summary>
    let save (table: SweepTable) (mdPath: string) : string * string =
        checkMarkdownPath mdPath
        let csvPath = nonNull (Path.ChangeExtension(mdPath, ".csv"))
        AtomicFile.WriteAllText(mdPath, markdown table)
        AtomicFile.WriteAllText(csvPath, csv table)
        Path.GetFullPath mdPath, Path.GetFullPath csvPath

    /// <summary>
    /// Where <c>write</c> puts a table by default: DIR/table.md, or with overrides a name that says what changed
    /// (DIR/table-test_bound.md, DIR/table-threshold-0.1.md, DIR/table-nll-annotate-none.md), so that the spec's own
    /// table is not overwritten.
    /// </summary>
    let defaultPath (sweepDir: string) (overrides: SweepTableOverrides) =
        let changes =
            Option.toList overrides.Value
            @ (overrides.Annotate |> Option.map (fun a -> "annotate-" + a) |> Option.toList)
            @ (overrides.Threshold |> Option.map (fun t -> "threshold-" + t.ToString("R", inv)) |> Option.toList)
        Path.Combine(sweepDir, String.Join("-", "table" :: changes) + ".md")

    /// <summary>
    /// Builds the table of <paramref name="sweepDir"/> with <paramref name="overrides"/> applied and writes it to
    /// <paramref name="outMd"/> (default <c>defaultPath</c>: DIR/table.md without overrides) and the CSV beside it
    /// (same name, .csv); returns both full paths. Skipped runs are listed in the Markdown and left out of the CSV's
    /// numbers.
    /// </summary>
    let write (sweepDir: string) (outMd: string option) (overrides: SweepTableOverrides) : string * string =
        let mdPath = outMd |> Option.defaultValue (defaultPath sweepDir overrides)
        checkMarkdownPath mdPath
        save (readPlan sweepDir |> withOverrides overrides |> build) mdPath
