namespace VaeResearch.Analysis

// The run store: a run folder (docs/contracts.md, "Run folder") read into typed records, so analyses work
// on values, not files, and the Deedle frames built from them: the runs frame (one row per run, from the
// flat run summary), the metrics frame (run x epoch) and the activity frame (run x epoch x unit). The CSV
// files are read by the core's RunCsv (same header checks as training uses); eval.json and parzen.json
// are read here with errors that name the file and the key.

open System
open System.Collections.Generic
open System.Globalization
open System.IO
open System.Text.Json
open Deedle
open VaeResearch
open VaeResearch.Training

/// <summary>
/// The contents of <c>eval.json</c> written by <c>vae eval</c>: the L_k estimate of the test NLL.
/// </summary>
type EvalResult =
    { /// NLL = -mean_x L_k(x) in nats.
      Nll: float
      /// Standard error of the mean.
      StandardError: float
      /// Importance samples k (Burda's k; K is the epitome size).
      Samples: int
      /// Test images evaluated.
      N: int
      /// Binarization of the test images.
      Binarize: string
      /// Epochs of the checkpoint that was evaluated, when recorded.
      Epoch: int option
      /// How the samples were spent on eVAE/mVAE ("per_epitome", "total", "ystar"); None in files from before the key.
      Budget: string option
      /// Importance samples drawn per image in all (k G for per_epitome); None in files from before the key.
      SamplesDrawn: int option
      /// Seed of the test images' binarization when `vae eval --binarize-seed` gave one; None: the run's seed.
      BinarizeSeed: uint64 option }

/// <summary>
/// The contents of <c>parzen.json</c> (docs/contracts.md, "JSON outputs", <c>parzen --json</c>): a Parzen-window log-likelihood estimate.
/// </summary>
type ParzenResult =
    { /// Kernel width chosen on the validation images (or given with --sigma).
      Sigma: float
      /// Mean test log-likelihood in nats.
      LogLikelihood: float
      /// Standard error of the mean test log-likelihood.
      StandardError: float
      /// <summary>
      /// Mean validation log-likelihood at <c>Sigma</c>.
      /// </summary>
      ValidationLogLikelihood: float
      /// Generated samples the kernels sit on.
      NSamples: int
      /// Test images scored (0 when the file does not record it).
      NTest: int
      /// Validation images of the sigma search (0 when the file does not record it).
      NValidation: int
      /// Every sigma tried with its mean validation log-likelihood (empty when not recorded).
      SigmaSearch: (float * float)[]
      /// <summary>
      /// The run trained on some of the validation images that chose sigma (<c>vae parzen --allow-trained-validation</c>):
      /// the sigma is then biased towards the training data. parzen.json records the key only when true.
      /// </summary>
      ValidationInTraining: bool }

/// A run folder read into memory: configuration, per-epoch metrics and activity, and the evaluations written so far.
type Run =
    { /// Full path of the folder.
      Path: string
      /// Folder name, used as the run's label.
      Name: string
      /// Every training setting (config.json).
      Config: TrainConfig
      /// One row per completed epoch (metrics.csv; empty before the first epoch).
      Metrics: MetricsRow[]
      /// One row per epoch and unit (activity.csv; empty before the first epoch).
      Activity: ActivityRow[]
      /// <summary>
      /// eval.json, when <c>vae eval</c> has run.
      /// </summary>
      Eval: EvalResult option
      /// <summary>
      /// parzen.json, when <c>vae parzen</c> has run on this run.
      /// </summary>
      Parzen: ParzenResult option
      /// Whether checkpoint.safetensors exists (images need the model).
      HasCheckpoint: bool }

