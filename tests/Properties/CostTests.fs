module VaeResearch.Properties.CostTests

// The compute estimate of `vae sweep run --dry-run` (src/Core.CSharp/Experiments/RunCost.cs) against the engine:
//   1. VaeShape's closed-form layers are the weight matrices the models are built with;
//   2. RunCost counts exactly the multiply-adds the engine's GEMMs perform, for every model and the options that change
//      the passes (k, the Gaussian decoder, the Monte-Carlo assignment, a training-image activity population, initial
//      activity, batch norm), over a whole training run from its start and from a checkpoint, and for the final L_k under
//      every budget, with fewer samples than groups and with k split into chunks;
//   3. the final evaluation without a subset is the whole test set, whatever the run trained on.

open System
open Expecto
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Experiments
open VaeResearch.Models
open VaeResearch.Training
open VaeResearch.TestSupport

/// Small runs on the synthetic data (784 inputs) of <paramref name="epochs"/> epochs, one per way the passes differ: k, the
/// Gaussian decoder with one hidden layer and activity on 40 training images from epoch 0, the eVAE (plug-in and Monte-Carlo
/// assignment, overlapping epitomes), the mVAE (with batch norm, which changes its matched widths).
let private runs (epochs: int) =
    let spec =
        $"""name = "cost"
description = "what the engine multiplies"
[base]
dataset = "synthetic"
latent = 6
hidden = "12,10"
batch = 20
epochs = {epochs}
train_subset = 120
test_subset = 60
seed = 5
[[variants]]
k = [1, 3]
[[variants]]
decoder = "gaussian"
hidden = "14"
activity_population = "train_first"
activity_n = 40
activity_initial = true
[[variants]]
model = "evae"
epitome_size = 2
[[variants]]
model = "evae"
epitome_size = 3
epitome_stride = 1
evae_assign = "monte_carlo"
evae_assign_samples = 2
k = 2
[[variants]]
model = "mvae"
epitome_size = 2
batchnorm = [false, true]
"""
    SweepPlan.Expand(SweepSpec.Parse(spec, "cost.toml"), 1).Runs |> List.ofSeq

/// The multiply-adds of the GEMM calls <paramref name="action"/> makes on this thread, and its result.
let private counted (action: unit -> 'a) =
    let before = Gemm.MultiplyAdds
    let result = action ()
    Gemm.MultiplyAdds - before, result

let tests =
    testList "Compute estimate" [
        testCase "VaeShape's layers are the weight matrices of the built encoder and decoder" <| fun () ->
            for run in runs 3 |> List.filter (fun r -> r.Config.Model = ModelKind.Vae) do
                let name, config = run.Name, run.Config
                let model = ModelFactory.Build(config, Mnist.Pixels, Rng 1UL)
                let weights (prefix: string) =
                    model.StateDict()
                    |> Seq.filter (fun t -> t.Name.StartsWith(prefix + ".") && t.Name.EndsWith(".weight") && t.Shape.Length = 2)
                    |> Seq.sumBy (fun t -> int64 t.Data.Length)
                Expect.equal (VaeShape.Weights(VaeShape.Encoder(Mnist.Pixels, config.Latent, config.Hidden))) (weights "encoder") $"{name}: encoder"
                Expect.equal (VaeShape.Weights(VaeShape.Decoder(Mnist.Pixels, config.Latent, config.Hidden, config.Decoder))) (weights "decoder")
                    $"{name}: decoder"

        testCase "RunCost counts the multiply-adds the engine performs, for training from the start and from a checkpoint, and every final budget" <| fun () ->
            use folder = new TempFolder("cost")
            for run, first in List.zip (runs 3) (runs 1) do
                let name, config = run.Name, run.Config
                let data = Trainer.LoadData(config, null, null)
                let train (config: TrainConfig) (sub: string) (resume: bool) =
                    let folder = if resume then RunFolder.Open(folder.Sub sub) else RunFolder.Create(folder.Sub sub)
                    counted (fun () -> Trainer.Run(config, folder, resume, data, SilentProgress.Instance))
                let whole, result = train config (name + ".whole") false
                Expect.equal (float whole) (RunCost.Of(config, Nullable()).Total) $"{name}: the whole run"
                train first.Config (name + ".resumed") false |> ignore
                let rest, _ = train config (name + ".resumed") true
                Expect.equal (float rest) (RunCost.Of(config, Nullable(), completedEpochs = 1).Total) $"{name}: epochs 2-3 after a checkpoint"
                let test = Binarizer(data.Test, config.EffectiveBinarization, config.Seed).Epoch(0)
                // k = 2 leaves a group of a 3-group model without samples under `total`; k = 7000 takes two chunks per epitome.
                for budget, k, images in
                    [ for budget in [ EvaluationBudget.PerEpitome; EvaluationBudget.Total; EvaluationBudget.Ystar ] do
                          yield budget, 2, 50
                          yield budget, 4, 50
                      yield EvaluationBudget.PerEpitome, 7000, 3 ] do
                    let final, _ = counted (fun () -> Evaluation.LogLikelihoodBounds(result.Model, test, images, k, budget, Rng 2UL, null))
                    let expected = RunCost.Of(config, Nullable k, budget, Nullable images, config.Epochs)
                    Expect.equal expected.Training 0.0 $"{name}: nothing left to train"
                    Expect.equal (float final) expected.Final $"{name}: L_{k} on {images} images, budget {budget}"

        testCase "The final evaluation without a subset counts the whole test set, whatever the run trained on" <| fun () ->
            for run in runs 3 do
                let cost (images: Nullable<int>) = RunCost.Of(run.Config, Nullable 10, EvaluationBudget.PerEpitome, images).Final
                let whole = cost (Nullable SyntheticData.DefaultTestCount)
                Expect.equal (cost (Nullable())) whole $"{run.Name}: no subset is all {SyntheticData.DefaultTestCount} test images, not its test_subset of 60"
                Expect.equal (cost (Nullable 100000)) whole $"{run.Name}: a subset beyond the test set is the test set"
                Expect.isLessThan (cost (Nullable 60)) whole $"{run.Name}: 60 images cost less"
    ]
