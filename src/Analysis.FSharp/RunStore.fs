namespace VaeResearch.Analysis

// The run store: a run folder (DESIGN.md, "Run folder") read into typed records, so analyses work
// on values, not files. The CSV files are read by the core's RunCsv (same header checks as training
// uses); eval.json and parzen.json are read here with errors that name the file and the key.

open System
open System.Collections.Generic
open System.Globalization
open System.IO
open System.Text.Json
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
      /// Importance samples k.
      K: int
      /// Test images evaluated.
      N: int
      /// Binarization of the test images.
      Binarize: string
      /// Epochs of the checkpoint that was evaluated, when recorded.
      Epoch: int option }

/// <summary>
/// The contents of <c>parzen.json</c> (DESIGN.md, <c>parzen --json</c>): a Parzen-window log-likelihood estimate.
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
      SigmaSearch: (float * float)[] }

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
              K = f.Int "k"
              N = f.Int "n"
              Binarize = f.String "binarize"
              Epoch = f.OptionalInt "epoch" })

    /// Reads a parzen.json file (the five keys of the DESIGN.md contract are required, the others optional).
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
              SigmaSearch = search })

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
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(values, RunFolder.Json) + "\n")

    /// <summary>
    /// Whether <paramref name="path"/> is a run folder (it holds config.json).
    /// </summary>
    let isRun (path: string) = Directory.Exists path && File.Exists(Path.Combine(path, "config.json"))

    /// Loads a run folder. A missing folder or one without config.json, a bad config, or a CSV with a
    /// missing or extra column is a clear error naming the file (and the column).
    let load (path: string) : Run =
        let folder = RunFolder.Open path
        let config = folder.ReadConfig()
        let optional file read = if File.Exists file then Some(read file) else None
        let evalPath = folder.EvalPath
        let parzenPath = Path.Combine(folder.Path, ParzenFile)
        { Path = folder.Path
          Name = nonNull (Path.GetFileName(Path.TrimEndingDirectorySeparator folder.Path))
          Config = config
          Metrics = optional folder.MetricsPath (RunCsv.ReadMetrics >> Seq.toArray) |> Option.defaultValue [||]
          Activity = optional folder.ActivityPath (RunCsv.ReadActivity >> Seq.toArray) |> Option.defaultValue [||]
          Eval = optional evalPath readEval
          Parzen = optional parzenPath readParzen
          HasCheckpoint = folder.HasCheckpoint }

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
        let eval = run.Eval |> Option.map (fun e -> sprintf ", NLL %.2f +/- %.2f (k=%d)" e.Nll e.StandardError e.K) |> Option.defaultValue ""
        let parzen = run.Parzen |> Option.map (fun p -> sprintf ", Parzen %.1f +/- %.1f" p.LogLikelihood p.StandardError) |> Option.defaultValue ""
        $"{run.Name} ({describe run}): {final}{eval}{parzen}"
