module VaeResearch.Properties.ActivityProtocolTests

// Activity where the papers measure it: the per-epoch activity of a run on its chosen population (the test
// set, the first N training images as Burda et al. 2015 use, or a seeded random subset of N training
// images), the untrained model's activity as epoch 0 (the activity paper's shade plot sorts units by
// initial activity), and the compact per-epoch summary `vae activity` prints. Runs are tiny and on the
// synthetic data set; every expected value is recomputed here independently, in double.

open System
open System.IO
open Expecto
open VaeResearch
open VaeResearch.Analysis
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Training
open VaeResearch.TestSupport

/// A tiny synthetic run (600 training and 100 test images, D = 4, one hidden layer of 16) with these activity settings.
let private tinyWith (population: ActivityPopulation) (n: int option) (initial: bool) (seed: uint64) (epochs: int) =
    TrainConfig(Dataset = "synthetic", TrainSubset = Nullable 600, TestSubset = Nullable 100, Latent = 4, Hidden = [| 16 |],
                Epochs = epochs, Seed = seed, ActivityPopulation = population, ActivityN = Option.toNullable n, ActivityInitial = initial)

/// One epoch of the tiny run, seed 5.
let private tiny (population: ActivityPopulation) (n: int option) (initial: bool) = tinyWith population n initial 5UL 1

/// Trains <paramref name="config"/> into folder/name; returns the run folder and the data it trained on.
let private train (folder: TempFolder) (name: string) (config: TrainConfig) =
    let run = RunFolder.Create(folder.Sub name)
    let data = Trainer.LoadData(config, null, null)
    Trainer.Run(config, run, false, data, SilentProgress.Instance) |> ignore
    run, data

/// A_u computed here: the population variance (divided by n), in double, of each column of posterior means [n, D].
let private populationVariance (means: float32[]) (n: int) (latent: int) =
    Array.init latent (fun u ->
        let column = Array.init n (fun i -> float means[i * latent + u])
        let mean = Array.average column
        (column |> Array.sumBy (fun v -> (v - mean) * (v - mean))) / float n)

/// The activity of training images <paramref name="indices"/> under the run's checkpoint, from
/// Evaluation.PosteriorMeans of their epoch-0 binarization (the images the model saw first).
let private expectedActivity (run: RunFolder) (data: DataSplits) (indices: int[]) =
    let trained = TrainedRun.Load run.Path
    let all = trained.Images data.Train
    let dim = data.Train.Dim
    let images = Array.concat [ for i in indices -> all[i * dim .. (i + 1) * dim - 1] ]
    populationVariance (Evaluation.PosteriorMeans(trained.Model, images, indices.Length)) indices.Length trained.Config.Latent

/// activity.csv's activity of every unit at <paramref name="epoch"/>, in unit order.
let private recorded (run: RunFolder) (epoch: int) =
    RunCsv.ReadActivity run.ActivityPath |> Seq.filter (fun r -> r.Epoch = epoch) |> Seq.sortBy (fun r -> r.Unit) |> Seq.map (fun r -> r.Activity) |> Seq.toArray

/// Relative agreement of two activities (batches of different sizes may round the posterior means differently).
let private close (actual: float[]) (expected: float[]) (message: string) =
    Expect.equal actual.Length expected.Length $"{message}: units"
    for u in 0 .. expected.Length - 1 do
        within (1e-6 * max 1e-3 expected[u]) actual[u] expected[u] $"{message}: unit {u}"

/// The per-epoch counts expanded from a compact summary "epochs a-b: c, d: e, ...".
let private expand (summary: string) =
    let body = summary.Substring(summary.IndexOf ' ' + 1)
    [| for part in body.Split(", ") do
           let range, count = let i = part.IndexOf ": " in part.Substring(0, i), int (part.Substring(i + 2))
           let first, last = match range.Split '-' with [| a; b |] -> int a, int b | [| a |] -> int a, int a | _ -> failwith part
           for e in first .. last -> e, count |]

