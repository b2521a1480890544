namespace VaeResearch.Analysis

// Activity statistics (Burda et al. 2015; activity paper eq. 5; eVAE paper section 3):
// A_u = Cov_x(E_q[u]) over a data set, the number of units above a threshold, and the per-unit KL.

open System
open System.Globalization
open System.Text
open Deedle
open VaeResearch
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Models
open VaeResearch.Training

/// One latent unit's statistics over a data set.
type UnitActivity =
    { /// Unit index u (0-based).
      Unit: int
      /// A_u = Cov_x(E_q[u]): population variance over the data of the posterior mean.
      Activity: float
      /// Mean over the data of KL(q(z_u|x) || N(0, 1)) in nats.
      Kl: float }

/// activity.csv as matrices: the activity and KL of every unit after every recorded epoch.
type ActivityHistory =
    { /// Recorded epochs (1-based), ascending.
      Epochs: int[]
      /// Latent units D.
      Units: int
      /// Activity[i][u]: A_u after epoch Epochs[i].
      Activity: float[][]
      /// Kl[i][u]: mean KL of unit u after epoch Epochs[i].
      Kl: float[][] }

/// <summary>
/// Activity statistics: A_u, active counts at thresholds, per-unit KL, per-epoch histories.
/// </summary>
/// <remarks>
/// A_u is the <b>population</b> variance (divided by n) of E_q[u|x] over the n images, as the core's
/// <c>Evaluation.Activity</c> computes it during training; the sample variance is n / (n - 1) times
/// larger (1.0001 for the 10,000 test images), which moves no unit across a threshold in practice.
/// Thresholds: 0.01 (Burda et al., the default), 0.02 (eVAE paper), 0.1 (activity paper).
/// </remarks>
[<RequireQualifiedAccess>]
module Activity =

    /// <summary>
    /// The default threshold (Burda et al. 2015): a unit is active when A_u &gt; 0.01.
    /// </summary>
    [<Literal>]
    let DefaultThreshold = 0.01

    /// The thresholds the papers use: 0.01 (Burda et al.), 0.02 (eVAE paper), 0.1 (activity paper).
    let PaperThresholds = [| 0.01; 0.02; 0.1 |]

    /// A_u for posterior means [count, latent] (row-major): the population variance of each column, in double.
    let ofMeans (means: float32[]) (count: int) (latent: int) : float[] =
        if means.Length < count * latent then
            invalidArg (nameof means) $"{means.Length} values cannot hold {count} x {latent} posterior means"
        Evaluation.Activity(ReadOnlySpan means, count, latent)

    /// <summary>
    /// Units whose activity exceeds <paramref name="threshold"/>.
    /// </summary>
    let activeCount (threshold: float) (activity: float seq) = activity |> Seq.filter (fun a -> a > threshold) |> Seq.length

    /// Unit indices sorted by activity, most active first (ties: lower index first).
    let sortedUnits (activity: float[]) : int[] =
        Array.init activity.Length id |> Array.sortWith (fun a b -> match compare activity[b] activity[a] with 0 -> compare a b | c -> c)

    /// Per-unit records of the core's statistics.
    let units (stats: UnitStatistics) : UnitActivity[] =
        Array.init stats.Activity.Length (fun u -> { Unit = u; Activity = stats.Activity[u]; Kl = stats.Kl[u] })

    /// <summary>
    /// A_u and the per-unit KL of <paramref name="model"/> over <paramref name="count"/> images [count, N]
    /// (models with epitomes use each image's best y*), in evaluation mode.
    /// </summary>
    let ofImages (model: IGenerativeModel) (images: float32[]) (count: int) : UnitActivity[] =
        if count < 1 then invalidArg (nameof count) $"activity needs at least one image, got {count}"
        // NOTE: k = 1 and any noise: only the unit statistics are used, and they do not depend on the noise
        // (posterior means and the analytic KL).
        let evaluation = Evaluation.Evaluate(model, images, count, 1, Rng(0UL, TrainStreams.Tool 3u))
        units evaluation.Units

    /// <summary>
    /// A split of the run's data set as the model sees it, the same images <c>vae encode --split SPLIT</c> exports:
    /// "test" is the whole test set (ignoring the run's --test-subset) binarized with the run's fixed test sample,
    /// "train" the whole training set with the first epoch's binarization.
    /// </summary>
    let splitImages (trained: TrainedRun) (split: string) (dataDirectory: string option) : Dataset * float32[] =
        let splits = RunStore.dataSplits trained.Config dataDirectory
        let data =
            match split with
            | "test" -> splits.Test
            | "train" -> splits.Train
            | other -> raise (VaeResearchException($"the split must be train or test, got '{other}'"))
        data, trained.Images data

    /// <summary>
    /// The run's test images as the model sees them, the same ones <c>vae encode --split test</c> exports:
    /// the whole test set (ignoring the run's --test-subset), binarized with the run's fixed test sample.
    /// </summary>
    let testImages (trained: TrainedRun) (dataDirectory: string option) : Dataset * float32[] =
        splitImages trained "test" dataDirectory

    /// <summary>
    /// A_u and KL of every unit of a trained run over its test set (see <see cref="testImages"/>).
    /// </summary>
    let ofRun (trained: TrainedRun) (dataDirectory: string option) : UnitActivity[] =
        let test, images = testImages trained dataDirectory
        ofImages trained.Model images test.Count

    /// <summary>
    /// activity.csv of <paramref name="run"/> as matrices; rows that do not pass <c>RunStore.validate</c> (an epoch
    /// without exactly the units 0..D-1) are an error naming the file.
    /// </summary>
    let history (run: Run) : ActivityHistory =
        RunStore.validate run
        let latent = run.Config.Latent
        let epochs = run.Activity |> Array.map (fun r -> r.Epoch) |> Array.distinct |> Array.sort
        let index = epochs |> Array.mapi (fun i e -> e, i) |> dict
        let activity = Array.init epochs.Length (fun _ -> Array.zeroCreate latent)
        let kl = Array.init epochs.Length (fun _ -> Array.zeroCreate latent)
        for r in run.Activity do
            activity[index[r.Epoch]][r.Unit] <- r.Activity
            kl[index[r.Epoch]][r.Unit] <- r.Kl
        { Epochs = epochs; Units = latent; Activity = activity; Kl = kl }

    /// <summary>
    /// (epoch, active units at <paramref name="threshold"/>) for every recorded epoch.
    /// </summary>
    let activeCounts (threshold: float) (history: ActivityHistory) : (int * int)[] =
        Array.map2 (fun e a -> e, activeCount threshold a) history.Epochs history.Activity

    /// <summary>
    /// Runs of consecutive recorded epochs with the same count in (epoch, count) pairs (e.g. <see cref="activeCounts"/>),
    /// as (first epoch, last epoch, count), in epoch order.
    /// </summary>
    let changes (counts: (int * int)[]) : (int * int * int)[] =
        let runs = ResizeArray()
        for epoch, count in counts do
            match (if runs.Count = 0 then None else Some runs[runs.Count - 1]) with
            | Some (first, _, c) when c = count -> runs[runs.Count - 1] <- (first, epoch, c)
            | _ -> runs.Add((epoch, epoch, count))
        runs.ToArray()

    /// <summary>
    /// (epoch, count) pairs in words, one entry per run of equal counts: <c>"epochs 1-4: 50, 5-17: 31, 18-3280: 19"</c>
    /// (a run of one epoch names it alone; no epochs: <c>"no epochs"</c>).
    /// </summary>
    let compactCounts (counts: (int * int)[]) : string =
        let runs = changes counts
        if runs.Length = 0 then "no epochs"
        else
            let range (first, last, count) = if first = last then $"{first}: {count}" else $"{first}-{last}: {count}"
            let head = match runs with [| first, last, _ |] when first = last -> "epoch" | _ -> "epochs"
            head + " " + String.Join(", ", runs |> Array.map range)

    /// The sparkline's levels, lowest first.
    let private SparkLevels = "▁▂▃▄▅▆▇█"

    /// <summary>
    /// A one-line chart of (epoch, count) pairs at most <paramref name="width"/> characters wide: recorded epochs are
    /// split into that many equal bins (as the shade plot bins its columns), each drawn as the mean count over its bin
    /// on a scale from 0 (lowest bar) to <paramref name="top"/> (highest bar).
    /// </summary>
    let sparkline (width: int) (top: int) (counts: (int * int)[]) : string =
        if width < 1 then invalidArg (nameof width) $"the width must be >= 1, got {width}"
        let columns = min width counts.Length
        let level (v: float) =
            let l = if top <= 0 then 0 else int (round (v / float top * float (SparkLevels.Length - 1)))
            SparkLevels[max 0 (min (SparkLevels.Length - 1) l)]
        String(Array.init columns (fun c ->
            let a, b = c * counts.Length / columns, (c + 1) * counts.Length / columns
            level (Seq.average (seq { for i in a .. b - 1 -> float (snd counts[i]) }))))

    /// Unit indices sorted by their activity at the first recorded epoch, most active first (the shade plot's order).
    let initialOrder (history: ActivityHistory) : int[] =
        if history.Epochs.Length = 0 then Array.init history.Units id else sortedUnits history.Activity[0]

    /// The per-unit statistics after the last recorded epoch (empty when no epoch was recorded).
    let final (history: ActivityHistory) : UnitActivity[] =
        if history.Epochs.Length = 0 then [||]
        else
            let last = history.Epochs.Length - 1
            Array.init history.Units (fun u -> { Unit = u; Activity = history.Activity[last][u]; Kl = history.Kl[last][u] })

    /// <summary>
    /// Active units (A_u above <paramref name="threshold"/>) per run and epoch of an activity frame
    /// (<c>RunStore.activityFrame</c>), keyed (run, epoch).
    /// </summary>
    let activeByEpoch (threshold: float) (activity: Frame<string * int * int, string>) : Series<string * int, int> =
        activity.GetColumn<float> "activity"
        |> Series.groupInto (fun (run, epoch, _) _ -> run, epoch) (fun _ units -> units |> Series.filterValues (fun a -> a > threshold) |> Series.countValues)

    /// <summary>
    /// A_u of every unit after each run's last recorded epoch, from an activity frame (<c>RunStore.activityFrame</c>):
    /// one row per unit, one column per run (missing where a run has fewer units).
    /// </summary>
    let finalByUnit (activity: Frame<string * int * int, string>) : Frame<int, string> =
        let values = activity.GetColumn<float> "activity"
        let last = values.Keys |> Seq.groupBy (fun (run, _, _) -> run) |> Seq.map (fun (run, keys) -> run, keys |> Seq.map (fun (_, e, _) -> e) |> Seq.max) |> Seq.toList
        Frame.ofColumns
            [ for run, epoch in last ->
                  run, values |> Series.filter (fun (r, e, _) _ -> r = run && e = epoch) |> Series.mapKeys (fun (_, _, u) -> u) ]

    /// CSV text (unit, activity, kl, active) with a header pandas and Deedle read unchanged.
    let csv (threshold: float) (units: UnitActivity[]) =
        let text = StringBuilder("unit,activity,kl,active\n")
        let f (v: float) = v.ToString("R", CultureInfo.InvariantCulture)
        for u in units do
            text.Append($"{u.Unit},{f u.Activity},{f u.Kl},{(if u.Activity > threshold then 1 else 0)}\n") |> ignore
        text.ToString()

    /// <summary>
    /// Writes <see cref="csv"/> to <paramref name="path"/> atomically.
    /// </summary>
    let writeCsv (path: string) (threshold: float) (units: UnitActivity[]) = AtomicFile.WriteAllText(path, csv threshold units)
