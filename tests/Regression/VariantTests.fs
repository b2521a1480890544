module VaeResearch.Regression.VariantTests

// The model variants of issue 5, each trained from the CLI (`dotnet vae.dll train ...`, as in CliTests)
// for two epochs on the first 5,000 training images, with statistics on the first 1,000 test images:
//   plain VAE (the comparison), KL weight 0.5, KL warm-up over 2 epochs, batch normalization, dropout on z,
//   the epitomic VAE (eVAE) and the mixture VAE (mVAE).
// Every variant reproduces its golden epoch-2 metrics (seed 11) within GoldenRelTol, and another seed
// does not (the negative control). Then what must hold whatever the goldens: the beta column of the
// KL-weight and warm-up runs, the KL weight changing the training objective, the batch-norm tensors in the
// checkpoint and an evaluation-mode `vae eval`, a finite dropout-free test bound, the eVAE/mVAE
// assignments and the mVAE's per-component tensors.
// Each test trains into its own temporary folder and deletes it afterwards. A run takes ~2-3 s here.

open System
open System.IO
open Expecto
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Training
open VaeResearch.Regression.CliTests
open VaeResearch.TestSupport

/// Relative tolerance of the golden metrics (train_bound, test_bound, kl).
/// Float32 sums are ordered differently by the GEMM backends (OpenBLAS kernels per CPU, the managed SIMD
/// fallback) and by thread counts, and 100 Adam steps carry that into the metrics. Measured for these seven
/// runs: VAE_GEMM=managed vs OpenBLAS moves every epoch-1/2 metric by < 1e-7 relative (largest: the
/// batch-norm run's KL, 7.7e-8), 1 vs 2 threads by < 2e-8 (TrainingTests.fs measured < 1e-8 for its run).
/// So 1e-4 leaves three orders of magnitude for other CPUs and BLAS builds, while a change in semantics moves
/// these values by far more: another seed moves the plain run's epoch-2 test bound by 7.5e-3 relative and
/// its KL by 0.19; the KL weight 0.5 moves the train bound by 3.2e-3.
let GoldenRelTol = 1e-4

/// Activity threshold of the active-unit count (metrics.csv's active_units: Cov_x(E_q[u]) > 0.01).
let ActivityThreshold = 0.01

/// An active-unit count is compared exactly only when every unit's activity is more than this fraction of
/// the threshold away from it (a unit closer could cross it on another CPU).
let ThresholdMargin = 0.2

/// The settings all variants share: small models for a short runtime. Seed 11, 2 threads (the goldens'
/// thread count; the count changes float32 summation order).
let smallRun (seed: int) =
    [ "--latent"; "20"; "--hidden"; "100,100"; "--epochs"; "2"; "--train-subset"; "5000"; "--test-subset"; "1000"
      "--seed"; string seed; "--threads"; string Threads ]

/// The golden seed.
let GoldenSeed = 11

/// Training images and minibatch size (the CLI's default --batch 100): 50 optimizer steps per epoch.
let TrainImages, BatchSize = 5000, 100

/// Epoch-2 row of metrics.csv: beta, train_bound, test_bound, kl, active_units (None: not compared exactly,
/// a unit sits within ThresholdMargin of the threshold).
type Golden =
    { Beta: float
      TrainBound: float
      TestBound: float
      Kl: float
      ActiveUnits: int option }

/// A variant: its name, its `vae train` options beyond smallRun, and its golden epoch-2 metrics.
type Variant =
    { Name: string
      Options: string list
      Golden: Golden }

// Golden values. Regenerate one variant (from the repository root; OPTIONS as in its `Options` below) with
//   rm -rf /tmp/golden && ./vae train --out /tmp/golden --latent 20 --hidden 100,100 --epochs 2 \
//     --train-subset 5000 --test-subset 1000 --seed 11 --threads 2 OPTIONS \
//     && cat /tmp/golden/metrics.csv /tmp/golden/activity.csv
// copy row 2 of metrics.csv (all but `seconds`) here, check activity.csv's epoch-2 units against
// ThresholdMargin (the nearest unit is noted beside every count), and give the reason in the commit message.
// Produced by vaeresearch 1.0.0+06e29c3a (config.json's version) with OpenBLAS, 2 threads, Haswell kernels.