/// The tests of this module.
let tests =
    testList "ActivityProtocol" [

        testCase "activity on the first N training images is the population variance of their posterior means" <| fun () ->
            use folder = new TempFolder("vae-activity-protocol-")
            let config = tiny ActivityPopulation.TrainFirst (Some 50) false
            let run, data = train folder "first" config
            let expected = expectedActivity run data [| 0 .. 49 |]
            close (recorded run 1) expected "activity.csv, epoch 1"
            let metrics = RunCsv.ReadMetrics run.MetricsPath
            Expect.equal metrics[0].ActiveUnits (Activity.activeCount 0.01 expected) "metrics.csv counts the population's active units"
            // The test set's activity differs: the population really changed.
            let trained = TrainedRun.Load run.Path
            let test = Activity.ofImages trained.Model (trained.Images data.Test) data.Test.Count
            Expect.notEqual (test |> Array.map (fun u -> u.Activity)) (recorded run 1) "not the test set's activity"
            Expect.equal (run.ReadConfig().ActivityPopulation, run.ReadConfig().ActivityN) (ActivityPopulation.TrainFirst, Nullable 50) "config.json keeps the population"
            Expect.stringContains (File.ReadAllText run.ConfigPath) "\"activity_population\": \"train_first\"" "snake_case in config.json"

        testCase "the random training subset is seeded, reproducible, different from the first N, and what activity.csv measures" <| fun () ->
            let config = tiny ActivityPopulation.TrainRandom (Some 50) false
            let indices = nonNull (ActivitySample.TrainIndices(config, 600))
            Expect.equal (nonNull (ActivitySample.TrainIndices(config, 600))) indices "the same seed draws the same images"
            Expect.equal indices.Length 50 "N images"
            Expect.equal (Array.distinct indices |> Array.sort) indices "distinct and ascending"
            Expect.isTrue (indices |> Array.forall (fun i -> i >= 0 && i < 600)) "inside the training images"
            Expect.notEqual indices [| 0 .. 49 |] "not the first N"
            Expect.notEqual (nonNull (ActivitySample.TrainIndices(tinyWith ActivityPopulation.TrainRandom (Some 50) false 6UL 1, 600))) indices "another seed draws other images"
            use folder = new TempFolder("vae-activity-protocol-")
            let run, data = train folder "random" config
            close (recorded run 1) (expectedActivity run data indices) "activity.csv, epoch 1"

        testCase "epoch-0 rows exist only with activity_initial and are the untrained model's activity" <| fun () ->
            use folder = new TempFolder("vae-activity-protocol-")
            let plain, _ = train folder "plain" (tiny ActivityPopulation.Test None false)
            Expect.isFalse (RunCsv.ReadActivity plain.ActivityPath |> Seq.exists (fun r -> r.Epoch = 0)) "no epoch 0 by default"
            let config = tiny ActivityPopulation.Test None true
            let run, data = train folder "initial" config
            let untrained = ModelFactory.Build(config, data.Train.Dim, Rng(config.Seed, TrainStreams.Init))
            let testImages = Binarizer(data.Test, config.EffectiveBinarization, config.Seed).Epoch 0
            let expected = Evaluation.Units(untrained, testImages, data.Test.Count)
            let rows = RunCsv.ReadActivity run.ActivityPath |> Seq.filter (fun r -> r.Epoch = 0) |> Seq.sortBy (fun r -> r.Unit) |> Seq.toArray
            Expect.equal (rows |> Array.map (fun r -> r.Activity)) expected.Activity "epoch 0: the untrained model's activity"
            Expect.equal (rows |> Array.map (fun r -> r.Kl)) expected.Kl "epoch 0: the untrained model's KL"
            Expect.equal (recorded run 1) (recorded plain 1) "epoch 1 is unchanged by recording epoch 0"
            Expect.equal ((RunCsv.ReadMetrics run.MetricsPath) |> Seq.map (fun m -> m.Epoch) |> Seq.toList) [ 1 ] "metrics.csv has no epoch 0"
            // Every reader accepts epoch 0: the history, the shade plot's initial order, the run summary.
            let stored = RunStore.load run.Path
            let history = Activity.history stored
            Expect.equal history.Epochs [| 0; 1 |] "history epochs"
            Expect.equal (Activity.initialOrder history) (Activity.sortedUnits expected.Activity) "sorted by the initial activity"
            Charts.shade stored 0.01 |> ignore
            Expect.equal (RunStore.summarize 0.01 stored.Name stored).CompletedEpochs 1 "one completed epoch"
            // A resumed run keeps its epoch-0 rows once.
            Trainer.Run(tinyWith ActivityPopulation.Test None true 5UL 2, RunFolder.Open run.Path, true, data, SilentProgress.Instance) |> ignore
            let epochs = RunCsv.ReadActivity run.ActivityPath |> Seq.map (fun r -> r.Epoch) |> Seq.countBy id |> Seq.toList
            Expect.equal epochs [ 0, 4; 1, 4; 2, 4 ] "epochs 0, 1 and 2, one row per unit each"

        testCase "the activity settings are checked, naming their keys" <| fun () ->
            let key (config: TrainConfig) = (throws<ConfigException> (fun () -> config.Validate() |> ignore)).Key
            Expect.equal (key (tiny ActivityPopulation.TrainFirst None false)) "activity_n" "train_first needs N"
            Expect.equal (key (tiny ActivityPopulation.TrainRandom (Some 0) false)) "activity_n" "N >= 1"
            Expect.equal (key (tiny ActivityPopulation.TrainFirst (Some 601) false)) "activity_n" "N <= train_subset"
            Expect.equal (key (tiny ActivityPopulation.Test (Some 50) false)) "activity_n" "N does not apply to the test population"
            let unbounded = TrainConfig(Dataset = "synthetic", ActivityPopulation = ActivityPopulation.TrainFirst, ActivityN = Nullable 10_001)
            Expect.equal (throws<ConfigException> (fun () -> ActivitySample.TrainIndices(unbounded.Validate(), 10_000) |> ignore)).Key "activity_n" "N <= the training images"

        testCase "the compact per-epoch summary names the epochs where the count changes" <| fun () ->
            let counts = [| for e in 1 .. 3280 -> e, (if e <= 4 then 50 elif e <= 17 then 31 else 19) |]
            Expect.equal (Activity.compactCounts counts) "epochs 1-4: 50, 5-17: 31, 18-3280: 19" "the 3280-epoch history"
            Expect.equal (Activity.changes counts) [| 1, 4, 50; 5, 17, 31; 18, 3280, 19 |] "the runs"
            Expect.equal (Activity.compactCounts [| 3, 7 |]) "epoch 3: 7" "one epoch"
            Expect.equal (Activity.compactCounts [| 0, 4; 1, 2; 2, 2; 3, 3 |]) "epochs 0: 4, 1-2: 2, 3: 3" "epoch 0 and runs of one"
            Expect.equal (Activity.compactCounts [||]) "no epochs" "empty"
            let line = Activity.sparkline 60 50 counts
            Expect.equal line.Length 60 "60 bins"
            Expect.equal line[59] '▄' "19 of 50 is the fourth level"
            // Each bin is the mean over its epochs: 3280 epochs in 60 bins of 54 or 55.
            Expect.equal line[0] '▄' "epochs 1-54: a mean of 24.2 of 50 units"
            let slow = Activity.sparkline 60 50 [| for e in 1 .. 3280 -> e, (if e <= 1640 then 50 else 0) |]
            Expect.equal slow (String('█', 30) + String('▁', 30)) "half the epochs at 50 units, half at 0"
            Expect.equal (Activity.sparkline 60 4 [| 1, 0; 2, 4 |]) "▁█" "fewer epochs than columns: one per epoch"
            // Expanding the summary gives back every epoch's count, for random histories.
            let rng = Rng(9UL)
            for _ in 1 .. 50 do
                let history = ResizeArray()
                let mutable c = rng.NextInt 10
                for e in 1 .. 1 + rng.NextInt 200 do
                    if rng.NextInt 4 = 0 then c <- rng.NextInt 10
                    history.Add((e, c))
                let history = history.ToArray()
                Expect.equal (expand (Activity.compactCounts history)) history "the summary keeps every count"
    ]