/// <summary>
/// One run as one flat record: every setting of config.json, the final metrics, eval.json and parzen.json. It is
/// the single source of the results tables (<c>vae tables</c>, the report) and of the runs frame
/// (<c>RunStore.runsFrame</c>), whose columns are named as config.json,
/// metrics.csv and the tables CSV name them.
/// </summary>
type RunSummary =
    { /// The run's label, its row key in the frames (<c>RunStore.labels</c>: its last folder names, as few as tell the runs apart).
      Run: string
      /// Full path of the folder.
      Path: string
      /// The model in brief, e.g. "vae D=50 k=1" or "evae D=50 K=25 s=25 k=1".
      Description: string
      /// Data set: "mnist" or "synthetic".
      Dataset: string
      /// True latent dimension of the synthetic data set.
      SyntheticDimension: int
      /// Model family: "vae", "evae" or "mvae".
      Model: string
      /// Importance samples k of the training objective.
      ImportanceSamples: int
      /// Decoder likelihood: "bernoulli" or "gaussian".
      Decoder: string
      /// Latent units D.
      Latent: int
      /// Hidden layer widths, comma-separated (e.g. "200,200").
      Hidden: string
      /// Hidden activation: "softplus", "tanh" or "relu".
      Activation: string
      /// Minibatch size.
      Batch: int
      /// Epochs the run was configured to train.
      Epochs: int
      /// Learning-rate schedule: "constant" or "burda".
      Schedule: string
      /// Base learning rate.
      Lr: float
      /// Adam beta1.
      AdamBeta1: float
      /// Adam beta2.
      AdamBeta2: float
      /// Adam epsilon.
      AdamEps: float
      /// KL weight lambda.
      KlWeight: float
      /// Warm-up epochs (0: none).
      WarmupEpochs: int
      /// Batch normalization.
      Batchnorm: bool
      /// Dropout probability on z.
      DropoutZ: float
      /// Epitome size K (eVAE and mVAE).
      EpitomeSize: int option
      /// Epitome stride s in effect (eVAE and mVAE; K when config.json leaves it out).
      EpitomeStride: int option
      /// Binarization in effect: "dynamic", "fixed", "threshold" or "none".
      Binarize: string
      /// Training images used (None: all).
      TrainSubset: int option
      /// Test images of the per-epoch statistics (None: all).
      TestSubset: int option
      /// Seed of the run.
      Seed: uint64
      /// Compute backend (config.json's "backend"; "native" when it does not record one).
      Backend: string
      /// Threads the run trained with (config.json's "threads", when recorded).
      Threads: int option
      /// Completed epochs (metrics.csv; 0 before the first).
      CompletedEpochs: int
      /// Effective KL weight beta of the last epoch.
      Beta: float option
      /// Final training bound (with the epoch's beta).
      TrainBound: float option
      /// Final test bound with beta = 1.
      TestBound: float option
      /// Final total KL of the test set.
      Kl: float option
      /// Active units after the last epoch at ActiveThreshold (activity.csv; metrics.csv's count at 0.01 when
      /// activity.csv is empty).
      ActiveUnits: int option
      /// The activity threshold of ActiveUnits.
      ActiveThreshold: float
      /// Wall time of all completed epochs in seconds.
      TrainingSeconds: float
      /// eval.json, when <c>vae eval</c> has run.
      Eval: EvalResult option
      /// parzen.json, when <c>vae parzen</c> has run.
      Parzen: ParzenResult option }

/// A run folder that could not be read, with the reason.
type SkippedRun =
    { /// The folder relative to the folder searched (forward slashes).
      Run: string
      /// Why it could not be read (the error message, naming the file).
      Reason: string }

/// <summary>
/// Every run folder found under a folder (<c>RunStore.scan</c>): the runs that
/// loaded, their summaries, and the folders that did not load.
/// </summary>
type RunScan =
    { /// The folder searched (full path).
      Root: string
      /// The runs that loaded, sorted by path.
      Runs: Run list
      /// Their summaries, in the same order.
      Summaries: RunSummary list
      /// The run folders that could not be read, sorted by path.
      Skipped: SkippedRun list }