let Plain =
    { Name = "plain VAE"
      Options = []
      // Nearest to the threshold: unit 1 at 0.00744 (26 % below).
      Golden = { Beta = 1.0; TrainBound = -204.4318768310547; TestBound = -195.76401314544677; Kl = 2.464767758839627; ActiveUnits = Some 19 } }

let KlWeight =
    { Name = "KL weight 0.5"
      Options = [ "--kl-weight"; "0.5" ]
      // Nearest: unit 2 at 0.01208 (21 % above).
      Golden = { Beta = 0.5; TrainBound = -203.7678826904297; TestBound = -196.47700608825684; Kl = 4.492444151726716; ActiveUnits = Some 20 } }

let Warmup =
    { Name = "warm-up 2 epochs"
      Options = [ "--warmup-epochs"; "2" ]
      // Nearest: unit 3 at 0.01222 (22 % above). Beta 0.99 = 99/100, see the warm-up test.
      Golden = { Beta = 0.99; TrainBound = -205.30178588867187; TestBound = -196.6270577545166; Kl = 2.628981059722521; ActiveUnits = Some 20 } }

let BatchNorm =
    { Name = "batch norm"
      Options = [ "--batchnorm" ]
      // Nearest: unit 16 at 0.195 (far above).
      Golden = { Beta = 1.0; TrainBound = -200.73319091796876; TestBound = -184.98065921783447; Kl = 6.538232269176552; ActiveUnits = Some 20 } }

let DropoutZ =
    { Name = "dropout on z 0.5"
      Options = [ "--dropout-z"; "0.5" ]
      // The run reports 18 active units, but three units sit within 20 % of the 0.01 threshold (unit 0 at
      // 0.01115, unit 1 at 0.00810, unit 4 at 0.00854): the count is not compared (only this check is skipped).
      Golden = { Beta = 1.0; TrainBound = -206.18782318115234; TestBound = -197.4300327911377; Kl = 2.0793077543606757; ActiveUnits = None } }

let Evae =
    { Name = "eVAE"
      Options = [ "--model"; "evae"; "--epitome-size"; "5"; "--epitome-stride"; "5" ]
      // Nearest: unit 11 at 0.00457 (54 % below). The first epoch trains every epitome on an equal share.
      Golden = { Beta = 1.0; TrainBound = -206.64350036621093; TestBound = -198.12155667114257; Kl = 2.198211923091018; ActiveUnits = Some 9 } }

let Mvae =
    { Name = "mVAE"
      Options = [ "--model"; "mvae"; "--epitome-size"; "5" ]
      // The run reports 10 active units, but unit 2 sits at 0.01046 (5 % above the threshold): not compared.
      Golden = { Beta = 1.0; TrainBound = -214.71003662109376; TestBound = -197.93269724273682; Kl = 5.057311404707375; ActiveUnits = None } }

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fresh temporary folder, deleted by the caller's `use`.

/// A trained run folder with its metrics.csv and activity.csv.
type TrainedVariant =
    { Path: string
      Metrics: MetricsRow list
      Activity: ActivityRow list }

/// Trains `options` with smallRun seed into folder/name through the CLI and reads its CSV files.
let trainWith (folder: TempFolder) (name: string) (seed: int) (options: string list) =
    let path = folder.Sub name
    let o = succeeds ([ "train"; "--out"; path ] @ smallRun seed @ options)
    Expect.stringContains o.Stdout ("epoch 2: train bound") name
    { Path = path
      Metrics = RunCsv.ReadMetrics(Path.Combine(path, "metrics.csv")) |> Seq.toList
      Activity = RunCsv.ReadActivity(Path.Combine(path, "activity.csv")) |> Seq.toList }

/// Trains a variant with the golden seed.
let train (folder: TempFolder) (variant: Variant) = trainWith folder "run" GoldenSeed variant.Options

/// Whether actual is within GoldenRelTol of expected.
let withinTolerance (actual: float) (expected: float) = abs (actual - expected) <= GoldenRelTol * abs expected

