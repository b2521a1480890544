module VaeResearch.Properties.ProtocolTests

// The papers' exact protocols: the `vae train` options that follow Burda et al.'s code and the activity
// paper, each checked against what the source says, in this order:
//   1. init: Glorot-uniform weights lie in [-a, a], a = sqrt(6 / (in + out)), with mean 0 and variance a^2 / 3;
//   2. output_bias: the decoder's mean bias is logit(clip(mean training image, 0.001, 0.999)) (every decoder);
//   3. order: sequential batches are the same in every epoch (also stratified ones for a fixed assignment);
//   4. kl: the ELBO with a Monte-Carlo KL agrees with the analytic-KL ELBO in expectation;
//   5. schedule burda_rounded: the eight rounded rates and the 3^i-epoch stage boundaries;
//   6. optimizer burda_adam: the first two steps against their closed form, and a bit-identical restart;
//   7. warmup epoch: beta = min(1, e / warmup_epochs), 0 throughout the first epoch, constant within each;
//   8. objective vae: the mean over the k samples of log w, computed here independently in double;
//   9. posterior_scale log_std: the posterior's log-variance is twice the scale head (every model);
//  10. defaults: config.json's old keys and values are unchanged, and a training run with every new option
//      resumes bit-identically.
// Statistical checks compare means of many independent draws against SigmaBound standard errors.

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open Expecto
open VaeResearch
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Models
open VaeResearch.Training
open VaeResearch.TestSupport

// ---------------------------------------------------------------------------------------------
// Tolerances

/// Means are compared to within this many standard errors: a correct implementation fails one two-sided
/// check with probability P(|Z| > 6) = 1.97e-9; the file has fewer than 20 such checks (< 4e-8 in all).
let SigmaBound = 6.0

/// Float32 results against double oracles, relative to the quantity's scale (~16 float32 ulps).
let FloatRelTol = 1e-6

// ---------------------------------------------------------------------------------------------
// Helpers

/// A small VAE on `input` pixels with `latent` units and one hidden layer of 7 (softplus), evaluation mode.
let private smallVae (input: int) (latent: int) (decoder: DecoderKind) (init: WeightInit) (seed: uint64) =
    let vae = Vae(native, input, latent, [| 7 |], Activation.Softplus, decoder, false, 0.0f, Rng(seed, 1UL), init)
    vae.Eval()
    vae

/// `rows` copies of one random binary image of `input` pixels, [rows, input].
let private repeatedImage (input: int) (rows: int) (seed: uint64) =
    let rng = Rng(seed, 2UL)
    let image = Array.init input (fun _ -> if rng.NextDouble() < 0.5 then 1.0f else 0.0f)
    Tensor.FromArray(Array.init (rows * input) (fun i -> image[i % input]), rows, input)

/// Mean and standard error of the mean.
let private meanAndError (values: float[]) =
    let n = float values.Length
    let mean = Array.average values
    let var = (values |> Array.sumBy (fun v -> (v - mean) ** 2.0)) / (n - 1.0)
    mean, sqrt (var / n)

let private logit (p: float) = log (p / (1.0 - p))

// ---------------------------------------------------------------------------------------------
// Tests