/// <summary>
/// Reads run folders (see <see cref="T:VaeResearch.Analysis.Run"/>) and the JSON files in them.
/// </summary>
[<RequireQualifiedAccess>]
module RunStore =

    /// File name of the Parzen estimate inside a run folder.
    [<Literal>]
    let ParzenFile = "parzen.json"

    let private invariant (v: float) = v.ToString("R", CultureInfo.InvariantCulture)

    /// A JSON object's members, with errors naming the file and key.
    type private JsonFields(path: string, root: JsonElement) =
        member _.TryGet(key: string) =
            match root.TryGetProperty key with
            | true, v when v.ValueKind <> JsonValueKind.Null -> Some v
            | _ -> None

        member this.Number(key: string) =
            match this.TryGet key with
            | None -> raise (FileFormatException(path, key, "a number", "no such key"))
            | Some v when v.ValueKind = JsonValueKind.Number -> v.GetDouble()
            | Some v when v.ValueKind = JsonValueKind.String ->
                // NOTE: the run files allow the named literals NaN and Infinity, written as strings.
                match Double.TryParse(nonNull (v.GetString()), NumberStyles.Float, CultureInfo.InvariantCulture) with
                | true, x -> x
                | _ -> raise (FileFormatException(path, key, "a number", $"'{v.GetString()}'"))
            | Some v -> raise (FileFormatException(path, key, "a number", v.ValueKind.ToString().ToLowerInvariant()))

        member this.Int(key: string) =
            let v = this.Number key
            if Double.IsInteger v && abs v <= float Int32.MaxValue then int v
            else raise (FileFormatException(path, key, "an integer", invariant v))

        member this.OptionalInt(key: string) = this.TryGet key |> Option.map (fun _ -> this.Int key)

        member this.OptionalUInt64(key: string) =
            this.TryGet key |> Option.map (fun v ->
                let mutable n = 0UL
                if v.ValueKind = JsonValueKind.Number && v.TryGetUInt64(&n) then n
                else raise (FileFormatException(path, key, "a non-negative integer", v.GetRawText())))

        member this.OptionalString(key: string) = this.TryGet key |> Option.map (fun _ -> this.String key)

        member this.String(key: string) =
            match this.TryGet key with
            | Some v when v.ValueKind = JsonValueKind.String -> nonNull (v.GetString())
            | Some v -> raise (FileFormatException(path, key, "a string", v.ValueKind.ToString().ToLowerInvariant()))
            | None -> raise (FileFormatException(path, key, "a string", "no such key"))

    let private readJson (path: string) (read: JsonFields -> 'T) : 'T =
        let text =
            try File.ReadAllText path
            with :? IOException | :? UnauthorizedAccessException as e -> raise (VaeResearchException($"cannot read {path}: {e.Message}", e))
        try
            use doc = JsonDocument.Parse text
            if doc.RootElement.ValueKind <> JsonValueKind.Object then
                raise (FileFormatException(path, "document", "a JSON object", doc.RootElement.ValueKind.ToString().ToLowerInvariant()))
            read (JsonFields(path, doc.RootElement))
        with :? JsonException as e -> raise (FileFormatException(path, "document", "valid JSON", e.Message, e))

    /// Reads an eval.json file; a missing key or a wrong type is a FileFormatException naming the file and key.
    let readEval (path: string) : EvalResult =
        readJson path (fun f ->
            { Nll = f.Number "nll"
              StandardError = f.Number "standard_error"
              Samples = f.Int "k"
              N = f.Int "n"
              Binarize = f.String "binarize"
              Epoch = f.OptionalInt "epoch"
              Budget = f.OptionalString "budget"
              SamplesDrawn = f.OptionalInt "samples_drawn"
              BinarizeSeed = f.OptionalUInt64 "binarize_seed" })

    /// Writes eval.json (the keys readEval reads, plus the seconds the estimate took), atomically.
    let writeEval (path: string) (result: EvalResult) (seconds: float) =
        let values = Dictionary<string, objnull>()
        values["nll"] <- box result.Nll
        values["standard_error"] <- box result.StandardError
        values["k"] <- box result.Samples
        values["n"] <- box result.N
        values["binarize"] <- box result.Binarize
        result.Epoch |> Option.iter (fun e -> values["epoch"] <- box e)
        result.Budget |> Option.iter (fun b -> values["budget"] <- box b)
        result.SamplesDrawn |> Option.iter (fun d -> values["samples_drawn"] <- box d)
        result.BinarizeSeed |> Option.iter (fun s -> values["binarize_seed"] <- box s)
        values["seconds"] <- box seconds
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(values, RunFolder.Json) + "\n")

    /// Reads a parzen.json file (the five keys of docs/contracts.md, "JSON outputs" are required, the others optional).
    let readParzen (path: string) : ParzenResult =
        readJson path (fun f ->
            let search =
                match f.TryGet "sigma_search" with
                | Some v when v.ValueKind = JsonValueKind.Array ->
                    [| for (i, item) in Seq.indexed (v.EnumerateArray()) do
                           let entry = JsonFields(path, item)
                           let field key = try entry.Number key with :? FileFormatException -> raise (FileFormatException(path, $"sigma_search[{i}].{key}", "a number", "something else"))
                           field "sigma", field "validation_log_likelihood" |]
                | Some v -> raise (FileFormatException(path, "sigma_search", "an array", v.ValueKind.ToString().ToLowerInvariant()))
                | None -> [||]
            { Sigma = f.Number "sigma"
              LogLikelihood = f.Number "log_likelihood"
              StandardError = f.Number "standard_error"
              ValidationLogLikelihood = f.Number "validation_log_likelihood"
              NSamples = f.Int "n_samples"
              NTest = f.OptionalInt "n_test" |> Option.defaultValue 0
              NValidation = f.OptionalInt "n_validation" |> Option.defaultValue 0
              SigmaSearch = search
              ValidationInTraining =
                match f.TryGet "validation_in_training" with
                | None -> false
                | Some v when v.ValueKind = JsonValueKind.True -> true
                | Some v when v.ValueKind = JsonValueKind.False -> false
                | Some v -> raise (FileFormatException(path, "validation_in_training", "true or false", v.ValueKind.ToString().ToLowerInvariant())) })

    /// Writes a Parzen estimate as JSON (snake_case keys, numbers as JSON numbers), atomically.
    let writeParzen (path: string) (result: ParzenResult) =
        let values = Dictionary<string, objnull>()
        values["sigma"] <- box result.Sigma
        values["log_likelihood"] <- box result.LogLikelihood
        values["standard_error"] <- box result.StandardError
        values["validation_log_likelihood"] <- box result.ValidationLogLikelihood
        values["n_samples"] <- box result.NSamples
        values["n_test"] <- box result.NTest
        values["n_validation"] <- box result.NValidation
        values["sigma_search"] <-
            box [| for sigma, ll in result.SigmaSearch -> dict [ "sigma", sigma; "validation_log_likelihood", ll ] |]
        if result.ValidationInTraining then values["validation_in_training"] <- box true
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(values, RunFolder.Json) + "\n")

    /// <summary>
    /// Whether <paramref name="path"/> is a run folder (it holds config.json).
    /// </summary>
    let isRun (path: string) = Directory.Exists path && File.Exists(Path.Combine(path, "config.json"))

    /// <summary>
    /// Checks that metrics.csv holds one row per epoch and activity.csv one row per recorded epoch for each unit
    /// 0..D-1 (D from config.json); anything else is a FileFormatException naming the file, the epoch and the unit.
    /// </summary>
    let validate (run: Run) =
        let epochs = HashSet<int>()
        for m in run.Metrics do
            if not (epochs.Add m.Epoch) then
                raise (FileFormatException(Path.Combine(run.Path, "metrics.csv"), $"epoch {m.Epoch}", "one row", "a second row"))
        let path = Path.Combine(run.Path, "activity.csv")
        let latent = run.Config.Latent
        let present = Dictionary<int, bool[]>()
        for r in run.Activity do
            if r.Unit < 0 || r.Unit >= latent then
                raise (FileFormatException(path, $"epoch {r.Epoch}, column 'unit'", $"a unit in [0, {latent}) (config.json has latent = {latent})", string r.Unit))
            let units =
                match present.TryGetValue r.Epoch with
                | true, units -> units
                | _ ->
                    let units = Array.zeroCreate latent
                    present[r.Epoch] <- units
                    units
            if units[r.Unit] then raise (FileFormatException(path, $"epoch {r.Epoch}, unit {r.Unit}", "one row", "a second row"))
            units[r.Unit] <- true
        for epoch in present.Keys |> Seq.sort do
            match Array.tryFindIndex not present[epoch] with
            | Some u -> raise (FileFormatException(path, $"epoch {epoch}, unit {u}", "a row for every unit", "no row"))
            | None -> ()

    /// Loads a run folder. A missing folder or one without config.json, a bad config, a CSV with a missing or
    /// extra column, or rows that do not pass <c>validate</c> are a clear error naming the file (and the column).
    let load (path: string) : Run =
        let folder = RunFolder.Open path
        let config = folder.ReadConfig()
        let optional file read = if File.Exists file then Some(read file) else None
        let evalPath = folder.EvalPath
        let parzenPath = Path.Combine(folder.Path, ParzenFile)
        let run =
            { Path = folder.Path
              Name = nonNull (Path.GetFileName(Path.TrimEndingDirectorySeparator folder.Path))
              Config = config
              Metrics = optional folder.MetricsPath (RunCsv.ReadMetrics >> Seq.toArray) |> Option.defaultValue [||]
              Activity = optional folder.ActivityPath (RunCsv.ReadActivity >> Seq.toArray) |> Option.defaultValue [||]
              Eval = optional evalPath readEval
              Parzen = optional parzenPath readParzen
              HasCheckpoint = folder.HasCheckpoint }
        validate run
        run

    /// The data set a run's configuration names (MNIST or the synthetic set with its seed and d), whole:
    /// without the run's --train-subset and --test-subset.
    let dataSplits (config: TrainConfig) (dataDirectory: string option) =
        let whole = TrainConfig(Dataset = config.Dataset, SyntheticDimension = config.SyntheticDimension, Seed = config.Seed)
        Trainer.LoadData(whole, Option.toObj dataDirectory, null)

    /// Loads several runs for comparison, in the order given.
    let loadMany (paths: string seq) : Run list = paths |> Seq.map load |> Seq.toList

    /// <summary>
    /// Every run folder at or below <paramref name="dir"/> (a run's own subfolders are not searched), sorted by path.
    /// </summary>
    let discover (dir: string) : string list =
        if not (Directory.Exists dir) then raise (VaeResearchException($"folder '{dir}' does not exist"))
        let rec walk (d: string) : string seq =
            seq {
                if isRun d then yield Path.GetFullPath d
                else
                    for sub in Directory.GetDirectories d |> Array.sort do
                        yield! walk sub
            }
        walk dir |> Seq.sortWith (fun a b -> String.CompareOrdinal(a, b)) |> Seq.toList

    /// The last metrics row, if any epoch has completed.
    let finalMetrics (run: Run) : MetricsRow option = Array.tryLast run.Metrics

    /// Completed epochs according to metrics.csv.
    let epochs (run: Run) = run.Metrics |> Array.fold (fun m r -> max m r.Epoch) 0

    /// A short description of the model, e.g. "vae D=50 k=1" or "evae D=50 K=25 s=25 k=1".
    let describe (run: Run) =
        let c = run.Config
        let model = c.Model.ToString().ToLowerInvariant()
        let epitome =
            if c.EpitomeSize.HasValue then
                let size = c.EpitomeSize.Value
                $" K={size} s={(if c.EpitomeStride.HasValue then c.EpitomeStride.Value else size)}"
            else ""
        let extras =
            [ if c.Decoder <> Models.DecoderKind.Bernoulli then c.Decoder.ToString().ToLowerInvariant()
              if c.KlWeight <> 1.0 then $"lambda={invariant c.KlWeight}"
              if c.DropoutZ <> 0.0 then $"dropout={invariant c.DropoutZ}"
              if c.WarmupEpochs > 0 then $"warmup={c.WarmupEpochs}"
              if c.Batchnorm then "bn"
              if c.Dataset <> "mnist" then $"{c.Dataset}(d={c.SyntheticDimension})" ]
        String.Join(" ", [ $"{model} D={c.Latent}{epitome} k={c.Samples}" ] @ extras)

    /// One line for F# Interactive and logs: name, model, epochs, final bound, active units and evaluations.
    let summary (run: Run) =
        let final =
            match finalMetrics run with
            | Some m -> sprintf "epoch %d: test bound %.2f, KL %.2f, %d active units" m.Epoch m.TestBound m.Kl m.ActiveUnits
            | None -> "no completed epoch"
        let eval = run.Eval |> Option.map (fun e -> sprintf ", NLL %.2f +/- %.2f (k=%d)" e.Nll e.StandardError e.Samples) |> Option.defaultValue ""
        let parzen = run.Parzen |> Option.map (fun p -> sprintf ", Parzen %.1f +/- %.1f" p.LogLikelihood p.StandardError) |> Option.defaultValue ""
        $"{run.Name} ({describe run}): {final}{eval}{parzen}"

    /// The labels in order, with -2, -3, ... appended to the second, third, ... occurrence of a label (compared
    /// with <c>comparer</c>), so that every label is distinct.
    let numberRepeats (comparer: StringComparer) (labels: string list) : string list =
        let seen = Dictionary<string, int>(comparer)
        [ for label in labels ->
              match seen.TryGetValue label with
              | true, n ->
                  seen[label] <- n + 1
                  $"{label}-{n + 1}"
              | _ ->
                  seen[label] <- 1
                  label ]

    /// <summary>
    /// The runs' labels, their row keys in frames and tables: the last folder names of each run's path, as few as
    /// keep different folders apart (the same number for every run, joined by '/': runs side by side get their
    /// folder names, DIR/vae/seed0 and DIR/evae/seed0 get vae/seed0 and evae/seed0); a folder listed twice gets
    /// -2, -3, ... appended.
    /// </summary>
    let labels (runs: Run list) : string list =
        let segments =
            runs
            |> List.map (fun r ->
                Path.GetFullPath(Path.TrimEndingDirectorySeparator r.Path)
                    .Split([| Path.DirectorySeparatorChar; Path.AltDirectorySeparatorChar |], StringSplitOptions.RemoveEmptyEntries))
        let folders = segments |> List.map (fun s -> String.Join("/", s)) |> List.distinct |> List.length
        let last n (s: string[]) = String.Join("/", s[max 0 (s.Length - n) ..])
        let deepest = segments |> List.fold (fun m s -> max m s.Length) 1
        let depth = seq { 1 .. deepest } |> Seq.tryFind (fun n -> (segments |> List.map (last n) |> List.distinct).Length = folders)
        segments |> List.map (last (Option.defaultValue deepest depth)) |> numberRepeats StringComparer.Ordinal

    /// The backend and thread count config.json records beside the settings ("native" and None when it does not).
    let private recorded (run: Run) =
        let file = Path.Combine(run.Path, "config.json")
        if not (File.Exists file) then "native", None
        else
            readJson file (fun f ->
                (if (f.TryGet "backend").IsSome then f.String "backend" else "native"), f.OptionalInt "threads")

    /// An enum value as config.json spells it (snake_case).
    let private spelled (value: 'E) = JsonNamingPolicy.SnakeCaseLower.ConvertName(string value)

    /// <summary>
    /// The flat summary of <paramref name="run"/> under <paramref name="label"/>. Active units: units with A_u above
    /// <paramref name="threshold"/> after the last epoch of activity.csv (metrics.csv's count, which uses 0.01, when
    /// activity.csv is empty; None for other thresholds then).
    /// </summary>
    let summarize (threshold: float) (label: string) (run: Run) : RunSummary =
        let c = run.Config
        let final = finalMetrics run
        let completed = epochs run
        let active =
            if run.Activity.Length > 0 then
                let last = run.Activity |> Array.maxBy (fun a -> a.Epoch)
                Some(run.Activity |> Array.filter (fun a -> a.Epoch = last.Epoch && a.Activity > threshold) |> Array.length)
            elif threshold = UnitStatistics.DefaultThreshold then final |> Option.map (fun m -> m.ActiveUnits)
            else None
        let backend, threads = recorded run
        let metric f = final |> Option.map f
        { Run = label
          Path = run.Path
          Description = describe run
          Dataset = c.Dataset
          SyntheticDimension = c.SyntheticDimension
          Model = spelled c.Model
          ImportanceSamples = c.Samples
          Decoder = spelled c.Decoder
          Latent = c.Latent
          Hidden = String.Join(",", c.Hidden)
          Activation = spelled c.Activation
          Batch = c.Batch
          Epochs = c.Epochs
          Schedule = spelled c.Schedule
          Lr = c.Lr
          AdamBeta1 = c.AdamBeta1
          AdamBeta2 = c.AdamBeta2
          AdamEps = c.AdamEps
          KlWeight = c.KlWeight
          WarmupEpochs = c.WarmupEpochs
          Batchnorm = c.Batchnorm
          DropoutZ = c.DropoutZ
          EpitomeSize = Option.ofNullable c.EpitomeSize
          EpitomeStride = (if c.EpitomeStride.HasValue then Some c.EpitomeStride.Value else Option.ofNullable c.EpitomeSize)
          Binarize = spelled c.EffectiveBinarization
          TrainSubset = Option.ofNullable c.TrainSubset
          TestSubset = Option.ofNullable c.TestSubset
          Seed = c.Seed
          Backend = backend
          Threads = threads
          CompletedEpochs = completed
          Beta = metric (fun m -> m.Beta)
          TrainBound = metric (fun m -> m.TrainBound)
          TestBound = metric (fun m -> m.TestBound)
          Kl = metric (fun m -> m.Kl)
          ActiveUnits = active
          ActiveThreshold = threshold
          TrainingSeconds = run.Metrics |> Array.sumBy (fun m -> m.Seconds)
          Eval = run.Eval
          Parzen = run.Parzen }

    /// <summary>
    /// The summaries of <paramref name="runs"/> under their <see cref="labels"/>, in order.
    /// </summary>
    let summaries (threshold: float) (runs: Run list) : RunSummary list =
        List.map2 (summarize threshold) (labels runs) runs

    /// <summary>
    /// Loads every run folder at or below <paramref name="dir"/> (see <see cref="discover"/>) and summarizes it at
    /// <paramref name="threshold"/>. A folder that does not load is listed in Skipped with the reason; a folder
    /// without run folders, or one where none loads, is an error (naming every reason).
    /// </summary>
    let scan (threshold: float) (dir: string) : RunScan =
        let paths = discover dir
        if paths.IsEmpty then raise (VaeResearchException($"no run folders (folders with config.json) under '{dir}'"))
        let root = Path.GetFullPath dir
        let attempts =
            [ for path in paths ->
                  path,
                  try Result.Ok(load path)
                  with :? VaeResearchException | :? IOException | :? UnauthorizedAccessException as e -> Result.Error e.Message ]
        let runs = attempts |> List.choose (fun (_, attempt) -> match attempt with Result.Ok run -> Some run | Result.Error _ -> None)
        let skipped =
            [ for path, attempt in attempts do
                  match attempt with
                  | Result.Error reason ->
                      let relative = Path.GetRelativePath(root, path).Replace('\\', '/')
                      { Run = (if relative = "." then nonNull (Path.GetFileName path) else relative); Reason = reason }
                  | Result.Ok _ -> () ]
        if runs.IsEmpty then
            let reasons = String.Join("; ", skipped |> List.map (fun s -> $"{s.Run}: {s.Reason}"))
            raise (VaeResearchException($"none of the {skipped.Length} run folder(s) under '{dir}' could be read: {reasons}"))
        { Root = root; Runs = runs; Summaries = summaries threshold runs; Skipped = skipped }

    /// One typed column of a frame: the values of rows under keys.
    let private column (keys: 'K[]) (rows: 'R[]) (name: string) (value: 'R -> 'V) =
        name, Series(keys, Array.map value rows) :> ISeries<'K>

    /// One typed column of a frame with missing values where value gives None.
    let private optionalColumn (keys: 'K[]) (rows: 'R[]) (name: string) (value: 'R -> 'V option) =
        name, Series.ofOptionalObservations (Array.map2 (fun k r -> k, value r) keys rows) :> ISeries<'K>

    /// <summary>
    /// The runs frame: one row per summary, keyed by its label, with a typed column per field: <c>description</c>, every
    /// setting named as config.json names it (<c>model</c>, <c>latent</c>, <c>k</c>, <c>epitome_size</c>,
    /// <c>epitome_stride</c>, <c>warmup_epochs</c>, <c>batchnorm</c>, <c>seed</c>, ...), <c>backend</c>, <c>threads</c>, the final
    /// metrics (<c>completed_epochs</c>, <c>beta</c>, <c>train_bound</c>, <c>test_bound</c>, <c>kl</c>,
    /// <c>active_units</c>, <c>active_threshold</c>, <c>training_seconds</c>), eval.json (<c>nll</c>,
    /// <c>nll_standard_error</c>, <c>nll_k</c>, <c>nll_n</c>) and parzen.json (<c>parzen_log_likelihood</c>,
    /// <c>parzen_standard_error</c>, <c>parzen_sigma</c>, <c>parzen_samples</c>) and <c>path</c>; a value not recorded is missing.
    /// </summary>
    let runsFrame (summaries: RunSummary seq) : Frame<string, string> =
        let rows = Seq.toArray summaries
        let keys = rows |> Array.map (fun s -> s.Run)
        let col name value = column keys rows name value
        let opt name value = optionalColumn keys rows name value
        let eval f = fun (s: RunSummary) -> s.Eval |> Option.map f
        let parzen f = fun (s: RunSummary) -> s.Parzen |> Option.map f
        Frame.ofColumns
            [ col "description" (fun s -> s.Description)
              col "model" (fun s -> s.Model)
              col "latent" (fun s -> s.Latent)
              col "k" (fun s -> s.ImportanceSamples)
              opt "epitome_size" (fun s -> s.EpitomeSize)
              opt "epitome_stride" (fun s -> s.EpitomeStride)
              col "kl_weight" (fun s -> s.KlWeight)
              col "warmup_epochs" (fun s -> s.WarmupEpochs)
              col "batchnorm" (fun s -> s.Batchnorm)
              col "dropout_z" (fun s -> s.DropoutZ)
              col "decoder" (fun s -> s.Decoder)
              col "hidden" (fun s -> s.Hidden)
              col "activation" (fun s -> s.Activation)
              col "batch" (fun s -> s.Batch)
              col "epochs" (fun s -> s.Epochs)
              col "schedule" (fun s -> s.Schedule)
              col "lr" (fun s -> s.Lr)
              col "adam_beta1" (fun s -> s.AdamBeta1)
              col "adam_beta2" (fun s -> s.AdamBeta2)
              col "adam_eps" (fun s -> s.AdamEps)
              col "binarize" (fun s -> s.Binarize)
              col "dataset" (fun s -> s.Dataset)
              col "synthetic_dimension" (fun s -> s.SyntheticDimension)
              opt "train_subset" (fun s -> s.TrainSubset)
              opt "test_subset" (fun s -> s.TestSubset)
              col "seed" (fun s -> s.Seed)
              col "backend" (fun s -> s.Backend)
              opt "threads" (fun s -> s.Threads)
              col "completed_epochs" (fun s -> s.CompletedEpochs)
              opt "beta" (fun s -> s.Beta)
              opt "train_bound" (fun s -> s.TrainBound)
              opt "test_bound" (fun s -> s.TestBound)
              opt "kl" (fun s -> s.Kl)
              opt "active_units" (fun s -> s.ActiveUnits)
              col "active_threshold" (fun s -> s.ActiveThreshold)
              col "training_seconds" (fun s -> s.TrainingSeconds)
              opt "nll" (eval (fun e -> e.Nll))
              opt "nll_standard_error" (eval (fun e -> e.StandardError))
              opt "nll_k" (eval (fun e -> e.Samples))
              opt "nll_n" (eval (fun e -> e.N))
              opt "parzen_log_likelihood" (parzen (fun p -> p.LogLikelihood))
              opt "parzen_standard_error" (parzen (fun p -> p.StandardError))
              opt "parzen_sigma" (parzen (fun p -> p.Sigma))
              opt "parzen_samples" (parzen (fun p -> p.NSamples))
              col "path" (fun s -> s.Path) ]

    /// <summary>
    /// The metrics frame: one row per run (its <see cref="labels"/>) and epoch, with the columns of metrics.csv
    /// (<c>lr</c>, <c>beta</c>, <c>train_bound</c>, <c>test_bound</c>, <c>kl</c>, <c>active_units</c>, <c>seconds</c>).
    /// </summary>
    let metricsFrame (runs: Run list) : Frame<string * int, string> =
        List.iter validate runs
        let keyed = [| for label, run in List.zip (labels runs) runs do for m in run.Metrics -> (label, m.Epoch), m |]
        let col name value = column (Array.map fst keyed) (Array.map snd keyed) name value
        Frame.ofColumns
            [ col "lr" (fun (m: MetricsRow) -> m.Lr)
              col "beta" (fun m -> m.Beta)
              col "train_bound" (fun m -> m.TrainBound)
              col "test_bound" (fun m -> m.TestBound)
              col "kl" (fun m -> m.Kl)
              col "active_units" (fun m -> m.ActiveUnits)
              col "seconds" (fun m -> m.Seconds) ]

    /// <summary>
    /// The activity frame: one row per run (its <see cref="labels"/>), epoch and unit, with the columns of
    /// activity.csv (<c>activity</c>: A_u, <c>kl</c>: the unit's mean KL).
    /// </summary>
    let activityFrame (runs: Run list) : Frame<string * int * int, string> =
        List.iter validate runs
        let keyed = [| for label, run in List.zip (labels runs) runs do for a in run.Activity -> (label, a.Epoch, a.Unit), a |]
        let col name value = column (Array.map fst keyed) (Array.map snd keyed) name value
        Frame.ofColumns [ col "activity" (fun (a: ActivityRow) -> a.Activity); col "kl" (fun a -> a.Kl) ]