/// Asserts the shape of metrics.csv and activity.csv, and the epoch-2 metrics against the variant's goldens.
let assertGolden (variant: Variant) (run: TrainedVariant) =
    Expect.equal (run.Metrics |> List.map (fun r -> r.Epoch)) ([ 1; 2 ]) ($"{variant.Name}: one metrics row per epoch")
    for row in run.Metrics do
        for name, value in [ "train_bound", row.TrainBound; "test_bound", row.TestBound; "kl", row.Kl ] do
            Expect.isTrue (Double.IsFinite value) ($"{variant.Name}: epoch {row.Epoch} {name} = {value} is finite")
        // activity.csv: 20 units per epoch; their count above the threshold is metrics.csv's active_units.
        let units = run.Activity |> List.filter (fun a -> a.Epoch = row.Epoch)
        Expect.equal (units |> List.map (fun a -> a.Unit)) ([ 0..19 ]) ($"{variant.Name}: epoch {row.Epoch} units")
        Expect.equal (units |> List.filter (fun a -> a.Activity > ActivityThreshold) |> List.length) row.ActiveUnits ($"{variant.Name}: epoch {row.Epoch} active_units agrees with activity.csv")
    let row = run.Metrics[1]
    let golden = variant.Golden
    let close (name: string) (actual: float) (expected: float) =
        within (float (GoldenRelTol * abs expected)) actual expected name
    // Beta is a closed form of the settings and the step count (no float accumulation): exact.
    Expect.equal row.Beta golden.Beta ($"{variant.Name}: epoch 2 beta")
    close "train_bound" row.TrainBound golden.TrainBound
    close "test_bound" row.TestBound golden.TestBound
    close "kl" row.Kl golden.Kl
    match golden.ActiveUnits with
    | Some active ->
        // The exact count is sound only while no unit is near the threshold; if this fails, the variant's
        // count must become None (see DropoutZ).
        let near =
            run.Activity
            |> List.filter (fun a -> a.Epoch = 2 && abs (a.Activity - ActivityThreshold) <= ThresholdMargin * ActivityThreshold)
        Expect.isEmpty near ($"{variant.Name}: units within {ThresholdMargin:P0} of the threshold")
        Expect.equal row.ActiveUnits active ($"{variant.Name}: epoch 2 active_units")
    | None -> ()

/// Names of a run's checkpoint tensors (model only: the optimizer state is stored beside them).
let checkpointNames (run: TrainedVariant) =
    let content = Safetensors.Load(Path.Combine(run.Path, "checkpoint.safetensors"))
    content, content.Tensors |> Seq.map (fun t -> t.Name) |> Seq.filter (fun n -> not (n.StartsWith "optimizer.")) |> Set.ofSeq

/// assignments.csv of an eVAE or mVAE run: the exact header, every group in each epoch, counts summing to the
/// training set.
let assertAssignments (run: TrainedVariant) (groups: int) =
    let path = Path.Combine(run.Path, "assignments.csv")
    Expect.equal (File.ReadLines path |> Seq.head) ("epoch,epitome,count") "File.ReadLines path |> Seq.head"
    let rows = RunCsv.ReadAssignments path |> Seq.toList
    for epoch in [ 1; 2 ] do
        let ofEpoch = rows |> List.filter (fun r -> r.Epoch = epoch)
        Expect.equal (ofEpoch |> List.map (fun r -> r.Epitome)) ([ 0 .. groups - 1 ]) ($"epoch {epoch}: one row per epitome")
        Expect.isTrue (ofEpoch |> List.forall (fun r -> r.Count >= 0)) ($"epoch {epoch}: counts are non-negative")
        Expect.equal (ofEpoch |> List.sumBy (fun r -> r.Count)) TrainImages ($"epoch {epoch}: every training image is assigned once")
    Expect.equal rows.Length (2 * groups) "rows.Length"

