namespace VaeResearch.Analysis

// The papers' tables from saved runs: final bound, L_5000 NLL where evaluated, active units and the
// Parzen estimate for every run under a folder, as Markdown (to read) and CSV (for pandas or Deedle).

open System
open System.Globalization
open System.IO
open System.Text
open VaeResearch

/// One run's line of the results table.
type TableRow =
    { /// The run folder relative to the table's folder (forward slashes).
      Run: string
      /// The model in brief, e.g. "vae D=50 k=1".
      Model: string
      /// Completed epochs.
      Epochs: int
      /// Final training bound (metrics.csv, with the epoch's beta).
      TrainBound: float option
      /// Final test bound with beta = 1 (metrics.csv).
      TestBound: float option
      /// The L_k estimate from eval.json, if evaluated.
      Eval: EvalResult option
      /// Active units after the last epoch at the table's threshold.
      ActiveUnits: int option
      /// Latent units D.
      Latent: int
      /// The Parzen estimate from parzen.json, if computed.
      Parzen: ParzenResult option }

/// Results tables over run folders.
[<RequireQualifiedAccess>]
module Tables =

    let private invariant (v: float) = v.ToString("R", CultureInfo.InvariantCulture)

    /// <summary>
    /// The table row of <paramref name="run"/>; its name is relative to <paramref name="baseDir"/>. Active units
    /// come from the last epoch of activity.csv at <paramref name="threshold"/> (metrics.csv's count, which uses
    /// 0.01, when activity.csv is empty).
    /// </summary>
    let row (baseDir: string) (threshold: float) (run: Run) : TableRow =
        let relative = Path.GetRelativePath(baseDir, run.Path).Replace('\\', '/')
        let final = RunStore.finalMetrics run
        let history = Activity.history run
        let active =
            if history.Epochs.Length > 0 then Some(Activity.activeCount threshold history.Activity[history.Epochs.Length - 1])
            elif threshold = Activity.DefaultThreshold then final |> Option.map (fun m -> m.ActiveUnits)
            else None
        { Run = (if relative = "." then run.Name else relative)
          Model = RunStore.describe run
          Epochs = RunStore.epochs run
          TrainBound = final |> Option.map (fun m -> m.TrainBound)
          TestBound = final |> Option.map (fun m -> m.TestBound)
          Eval = run.Eval
          ActiveUnits = active
          Latent = run.Config.Latent
          Parzen = run.Parzen }

    /// <summary>
    /// Rows for every run folder at or below <paramref name="dir"/>; a folder without runs is an error.
    /// </summary>
    let rows (dir: string) (threshold: float) : TableRow list =
        let paths = RunStore.discover dir
        if paths.IsEmpty then
            raise (VaeResearchException($"no run folders (folders with config.json) under '{dir}'"))
        let full = Path.GetFullPath dir
        [ for p in paths -> row full threshold (RunStore.load p) ]

    let private cell (f: 'T -> string) (value: 'T option) = value |> Option.map f |> Option.defaultValue "—"

    /// An L_k estimate as a table shows it, e.g. "86.76 ± 0.10 (k=5000, n=10000)" (invariant culture).
    let formatEval (e: EvalResult) = sprintf "%.2f ± %.2f (k=%d, n=%d)" e.Nll e.StandardError e.K e.N

    /// A Parzen estimate as a table shows it, e.g. "325.1 ± 2.0 (σ=0.215)" (invariant culture).
    let formatParzen (p: ParzenResult) = sprintf "%.1f ± %.1f (σ=%.3f)" p.LogLikelihood p.StandardError p.Sigma

    /// A bound with two decimals (invariant culture), or a dash.
    let formatBound (v: float option) = cell (sprintf "%.2f") v

    /// A Markdown (GitHub) table of the rows, with a note on the threshold.
    let markdown (threshold: float) (rows: TableRow list) =
        let escape (s: string) = s.Replace("|", "\\|")
        let sb = StringBuilder()
        sb.Append("| run | model | epochs | train bound | test bound | NLL (L_k) | active units | Parzen |\n") |> ignore
        sb.Append("|---|---|---:|---:|---:|---:|---:|---:|\n") |> ignore
        for r in rows do
            let nll = r.Eval |> cell formatEval
            let parzen = r.Parzen |> cell formatParzen
            let active = r.ActiveUnits |> cell (fun a -> $"{a} / {r.Latent}")
            sb.Append($"| {escape r.Run} | {escape r.Model} | {r.Epochs} | {formatBound r.TrainBound} | {formatBound r.TestBound} ")
              .Append($"| {nll} | {active} | {parzen} |\n")
            |> ignore
        sb.Append($"\nBounds and NLL in nats per image (NLL = -mean L_k over the test set, lower is better); active units: ")
          .Append($"A_u = Cov_x(E_q[u]) > {threshold.ToString(CultureInfo.InvariantCulture)} after the last epoch; ")
          .Append("Parzen: mean test log-likelihood in nats (higher is better) ± standard error.\n")
        |> ignore
        sb.ToString()

    /// The rows as CSV (empty cells where a value is missing), one header line, invariant culture.
    let csv (threshold: float) (rows: TableRow list) =
        let sb = StringBuilder()
        sb.Append("run,model,latent,epochs,train_bound,test_bound,nll,nll_standard_error,nll_k,nll_n,active_units,active_threshold,")
          .Append("parzen_log_likelihood,parzen_standard_error,parzen_sigma\n")
        |> ignore
        let quote (s: string) = if s.IndexOfAny [| ','; '"'; '\n' |] >= 0 then "\"" + s.Replace("\"", "\"\"") + "\"" else s
        let opt f v = v |> Option.map f |> Option.defaultValue ""
        for r in rows do
            let fields =
                [ quote r.Run; quote r.Model; string r.Latent; string r.Epochs
                  opt invariant r.TrainBound; opt invariant r.TestBound
                  opt (fun (e: EvalResult) -> invariant e.Nll) r.Eval; opt (fun (e: EvalResult) -> invariant e.StandardError) r.Eval
                  opt (fun (e: EvalResult) -> string e.K) r.Eval; opt (fun (e: EvalResult) -> string e.N) r.Eval
                  opt string r.ActiveUnits; invariant threshold
                  opt (fun (p: ParzenResult) -> invariant p.LogLikelihood) r.Parzen
                  opt (fun (p: ParzenResult) -> invariant p.StandardError) r.Parzen
                  opt (fun (p: ParzenResult) -> invariant p.Sigma) r.Parzen ]
            sb.Append(String.Join(",", fields)).Append('\n') |> ignore
        sb.ToString()

    /// <summary>
    /// Writes the Markdown table to <paramref name="outFile"/> and the CSV beside it (same name, .csv); returns both paths.
    /// </summary>
    let write (dir: string) (outFile: string) (threshold: float) : string * string =
        if (nonNull (Path.GetExtension outFile)).Equals(".csv", StringComparison.OrdinalIgnoreCase) then
            raise (VaeResearchException($"--out names the Markdown file (e.g. results.md); the CSV is written beside it, got '{outFile}'"))
        let table = rows dir threshold
        let csvFile = nonNull (Path.ChangeExtension(outFile, ".csv"))
        AtomicFile.WriteAllText(outFile, markdown threshold table)
        AtomicFile.WriteAllText(csvFile, csv threshold table)
        Path.GetFullPath outFile, Path.GetFullPath csvFile
