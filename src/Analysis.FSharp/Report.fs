namespace VaeResearch.Analysis

// The report: one offline HTML page per set of runs, with the metrics table, the charts and the image
// grids, written next to the SVG and PNG files it shows. The page references nothing else.

open System
open System.Collections.Generic
open System.Globalization
open System.IO
open System.Net
open System.Text
open VaeResearch
open VaeResearch.Training

/// What a report draws.
type ReportOptions =
    { /// MNIST folder (None: $VAE_DATA, else the user cache).
      DataDirectory: string option
      /// Activity threshold for the active-unit counts.
      Threshold: float
      /// Test images reconstructed per run.
      Reconstructions: int
      /// Samples from the prior per run.
      Samples: int
      /// Samples per epitome (eVAE and mVAE).
      PerEpitome: int
      /// Test encodings in the 2-D latent scatter.
      ScatterPoints: int
      /// Rows and columns of the 2-D manifold lattice.
      LatticeSteps: int
      /// <summary>
      /// Seed of the prior samples (the seed of <c>vae sample</c>).
      /// </summary>
      Seed: uint64 }

/// Writes the HTML report of several runs.
[<RequireQualifiedAccess>]
module Report =

    /// The report's defaults: threshold 0.01, 50 reconstructions, 100 samples, 10 per epitome, 5,000 scatter points, 20 x 20 lattice.
    let defaults =
        { DataDirectory = None
          Threshold = Activity.DefaultThreshold
          Reconstructions = 50
          Samples = 100
          PerEpitome = 10
          ScatterPoints = 5_000
          LatticeSteps = 20
          Seed = 0UL }

    /// The index page's file name.
    [<Literal>]
    let IndexFile = "index.html"

    /// A file-name-safe label: letters, digits, '.', '_' and '-' kept, anything else '_'.
    let fileLabel (name: string) =
        let safe = String(name |> Seq.map (fun c -> if Char.IsAsciiLetterOrDigit c || c = '.' || c = '_' || c = '-' then c else '_') |> Seq.toArray)
        if String.IsNullOrEmpty safe || safe.StartsWith "." then "run" + safe else safe

    /// Distinct labels for the runs: the folder name, with -2, -3, ... appended to repeats.
    let labels (runs: Run list) =
        runs |> List.map (fun run -> fileLabel run.Name) |> RunStore.numberRepeats StringComparer.OrdinalIgnoreCase

    let private html (s: string) = WebUtility.HtmlEncode s

    let private style =
        """body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { font-size: 1.1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; } th, td { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; } figcaption { font-size: 0.85em; color: #555; max-width: 780px; }
img.grid { image-rendering: pixelated; } code { background: #f3f3f3; padding: 0 3px; } p.note { font-size: 0.85em; color: #555; }
"""

    /// <summary>
    /// Writes the report of <paramref name="runPaths"/> into <paramref name="outDir"/>: index.html plus the SVG and PNG
    /// files it shows, all referenced by relative name. Returns the full paths of every file written, index.html first.
    /// Runs without a checkpoint get charts only; images need the data set (MNIST is loaded from the cache).
    /// </summary>
    let write (runPaths: string seq) (outDir: string) (options: ReportOptions) (progress: string -> unit) : string list =
        let runs = RunStore.loadMany runPaths
        if runs.IsEmpty then raise (VaeResearchException("the report needs at least one run folder"))
        Directory.CreateDirectory outDir |> ignore
        let written = ResizeArray<string>()
        let target name =
            let path = Path.Combine(outDir, name)
            written.Add(Path.GetFullPath path)
            path
        let saveSvg name node = Svg.save (target name) node
        let body = StringBuilder()
        let add (s: string) = body.Append(s).Append('\n') |> ignore
        let figure (file: string) (caption: string) (cls: string) =
            add $"""<figure><img class="{cls}" src="{html file}" alt="{html caption}"><figcaption>{html caption}</figcaption></figure>"""
        let threshold = options.Threshold.ToString(CultureInfo.InvariantCulture)
        let names = labels runs

        // Table of runs.
        add "<h2>Runs</h2>"
        body.Append(Tables.html options.Threshold (RunStore.summaries options.Threshold runs)) |> ignore

        // Charts comparing the runs.
        let withMetrics = runs |> List.filter (fun r -> r.Metrics.Length > 0)
        if not withMetrics.IsEmpty then
            add "<h2>Training</h2>"
            saveSvg "bound.svg" (Charts.bound withMetrics)
            figure "bound.svg" "Test bound (solid) and training bound (dashed) per epoch." "chart"
            let withActivity = runs |> List.filter (fun r -> r.Activity.Length > 0)
            if not withActivity.IsEmpty then
                saveSvg "active-units.svg" (Charts.activeUnits withActivity options.Threshold)
                figure "active-units.svg" $"Active units per epoch (A_u > {threshold} on the test images)." "chart"

        // Per-run figures.
        let dataCache = Dictionary<string, Data.DataSplits>()
        let dataOf (config: TrainConfig) =
            let key = $"{config.Dataset}/{config.SyntheticDimension}/{(if config.Dataset = Data.SyntheticData.Name then config.Seed else 0UL)}"
            match dataCache.TryGetValue key with
            | true, d -> d
            | _ ->
                let d = RunStore.dataSplits config options.DataDirectory
                dataCache[key] <- d
                d
        for run, label in List.zip runs names do
            add $"<h2>{html run.Name}</h2>"
            add $"<p><code>{html (RunStore.describe run)}</code>, {RunStore.epochs run} epochs.</p>"
            if run.Activity.Length > 0 then
                saveSvg $"{label}-shade.svg" (Charts.shade run options.Threshold)
                figure $"{label}-shade.svg" "log10 activity per unit (rows, sorted by activity after the first epoch) and epoch (columns), as in Figure 3.3 of the activity paper." "chart"
                let final = Activity.final (Activity.history run)
                saveSvg $"{label}-units.svg" (Charts.sortedActivity run.Name final options.Threshold)
                figure $"{label}-units.svg" "Units sorted by activity after the last epoch, with their KL to the prior (eVAE paper, Figure 1)." "chart"
            if run.HasCheckpoint then
                progress $"report: images of {run.Name}"
                let trained = TrainedRun.Load run.Path
                let model = trained.Model
                let test = (dataOf trained.Config).Test
                let shown = test.Take(min options.Reconstructions test.Count)
                add "<h3>Images</h3>"
                Images.reconstructions model (trained.Images shown) shown.Count 10 (target $"{label}-reconstructions.png")
                figure $"{label}-reconstructions.png" $"The first {shown.Count} test images as the model sees them (top) and their reconstructions E[x | z = E_q[z|x]] (bottom)." "grid"
                Images.samples model options.Samples options.Seed (target $"{label}-samples.png")
                figure $"{label}-samples.png" $"{options.Samples} samples from the prior (decoder means; seed {options.Seed})." "grid"
                if model.Groups > 1 then
                    Images.epitomeSamples model options.PerEpitome options.Seed (target $"{label}-epitomes.png")
                    figure $"{label}-epitomes.png" $"Samples per epitome: row y decodes z ~ N(0, I) through epitome y ({model.Groups} rows)." "grid"
                if model.Latent = 2 then
                    let subset = test.Take(min options.ScatterPoints test.Count)
                    let means = Training.Evaluation.PosteriorMeans(model, trained.Images subset, subset.Count)
                    let points = Array.init subset.Count (fun i -> float means[2 * i], float means[2 * i + 1])
                    saveSvg $"{label}-scatter.svg" (Charts.scatter $"Test encodings: {run.Name}" points subset.Labels)
                    figure $"{label}-scatter.svg" $"Posterior means of {subset.Count} test images, coloured by label (activity paper, Figure 4.2)." "chart"
                    Images.latentScatter means subset.Labels subset.Count 440 (target $"{label}-scatter.png")
                    figure $"{label}-scatter.png" $"The same encodings as pixels on [-{Images.scatterExtent points}, {Images.scatterExtent points}]^2, grid at whole numbers." "grid"
                    Images.manifold model options.LatticeSteps (target $"{label}-manifold.png")
                    figure $"{label}-manifold.png" $"Decoded lattice: z = Phi^-1 of linspace(0.05, 0.95, {options.LatticeSteps}) per axis, z_1 to the right, z_2 upwards (activity paper, Figure 4.3)." "grid"
            else
                add """<p class="note">No checkpoint: images need the model.</p>"""

        let page =
            $"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>VaeResearch report</title>
<style>
{style}</style>
</head>
<body>
<h1>VaeResearch report</h1>
<p class="note">{runs.Length} run(s): {html (String.Join(", ", runs |> List.map (fun r -> r.Name)))}. Written {DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC; every figure is a file in this folder.</p>
{body}</body>
</html>
"""
        let index = Path.Combine(outDir, IndexFile)
        AtomicFile.WriteAllText(index, page)
        Path.GetFullPath index :: List.ofSeq written