let tests =
    testList "Protocol" [
        testList "init" [
            testCase "Glorot-uniform: values within +-sqrt(6 / (in + out)), mean 0 and variance 2 / (in + out)" <| fun () ->
                let fanOut, fanIn = 300, 500
                let w = Init.XavierUniform(fanOut, fanIn, Rng(11UL)) |> Array.map float
                let a = sqrt (6.0 / float (fanIn + fanOut))
                let n = float w.Length
                inRange (-a) a (Array.min w) "smallest weight"
                inRange (-a) a (Array.max w) "largest weight"
                // The extremes of 150,000 uniform draws lie within a * 1e-3 of +-a except with probability ~2 exp(-75).
                Expect.isLessThan (Array.min w) (-0.999 * a) "the draws reach down to -a"
                Expect.isGreaterThan (Array.max w) (0.999 * a) "the draws reach up to a"
                // E[w] = 0 with sd a / sqrt 3; E[w^2] = a^2 / 3 with sd sqrt(E[w^4] - E[w^2]^2) = sqrt(4 / 45) a^2.
                within (SigmaBound * a / sqrt (3.0 * n)) (Array.average w) 0.0 "mean"
                within (SigmaBound * sqrt (4.0 / 45.0) * a * a / sqrt n) (w |> Array.averageBy (fun v -> v * v))
                    (2.0 / float (fanIn + fanOut)) "variance"

            testCase "negative control: Glorot-normal weights of the same variance exceed the uniform bound" <| fun () ->
                let w = Init.XavierNormal(300, 500, Rng(11UL))
                let a = sqrt (6.0 / 800.0)
                // P(|Z| > sqrt 3) = 0.083, so about 12,500 of the 150,000 normal draws lie outside [-a, a].
                Expect.isGreaterThan (w |> Array.filter (fun v -> abs (float v) > a) |> Array.length) 10000 "normal draws beyond a"

            testCase "init uniform reaches every Linear layer of the model the factory builds" <| fun () ->
                let config = TrainConfig(Latent = 3, Hidden = [| 9; 5 |], Init = WeightInit.Uniform)
                let model = ModelFactory.Build(config, 12, Rng(3UL))
                for name, p in model.NamedParameters() do
                    if name.EndsWith ".weight" then
                        let fanOut, fanIn = p.Shape[0], p.Shape[1]
                        let a = float32 (sqrt (6.0 / float (fanIn + fanOut)))
                        for v in p.Data.ToArray() do inRange -a a v name
        ]

        testList "output_bias" [
            testCase "data_mean sets the decoder bias to logit(clip(mean training image, 0.001, 0.999)) for every model" <| fun () ->
                let count, dim = 40, 6
                let rng = Rng(5UL)
                // Pixel 0 always 0 and pixel 1 always 1 (both clipped); the others random grey levels.
                let images =
                    Array.init (count * dim) (fun i ->
                        match i % dim with
                        | 0 -> 0.0f
                        | 1 -> 1.0f
                        | _ -> float32 (rng.NextDouble()))
                let train = Dataset("toy", SplitKind.Train, images, Array.zeroCreate count, 2, 3, 1)
                let expected =
                    Array.init dim (fun j ->
                        let mean = (Seq.init count (fun i -> float images[i * dim + j]) |> Seq.sum) / float count
                        logit (Math.Clamp(mean, 0.001, 0.999)))
                let check (label: string) (config: TrainConfig) (decoders: GenerativeModel<Tensor> -> Decoder<Tensor> list) =
                    let model = ModelFactory.Build(config, dim, Rng(1UL))
                    ModelFactory.InitializeOutputBias(model, config, train)
                    for d in decoders model do
                        let bias = d.MeanBias.Data.ToArray() |> Array.map float
                        for j in 0 .. dim - 1 do
                            within (FloatRelTol * (1.0 + abs expected[j])) bias[j] expected[j] $"{label} bias[{j}]"
                let config (decoder: DecoderKind) (model: ModelKind) (size: int option) =
                    TrainConfig(Latent = 4, Hidden = [| 20 |], OutputBias = OutputBias.DataMean, Decoder = decoder, Model = model,
                                EpitomeSize = Option.toNullable size)
                check "vae" (config DecoderKind.Bernoulli ModelKind.Vae None) (fun m -> [ (m :?> Vae<Tensor>).Decoder ])
                check "gaussian" (config DecoderKind.Gaussian ModelKind.Vae None) (fun m -> [ (m :?> Vae<Tensor>).Decoder ])
                check "evae" (config DecoderKind.Bernoulli ModelKind.Evae (Some 2)) (fun m -> [ (m :?> EpitomicVae<Tensor>).Network.Decoder ])
                check "mvae" (config DecoderKind.Bernoulli ModelKind.Mvae (Some 2))
                    (fun m -> [ for c in (m :?> MixtureVae<Tensor>).Components -> c.Decoder ])
                within 1e-6 expected[0] (logit 0.001) "an all-black pixel is clipped to 0.001"

            testCase "zero (the default) leaves every bias at 0" <| fun () ->
                let config = TrainConfig(Latent = 2, Hidden = [| 3 |])
                let model = ModelFactory.Build(config, 4, Rng(1UL))
                let train = Dataset("toy", SplitKind.Train, Array.create 8 0.5f, [| 0; 0 |], 2, 2, 1)
                ModelFactory.InitializeOutputBias(model, config, train)
                Expect.allEqual ((model :?> Vae<Tensor>).Decoder.MeanBias.Data.ToArray()) 0.0f "bias"
        ]

        testList "order" [
            testCase "sequential: the identity order in every epoch, whatever the seed" <| fun () ->
                let identity = Array.init 57 id
                for seed in [ 0UL; 9UL ] do
                    for epoch in 0 .. 4 do
                        Expect.sequenceEqual (Batches.Order(BatchOrder.Sequential, seed, epoch, 57)) identity $"seed {seed}, epoch {epoch}"

            testCase "negative control: shuffled orders differ between epochs" <| fun () ->
                Expect.notEqual (Batches.Order(BatchOrder.Shuffled, 1UL, 0, 57)) (Batches.Order(BatchOrder.Shuffled, 1UL, 1, 57)) "epochs 0 and 1"

            testCase "sequential stratified batches: the same for a fixed assignment, members in data-set order" <| fun () ->
                let groups = Array.init 50 (fun i -> (i * 7) % 3)
                let first = Batches.Stratified(groups, 8, 1UL, 0, BatchOrder.Sequential)
                for epoch in 1 .. 3 do
                    Expect.sequenceEqual (Batches.Stratified(groups, 8, 2UL, epoch, BatchOrder.Sequential)) first $"epoch {epoch}"
                Expect.sequenceEqual (Array.sort first) (Array.init 50 id) "a permutation"
                for g in 0 .. 2 do
                    let members = first |> Array.filter (fun i -> groups[i] = g)
                    Expect.sequenceEqual members (Array.sort members) $"group {g} in data-set order"
        ]

        testList "kl" [
            testCase "E[ELBO with Monte-Carlo KL] = E[ELBO with analytic KL] (and their gradients w.r.t. the encoder means)" <| fun () ->
                let input, latent, rows = 6, 3, 20000
                let vae = smallVae input latent DecoderKind.Bernoulli WeightInit.Normal 4UL
                let x = repeatedImage input rows 4UL
                let values (kl: KlEstimator) (seed: uint64) =
                    TrainingBound(1, TrainObjective.Iwae, kl).Of(vae, x, Rng(seed), 1.0f).Data.ToArray() |> Array.map float
                let mcMean, mcError = meanAndError (values KlEstimator.MonteCarlo 21UL)
                let anMean, anError = meanAndError (values KlEstimator.Analytic 22UL)
                within (SigmaBound * sqrt (mcError * mcError + anError * anError)) mcMean anMean "E[MC ELBO] - E[analytic ELBO]"
                // Negative control: the MC estimator really is noisier (its per-draw spread includes the KL's).
                Expect.isGreaterThan mcError anError "the Monte-Carlo KL adds variance"

            testCase "at k = 1 the Monte-Carlo-KL ELBO is the bound L_1 on the same noise, bit for bit" <| fun () ->
                let vae = smallVae 5 2 DecoderKind.Bernoulli WeightInit.Normal 6UL
                let x = repeatedImage 5 9 6UL
                let mc = TrainingBound(1, TrainObjective.Iwae, KlEstimator.MonteCarlo).Of(vae, x, Rng(3UL), 0.7f).Data.ToArray()
                let l1 = Bounds.ImportanceWeighted(vae, x, 1, Rng(3UL), 0.7f).Data.ToArray()
                Expect.sequenceEqual mc l1 "MC ELBO = L_1"
        ]

        testList "schedule" [
            testCase "burda_rounded: the eight rates of Burda et al.'s code and the 3^i-epoch stages" <| fun () ->
                let rates = [| 1e-3; 7.2e-4; 5.2e-4; 3.7e-4; 2.7e-4; 1.9e-4; 1.4e-4; 1e-4 |]
                // Stage i begins at epoch (3^i - 1) / 2 (0-based): 0, 1, 4, 13, 40, 121, 364, 1093; 3280 epochs in all.
                let starts = Array.init 8 (fun i -> (pown 3 i - 1) / 2)
                Expect.sequenceEqual starts [| 0; 1; 4; 13; 40; 121; 364; 1093 |] "stage starts"
                for i in 0 .. 7 do
                    let stop = if i = 7 then Schedules.BurdaEpochs else starts[i + 1]
                    for epoch in [ starts[i]; (starts[i] + stop - 1) / 2; stop - 1 ] do
                        within (1e-12 * rates[i]) (Schedules.LearningRate(ScheduleKind.BurdaRounded, 1e-3, epoch)) rates[i] $"epoch {epoch}"
                        within (1e-12 * rates[i]) (Schedules.LearningRate(ScheduleKind.BurdaRounded, 2e-3, epoch)) (2.0 * rates[i]) $"base 2e-3, epoch {epoch}"
                        Expect.equal (Schedules.BurdaStage epoch) i $"stage of epoch {epoch}"
                within 1e-18 (Schedules.LearningRate(ScheduleKind.BurdaRounded, 1e-3, 5000)) 1e-4 "past 3280 the last rate stays"
                // Negative control: the unrounded schedule differs (7.197e-4 at stage 1).
                Expect.isGreaterThan (abs (Schedules.LearningRate(ScheduleKind.Burda, 1e-3, 1) - 7.2e-4)) 1e-7 "burda is not rounded"
        ]

        testList "optimizer" [
            testCase "burda_adam: the first two steps in closed form (v from 1, eps on the raw sqrt(v), moments of the previous step)" <| fun () ->
                let size = 37 // four SIMD blocks and a scalar tail
                let rng = Rng(8UL)
                let draw () = Array.init size (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0))
                let p0, g1, g2 = draw (), draw (), draw ()
                let lr, b1, b2, eps = 1e-3, 0.99, 0.999, 1e-4
                let p = Tensor.Parameter(Array.copy p0, size)
                let adam = Adam([| p |], float32 lr, float32 b1, float32 b2, float32 eps, OptimizerKind.BurdaAdam)
                let step (g: float32[]) =
                    g.AsSpan().CopyTo(adam.Gradients)
                    adam.Step()
                step g1
                Expect.sequenceEqual (p.Data.ToArray()) p0 "step 1 moves with m_0 = 0: no change"
                step g2
                for i in 0 .. size - 1 do
                    let m1 = (1.0 - b1) * float g1[i]
                    let v1 = b2 + (1.0 - b2) * float g1[i] * float g1[i]
                    let alpha2 = lr * sqrt (1.0 - b2 ** 2.0) / (1.0 - b1 ** 2.0)
                    let expected = float p0[i] - alpha2 * m1 / (sqrt v1 + eps)
                    within (FloatRelTol * (1.0 + abs expected)) (float p.Data[i]) expected $"p[{i}] after step 2"
                let state = adam.StateDict() |> Seq.map (fun t -> t.Name, t.Data) |> Map.ofSeq
                for i in 0 .. size - 1 do
                    let m2 = b1 * (1.0 - b1) * float g1[i] + (1.0 - b1) * float g2[i]
                    let v2 = b2 * (b2 + (1.0 - b2) * float g1[i] * float g1[i]) + (1.0 - b2) * float g2[i] * float g2[i]
                    within (FloatRelTol * (1.0 + abs m2)) (float (state["optimizer.exp_avg"].[i])) m2 $"m[{i}]"
                    within (FloatRelTol * (1.0 + abs v2)) (float (state["optimizer.exp_avg_sq"].[i])) v2 $"v[{i}]"

            testCase "burda_adam: restored from its state it continues bit-identically" <| fun () ->
                use folder = new TempFolder("protocol-adam")
                let rng = Rng(9UL)
                let draw () = Array.init 21 (fun _ -> float32 (rng.NextDouble() - 0.5))
                let p0, grads = draw (), Array.init 4 (fun _ -> draw ())
                let run (steps: int) (restartAt: int option) =
                    let p = Tensor.Parameter(Array.copy p0, 21)
                    let mutable adam = Adam([| p |], 1e-2f, 0.99f, 0.999f, 1e-4f, OptimizerKind.BurdaAdam)
                    for s in 0 .. steps - 1 do
                        if restartAt = Some s then
                            let path = folder.Sub "state.safetensors"
                            Safetensors.Save(path, adam.StateDict())
                            let again = Adam([| p |], 1e-2f, 0.99f, 0.999f, 1e-4f, OptimizerKind.BurdaAdam)
                            again.LoadStateDict(Safetensors.Load path, adam.StepCount)
                            adam <- again
                        grads[s].AsSpan().CopyTo(adam.Gradients)
                        adam.Step()
                    p.Data.ToArray()
                Expect.sequenceEqual (run 4 (Some 2)) (run 4 None) "restart after step 2"
        ]

        testList "warmup" [
            testCase "epoch: beta = min(1, e / warmup_epochs), 0 throughout epoch 1 and constant within each epoch" <| fun () ->
                let steps = 7
                for warmup in 1 .. 4 do
                    for epoch in 0 .. warmup + 2 do
                        let expected = min 1.0 (float epoch / float warmup)
                        for s in 0 .. steps - 1 do
                            let step = int64 (epoch * steps + s)
                            let beta = Schedules.WarmupBeta(WarmupKind.Epoch, warmup, steps, step, epoch)
                            Expect.equal beta expected $"warm-up {warmup}, epoch {epoch + 1}, step {s}"
                Expect.equal (Schedules.WarmupBeta(WarmupKind.Epoch, 0, steps, 0L, 0)) 1.0 "no warm-up"
                // Negative control: the per-step ramp is not constant within an epoch.
                Expect.notEqual (Schedules.WarmupBeta(WarmupKind.Step, 2, steps, 1L, 0)) (Schedules.WarmupBeta(WarmupKind.Step, 2, steps, 5L, 0)) "step ramp"
        ]

        testList "objective" [
            testCase "vae: the mean over the k samples of log w, computed independently in double" <| fun () ->
                let input, latent, rows, k = 6, 3, 5, 4
                let vae = smallVae input latent DecoderKind.Bernoulli WeightInit.Normal 12UL
                let x = repeatedImage input rows 12UL
                let beta = 0.8f
                let bound = TrainingBound(k, TrainObjective.Vae, KlEstimator.MonteCarlo).Of(vae, x, Rng(30UL), beta).Data.ToArray()
                // The oracle replays the same noise (Bounds.Sample draws eps first) and writes log w out term by term:
                // log p(x|z) + beta (log N(z; 0, I) - log N(z; mu, exp(logvar))).
                let q = vae.Encoder.Forward(x)
                let struct (z, eps) = Bounds.Sample(native, q, k, Rng(30UL))
                let logPx = vae.Decoder.LogLikelihood(z, x).Data.ToArray()
                let mu, logVar, zs = q.Mu.Data.ToArray(), q.LogVar.Data.ToArray(), z.Data.ToArray()
                ignore eps
                let logW i n =
                    let mutable prior, posterior = 0.0, 0.0
                    for d in 0 .. latent - 1 do
                        let zv = float zs[(i * rows + n) * latent + d]
                        let lv = float logVar[n * latent + d]
                        prior <- prior - 0.5 * zv * zv - 0.5 * log (2.0 * Math.PI)
                        posterior <- posterior - 0.5 * (zv - float mu[n * latent + d]) ** 2.0 / exp lv - 0.5 * lv - 0.5 * log (2.0 * Math.PI)
                    float logPx[i * rows + n] + float beta * (prior - posterior)
                for n in 0 .. rows - 1 do
                    let expected = (Seq.init k (fun i -> logW i n) |> Seq.sum) / float k
                    within (1e-5 * (1.0 + abs expected)) (float bound[n]) expected $"example {n}"
                // L_k >= the mean of log w on the same draws (Jensen), strictly for k > 1 with unequal weights.
                let iwae = TrainingBound(k, TrainObjective.Iwae, KlEstimator.MonteCarlo).Of(vae, x, Rng(30UL), beta).Data.ToArray()
                for n in 0 .. rows - 1 do Expect.isGreaterThan iwae[n] bound[n] $"L_k > mean log w, example {n}"

            testCase "at k = 1 the vae and iwae objectives are the same ELBO, bit for bit" <| fun () ->
                let vae = smallVae 5 2 DecoderKind.Bernoulli WeightInit.Normal 13UL
                let x = repeatedImage 5 6 13UL
                for kl in [ KlEstimator.Analytic; KlEstimator.MonteCarlo ] do
                    let a = TrainingBound(1, TrainObjective.Vae, kl).Of(vae, x, Rng(2UL), 1.0f).Data.ToArray()
                    let b = TrainingBound(1, TrainObjective.Iwae, kl).Of(vae, x, Rng(2UL), 1.0f).Data.ToArray()
                    Expect.sequenceEqual a b $"{kl}"
                let analytic = TrainingBound(1).Of(vae, x, Rng(2UL), 1.0f).Data.ToArray()
                Expect.sequenceEqual analytic (Bounds.Elbo(vae, x, Rng(2UL)).Data.ToArray()) "the default is today's analytic ELBO"
        ]

        testList "posterior_scale" [
            testCase "log_std, in every model the factory builds: the same weights give twice the head as the log-variance, and the same means, bit for bit" <| fun () ->
                let x = repeatedImage 8 3 5UL
                for model, size in [ ModelKind.Vae, Nullable(); ModelKind.Evae, Nullable 2; ModelKind.Mvae, Nullable 2 ] do
                    let posterior scale =
                        let config = TrainConfig(Model = model, Latent = 4, Hidden = [| 12 |], EpitomeSize = size, PosteriorScale = scale)
                        let m = ModelFactory.Build(config, 8, Rng(9UL))
                        m.Eval()
                        let q = m.Encode(x, ReadOnlySpan(Array.zeroCreate<int> 3))
                        q.Mu.Data.ToArray(), q.LogVar.Data.ToArray()
                    let mu, head = posterior PosteriorScale.LogVariance
                    let stdMu, stdLogVar = posterior PosteriorScale.LogStd
                    Expect.sequenceEqual stdMu mu $"{model}: means"
                    Expect.isTrue (head |> Array.exists (fun v -> v <> 0.0f)) $"{model}: the head is not zero, so the factor shows"
                    Expect.sequenceEqual stdLogVar (Array.map (fun v -> 2.0f * v) head) $"{model}: log-variance = 2 * head"
        ]

        testList "defaults" [
            testCase "a saved config.json reads with every new key at today's behaviour, and its old keys write back unchanged" <| fun () ->
                let path = Path.Combine(__SOURCE_DIRECTORY__, "../../paper-results/runs/vae-d50/config.json")
                let config = RunFolder.ParseConfig path
                Expect.equal config.Init WeightInit.Normal "init"
                Expect.equal config.OutputBias OutputBias.Zero "output_bias"
                Expect.equal config.Order BatchOrder.Shuffled "order"
                Expect.equal config.Warmup WarmupKind.Step "warmup"
                Expect.equal config.Kl KlEstimator.Analytic "kl"
                Expect.equal config.PosteriorScale PosteriorScale.LogVariance "posterior_scale"
                Expect.equal config.Objective TrainObjective.Iwae "objective"
                Expect.equal config.Optimizer OptimizerKind.Adam "optimizer"
                let saved = (nonNull (JsonNode.Parse(File.ReadAllText path))).AsObject()
                saved.Remove "threads" |> ignore
                saved.Remove "versions" |> ignore
                let written = (nonNull (JsonSerializer.SerializeToNode(config, RunFolder.Json))).AsObject()
                // Keys added since that run was saved (these options and any later ones) are left out.
                for key in [ for kv in written -> kv.Key ] do
                    if not (saved.ContainsKey key) then written.Remove key |> ignore
                Expect.equal (written.ToJsonString()) (saved.ToJsonString()) "the old keys, their order and values"
                let defaults = (nonNull (JsonSerializer.SerializeToNode(TrainConfig(), RunFolder.Json))).AsObject()
                let value (key: string) = (nonNull defaults[key]).GetValue<string>()
                Expect.sequenceEqual (List.map value [ "init"; "output_bias"; "order"; "warmup"; "kl"; "posterior_scale"; "objective"; "optimizer" ])
                    [ "normal"; "zero"; "shuffled"; "step"; "analytic"; "log_variance"; "iwae"; "adam" ] "the new keys' default values"

            testCase "a bad enum value is reported by its configuration key" <| fun () ->
                let e = throws<ConfigException> (fun () -> TrainConfig(Init = enum<WeightInit> 7).Validate() |> ignore)
                Expect.equal e.Key "init" "key"
                let e = throws<ConfigException> (fun () -> TrainConfig(Optimizer = enum<OptimizerKind> 5).Validate() |> ignore)
                Expect.equal e.Key "optimizer" "key"

            testCase "a run with every new option resumes bit-identically, and its beta follows the per-epoch warm-up" <| fun () ->
                use folder = new TempFolder("protocol-resume")
                let config epochs =
                    TrainConfig(Dataset = "synthetic", Latent = 3, Hidden = [| 16 |], Batch = 50, Epochs = epochs, TrainSubset = Nullable 300,
                                TestSubset = Nullable 100, Init = WeightInit.Uniform, OutputBias = OutputBias.DataMean,
                                Order = BatchOrder.Sequential, Schedule = ScheduleKind.BurdaRounded, Warmup = WarmupKind.Epoch,
                                WarmupEpochs = 2, Kl = KlEstimator.MonteCarlo, PosteriorScale = PosteriorScale.LogStd, Objective = TrainObjective.Vae, Samples = 2,
                                Optimizer = OptimizerKind.BurdaAdam, AdamBeta1 = 0.99, Seed = 3UL)
                let data = Trainer.LoadData(config 3, null, null)
                let train (epochs: int) (name: string) (resume: bool) =
                    let run = if resume then RunFolder.Open(folder.Sub name) else RunFolder.Create(folder.Sub name)
                    Trainer.Run(config epochs, run, resume, data, SilentProgress.Instance)
                let straight = train 3 "a" false
                train 2 "b" false |> ignore
                let resumed = train 3 "b" true
                let weights (r: TrainingResult) = r.Model.StateDict() |> Seq.collect (fun t -> t.Data) |> Array.ofSeq
                Expect.sequenceEqual (weights resumed) (weights straight) "final weights"
                let rows (r: TrainingResult) = r.Metrics |> Seq.map (fun m -> m.Epoch, m.Lr, m.Beta, m.TrainBound, m.TestBound) |> List.ofSeq
                Expect.sequenceEqual (rows resumed) (rows straight) "metrics"
                Expect.sequenceEqual (straight.Metrics |> Seq.map (fun m -> m.Beta) |> List.ofSeq) [ 0.0; 0.5; 1.0 ] "beta per epoch"
                withinEach 1e-15 (straight.Metrics |> Seq.map (fun m -> m.Lr) |> Array.ofSeq) [| 1e-3; 7.2e-4; 7.2e-4 |] "rounded rates"
        ]
    ]