/// eVAE/mVAE metrics: two rows whose test bounds (which include log p(y) = -log 4) are finite.
let assertGroupedMetrics (run: TrainedVariant) =
    Expect.equal run.Metrics.Length 2 "run.Metrics.Length"
    Expect.isTrue (run.Metrics |> List.forall (fun r -> Double.IsFinite r.TestBound && r.TestBound < 0.0)) ("finite test bounds")

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Variants" [

        // ---------------------------------------------------------------------------------------------
        // Goldens, one variant per test, with what each variant must do whatever its goldens
        testCase "plain VAE trains two epochs from the CLI and reproduces its golden metrics" <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = train folder Plain
            assertGolden Plain run
            Expect.equal (run.Metrics |> List.map (fun r -> r.Beta)) ([ 1.0; 1.0 ]) ("no warm-up, KL weight 1")

        testCase "KL weight 0.5 reproduces its goldens, records beta 0.5 and changes the training bound" <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = train folder KlWeight
            assertGolden KlWeight run
            Expect.equal (run.Metrics |> List.map (fun r -> r.Beta)) ([ 0.5; 0.5 ]) ("beta = KL weight, every epoch")
            // The plain VAE with the same seed: the weighted objective is another number (beyond the golden tolerance).
            let plain = trainWith folder "plain" GoldenSeed []
            for weighted, unweighted in List.zip run.Metrics plain.Metrics do
                Expect.isGreaterThan (abs (weighted.TrainBound - unweighted.TrainBound)) (GoldenRelTol * abs unweighted.TrainBound) ($"epoch {weighted.Epoch}: train bound {weighted.TrainBound:R} with KL weight 0.5 vs {unweighted.TrainBound:R} without")

        testCase "warm-up reproduces its goldens and records the per-step linear beta at each epoch's last step" <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = train folder Warmup
            assertGolden Warmup run
            // Beta at an epoch's last step follows the optimizer steps completed before it: (steps - 1) / (2 steps)
            // after epoch 1 and (2 steps - 1) / (2 steps) after epoch 2, with 50 steps per epoch: 0.49 and 0.99.
            let steps = Batches.Count(TrainImages, BatchSize)
            Expect.equal steps 50 "steps"
            let expected =
                [ Schedules.WarmupBeta(2, steps, int64 (steps - 1))
                  Schedules.WarmupBeta(2, steps, int64 (2 * steps - 1)) ]
            Expect.equal expected ([ float (steps - 1) / float (2 * steps); float (2 * steps - 1) / float (2 * steps) ]) ("WarmupBeta's closed form")
            Expect.equal (run.Metrics |> List.map (fun r -> r.Beta)) expected ("metrics.csv beta column")
            Expect.equal (run.Metrics |> List.map (fun r -> r.Beta)) ([ 0.49; 0.99 ]) "run.Metrics |> List.map (fun r -> r.Beta)"

        testCase "batch norm reproduces its goldens, saves the norm tensors and evaluates in eval mode" <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = train folder BatchNorm
            assertGolden BatchNorm run
            // docs/contracts.md, "Tensor names": encoder.norm.{i}.weight|bias|running_mean|running_var, the same under decoder., one per hidden layer.
            let content, names = checkpointNames run
            for side in [ "encoder"; "decoder" ] do
                for i in [ 0; 1 ] do
                    for tensor in [ "weight"; "bias"; "running_mean"; "running_var" ] do
                        let name = $"{side}.norm.{i}.{tensor}"
                        Expect.isTrue (names.Contains name) ($"checkpoint has {name}")
                        Expect.isTrue (content.Get(name, 100).Data |> Array.forall Single.IsFinite) ($"{name} is finite")
                    // The running statistics were updated by training (initialized 0 and 1).
                    let var = content[$"{side}.norm.{i}.running_var"].Data
                    Expect.isTrue (var |> Array.forall (fun v -> v > 0.0f)) ($"{side}.norm.{i}.running_var > 0")
                    Expect.isTrue (var |> Array.exists (fun v -> v <> 1.0f)) ($"{side}.norm.{i}.running_var was updated")
                Expect.equal (names |> Set.filter (fun n -> n.StartsWith $"{side}.norm.") |> Set.count) 8 ($"{side}: 2 layers x 4 norm tensors")
            // Evaluation mode: `vae eval` runs, and the running statistics make an image's code independent of its batch.
            let o = succeeds [ "eval"; run.Path; "--k"; "10"; "--subset"; "100"; "--threads"; string Threads ]
            Expect.stringContains o.Stdout ("NLL = ") "o.Stdout"
            use json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(run.Path, "eval.json")))
            let nll = json.RootElement.GetProperty("nll").GetDouble()
            inRange 50.0 (784.0 * log 2.0) nll ("NLL between a perfect model and the uniform Bernoulli model")
            succeeds [ "encode"; run.Path; "--npy"; folder.Sub "z1.npy"; "--subset"; "1" ] |> ignore
            succeeds [ "encode"; run.Path; "--npy"; folder.Sub "z100.npy"; "--subset"; "100" ] |> ignore
            let _, _, alone = readNpy (folder.Sub "z1.npy")
            let _, _, inBatch = readNpy (folder.Sub "z100.npy")
            withinEach (float (1e-5f)) alone inBatch[.. 19] "alone"

        testCase "dropout on z reproduces its goldens and its test bound is the finite dropout-free bound" <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = train folder DropoutZ
            assertGolden DropoutZ run
            Expect.isTrue (run.Metrics |> List.forall (fun r -> Double.IsFinite r.TestBound)) ("finite test bounds")
            // The saved model in evaluation mode (no dropout) gives the recorded test bound again, with the same images
            // and noise stream (seed 11, evaluation stream of epoch 2).
            withThreads (fun () ->
                let trained = TrainedRun.Load run.Path
                let test = Trainer.LoadData(trained.Config, null, null).Test
                Expect.equal test.Count 1000 "test.Count"
                let eval = Evaluation.Evaluate(trained.Model, trained.Images test, test.Count, 1, Rng(uint64 GoldenSeed, TrainStreams.Eval 1))
                let recorded = run.Metrics[1].TestBound
                within (CrossProcessRelTol * abs recorded) (float eval.Bound) recorded "eval.Bound")

        testCase "eVAE reproduces its goldens and assigns every training image to one epitome per epoch" <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = train folder Evae
            assertGolden Evae run
            assertGroupedMetrics run
            // D = 20, K = 5, stride 5: four epitomes.
            assertAssignments run 4

        testCase "mVAE reproduces its goldens and stores each component under components.{c}." <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = train folder Mvae
            assertGolden Mvae run
            assertGroupedMetrics run
            assertAssignments run 4
            let _, names = checkpointNames run
            let componentTensors c = names |> Set.filter (fun n -> n.StartsWith $"components.{c}.")
            Expect.isTrue (names |> Set.forall (fun n -> n.StartsWith "components.")) ("every model tensor is under components.")
            Expect.equal ([ 0..3 ] |> List.sumBy (fun c -> (componentTensors c).Count)) names.Count ("components 0..3 only")
            for c in [ 0..3 ] do
                for layer in [ "encoder.hidden.0"; "encoder.hidden.1"; "encoder.mu"; "encoder.logvar"; "decoder.hidden.0"; "decoder.hidden.1"; "decoder.logits" ] do
                    for part in [ "weight"; "bias" ] do
                        Expect.isTrue (names.Contains $"components.{c}.{layer}.{part}") ($"components.{c}.{layer}.{part}")
                Expect.equal ((componentTensors c).Count) 14 ($"component {c}: 7 linear layers")

        // ---------------------------------------------------------------------------------------------
        // Negative control
        testCase "the golden tolerance can fail: the plain VAE with seed 12 lands outside it" <| fun () ->
            use folder = new TempFolder("vae-variant-test-")
            let run = trainWith folder "seed12" 12 []
            let row = run.Metrics[1]
            let golden = Plain.Golden
            let outside =
                [ "train_bound", row.TrainBound, golden.TrainBound
                  "test_bound", row.TestBound, golden.TestBound
                  "kl", row.Kl, golden.Kl ]
                |> List.filter (fun (_, actual, expected) -> not (withinTolerance actual expected))
            Expect.isNonEmpty outside ($"seed 12 matches seed 11's goldens: {row}")
    ]
