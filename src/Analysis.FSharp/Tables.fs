namespace VaeResearch.Analysis

// The papers' tables from saved runs: final bound, L_5000 NLL where evaluated, active units and the
// Parzen estimate of every run, as Markdown (to read), HTML (the report) and CSV (for pandas or Deedle).
// Every rendering reads the run summaries of the run store (RunStore.summarize), and the Markdown and
// HTML tables share one list of columns.

open System
open System.Globalization
open System.IO
open System.Net
open System.Text
open VaeResearch

/// Results tables over run summaries.
[<RequireQualifiedAccess>]
module Tables =

    let private invariant (v: float) = v.ToString("R", CultureInfo.InvariantCulture)

    let private cell (f: 'T -> string) (value: 'T option) = value |> Option.map f |> Option.defaultValue "—"

    /// An L_k estimate as a table shows it, e.g. "86.76 ± 0.10 (k=5000, n=10000)" (invariant culture); where the
    /// samples drawn per image are not k, or the budget is not per_epitome, it adds both: "(k=5000 per_epitome,
    /// 20000 drawn, n=10000)" for an eVAE with 4 epitomes; an evaluation on another binarization of the test images
    /// says so last: "(k=5000, n=10000, test binarization seed 3)".
    let formatEval (e: EvalResult) =
        let spend =
            match e.Budget, e.SamplesDrawn with
            | Some budget, Some drawn when budget <> "per_epitome" || drawn <> e.Samples -> [ sprintf "k=%d %s" e.Samples budget; sprintf "%d drawn" drawn ]
            | _ -> [ sprintf "k=%d" e.Samples ]
        let seed = e.BinarizeSeed |> Option.map (sprintf "test binarization seed %d") |> Option.toList
        sprintf "%.2f ± %.2f (%s)" e.Nll e.StandardError (String.concat ", " (spend @ [ sprintf "n=%d" e.N ] @ seed))

    /// A Parzen estimate as a table shows it, e.g. "325.1 ± 2.0 (σ=0.215)" (invariant culture).
    let formatParzen (p: ParzenResult) = sprintf "%.1f ± %.1f (σ=%.3f)" p.LogLikelihood p.StandardError p.Sigma

    /// A bound with two decimals (invariant culture), or a dash.
    let formatBound (v: float option) = cell (sprintf "%.2f") v

    /// The columns of the human-readable tables: header, right-aligned, and the cell text of a run.
    let private columns: (string * bool * (RunSummary -> string)) list =
        [ "run", false, (fun s -> s.Run)
          "model", false, (fun s -> s.Description)
          "epochs", true, (fun s -> string s.CompletedEpochs)
          "train bound", true, (fun s -> formatBound s.TrainBound)
          "test bound", true, (fun s -> formatBound s.TestBound)
          "NLL (L_k)", true, (fun s -> s.Eval |> cell formatEval)
          "active units", true, (fun s -> s.ActiveUnits |> cell (fun a -> $"{a} / {s.Latent}"))
          "Parzen", true, (fun s -> s.Parzen |> cell formatParzen) ]

    /// The note under a table: units, the activity threshold and the Parzen estimate.
    let private note (threshold: float) =
        "Bounds and NLL in nats per image (NLL = -mean L_k over the test set, lower is better); active units: "
        + $"A_u = Cov_x(E_q[u]) > {threshold.ToString(CultureInfo.InvariantCulture)} after the last epoch; "
        + "Parzen: mean test log-likelihood in nats (higher is better) ± standard error."

    /// <summary>
    /// A Markdown (GitHub) table of the summaries, a note on the <paramref name="threshold"/>, and the run folders
    /// that were skipped, each with the reason.
    /// </summary>
    let markdown (threshold: float) (summaries: RunSummary list) (skipped: SkippedRun list) =
        let escape (s: string) = s.Replace("|", "\\|")
        let line (cells: string seq) = "| " + String.Join(" | ", cells) + " |\n"
        let sb = StringBuilder()
        sb.Append(line [ for header, _, _ in columns -> header ])
          .Append("|" + String.Join("|", [ for _, right, _ in columns -> if right then "---:" else "---" ]) + "|\n")
        |> ignore
        for s in summaries do
            sb.Append(line [ for _, _, text in columns -> escape (text s) ]) |> ignore
        sb.Append('\n').Append(note threshold).Append('\n') |> ignore
        if not skipped.IsEmpty then
            sb.Append($"\nSkipped {skipped.Length} run folder(s) that could not be read:\n\n") |> ignore
            for s in skipped do
                sb.Append("- ").Append(s.Run).Append(": ").Append(s.Reason.ReplaceLineEndings " ").Append('\n') |> ignore
        sb.ToString()

    /// <summary>
    /// An HTML table of the summaries (cells HTML-encoded, numbers in <c>td class="num"</c>) followed by the note
    /// on the <paramref name="threshold"/> in <c>p class="note"</c>.
    /// </summary>
    let html (threshold: float) (summaries: RunSummary list) =
        let encode (s: string) = WebUtility.HtmlEncode s
        let sb = StringBuilder("<table><tr>")
        for header, _, _ in columns do
            sb.Append($"<th>{encode header}</th>") |> ignore
        sb.Append("</tr>\n") |> ignore
        for s in summaries do
            sb.Append("<tr>") |> ignore
            for _, right, text in columns do
                sb.Append(if right then "<td class=\"num\">" else "<td>").Append(encode (text s)).Append("</td>") |> ignore
            sb.Append("</tr>\n") |> ignore
        sb.Append("</table>\n").Append($"<p class=\"note\">{encode (note threshold)}</p>\n") |> ignore
        sb.ToString()

    /// The summaries as CSV (empty cells where a value is missing), one header line, invariant culture.
    let csv (summaries: RunSummary list) =
        let sb = StringBuilder()
        sb.Append("run,model,latent,epochs,train_bound,test_bound,nll,nll_standard_error,nll_k,nll_n,active_units,active_threshold,")
          .Append("parzen_log_likelihood,parzen_standard_error,parzen_sigma\n")
        |> ignore
        let quote (s: string) = if s.IndexOfAny [| ','; '"'; '\n' |] >= 0 then "\"" + s.Replace("\"", "\"\"") + "\"" else s
        let opt f v = v |> Option.map f |> Option.defaultValue ""
        for s in summaries do
            let fields =
                [ quote s.Run; quote s.Description; string s.Latent; string s.CompletedEpochs
                  opt invariant s.TrainBound; opt invariant s.TestBound
                  opt (fun (e: EvalResult) -> invariant e.Nll) s.Eval; opt (fun (e: EvalResult) -> invariant e.StandardError) s.Eval
                  opt (fun (e: EvalResult) -> string e.Samples) s.Eval; opt (fun (e: EvalResult) -> string e.N) s.Eval
                  opt string s.ActiveUnits; invariant s.ActiveThreshold
                  opt (fun (p: ParzenResult) -> invariant p.LogLikelihood) s.Parzen
                  opt (fun (p: ParzenResult) -> invariant p.StandardError) s.Parzen
                  opt (fun (p: ParzenResult) -> invariant p.Sigma) s.Parzen ]
            sb.Append(String.Join(",", fields)).Append('\n') |> ignore
        sb.ToString()

    /// <summary>
    /// Scans <paramref name="dir"/> (<c>RunStore.scan</c>), writes the Markdown table to <paramref name="outFile"/> and
    /// the CSV beside it (same name, .csv); returns both paths and the run folders skipped (listed under the
    /// Markdown table, absent from the CSV).
    /// </summary>
    let write (dir: string) (outFile: string) (threshold: float) : string * string * SkippedRun list =
        if (nonNull (Path.GetExtension outFile)).Equals(".csv", StringComparison.OrdinalIgnoreCase) then
            raise (VaeResearchException($"--out names the Markdown file (e.g. results.md); the CSV is written beside it, got '{outFile}'"))
        let scan = RunStore.scan threshold dir
        let csvFile = nonNull (Path.ChangeExtension(outFile, ".csv"))
        AtomicFile.WriteAllText(outFile, markdown threshold scan.Summaries scan.Skipped)
        AtomicFile.WriteAllText(csvFile, csv scan.Summaries)
        Path.GetFullPath outFile, Path.GetFullPath csvFile, scan.Skipped
