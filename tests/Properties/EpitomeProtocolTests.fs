/// The eVAE paper's exact protocols: Algorithm 1 from the first epoch, the Monte-Carlo y*, epitome layouts that
/// do not tile D (Table 4), the equal-budget evaluations and the unbounded Gaussian log-variance (eq. 2).
module VaeResearch.Properties.EpitomeProtocolTests

open System
open System.IO
open Expecto
open FsCheck
open VaeResearch
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Models
open VaeResearch.Training
open VaeResearch.TestSupport

/// Independent scores may differ from the model's by float32 rounding; closer pairs count as ties.
let private tieTolerance = 1e-3

/// Standard errors allowed between two Monte-Carlo estimates (two-sided normal tail 5.7e-7 per comparison).
let private monteCarloSigmas = 5.0

/// Allowance, in nats, for the different biases of the per-epitome (3000 per epitome) and total (1000 per
/// epitome) estimators at k = 3000 on the small model below: both are O(1/k), measured below 0.01 here.
let private budgetBias = 0.02

/// Standard errors of the mean per-image difference allowed between the two estimators (normal tail 6e-5).
let private budgetSigmas = 4.0

let private binary (seed: uint64) (n: int) (dim: int) =
    let rng = Rng(seed, 3UL)
    let x = Tensor.Empty(n, dim)
    let values = Array.init (n * dim) (fun _ -> if rng.NextInt 2 = 1 then 1.0f else 0.0f)
    values.AsSpan().CopyTo(x.Data)
    x

/// A small eVAE, D = 8, K = s = 3 with the cover layout (three epitomes: [0, 3), [3, 6), [5, 8)).
let private smallEvae (seed: uint64) (input: int) =
    let net = Vae(native, input, 8, [| 6 |], Activation.Softplus, DecoderKind.Bernoulli, false, 0.0f, Rng(seed))
    EpitomicVae(net, EpitomeLayout.Create(8, 3, 3, EpitomeLayoutKind.Cover))

/// The plug-in score of every epitome, computed apart from the model: the masked posterior mean decoded, and the KL
/// of the epitome's units in double precision; [G][n].
let private independentPlugInScores (evae: EpitomicVae<Tensor>) (x: Tensor) =
    use _noGrad = Autograd.NoGrad()
    let n, d, layout = x.Dim 0, evae.Latent, evae.Layout
    let q = evae.Network.Encoder.Forward x
    let mu, logVar = q.Mu.ToArray(), q.LogVar.ToArray()
    [| for y in 0 .. layout.Count - 1 ->
           let inside u = u >= layout.Start y && u < layout.Start y + layout.Size
           let z = Array.init (n * d) (fun j -> if inside (j % d) then mu[j] else 0.0f)
           let logPx = evae.Network.Decoder.LogLikelihood(Tensor.FromArray(z, 1, n, d), x).ToArray()
           Array.init n (fun i ->
               let kl =
                   Seq.sum (seq { for u in 0 .. d - 1 do
                                     if inside u then
                                         let m, s = float mu[i * d + u], float logVar[i * d + u]
                                         yield 0.5 * (m * m + exp s - 1.0 - s) })
               float logPx[i] - kl) |]

let private argmaxWithTies (scores: float[][]) (i: int) =
    let best = scores |> Array.map (fun s -> s[i]) |> Array.max
    set [ for y in 0 .. scores.Length - 1 do if scores[y][i] >= best - tieTolerance then yield y ]

/// A small synthetic eVAE run (D = 8, K = 3, cover) with the given first epoch and y* estimate.
let private configWith (first: FirstEpochAssignment) (estimate: AssignmentEstimate) (samples: int) =
    TrainConfig(Model = ModelKind.Evae, Dataset = "synthetic", Latent = 8, EpitomeSize = Nullable 3, EpitomeLayout = EpitomeLayoutKind.Cover,
                EvaeFirstEpoch = first, EvaeAssign = estimate, EvaeAssignSamples = samples, Hidden = [| 8 |], Batch = 50, Epochs = 1,
                TrainSubset = Nullable 300, TestSubset = Nullable 50, Seed = 11UL)

let private config = configWith FirstEpochAssignment.Assign AssignmentEstimate.Plugin 10

let tests =
    testList "EpitomeProtocol" [
        testCase "evae_first_epoch assign: epoch 1 uses argmin C_evae under the initial parameters (Algorithm 1, step 3)" <| fun () ->
            let data = Trainer.LoadData(config, null, null)
            let model = ModelFactory.Build(config, data.Train.Dim, Rng(config.Seed, TrainStreams.Init)) :?> EpitomicVae<Tensor>
            let binarizer = Binarizer(data.Train, config.EffectiveBinarization, config.Seed)
            let assignment = Trainer.EpochAssignment(model, config, binarizer, 0)
            model.Eval()
            let n = data.Train.Count
            let x = Tensor.FromArray(binarizer.Epoch 0 |> Array.take (n * data.Train.Dim), n, data.Train.Dim)
            let scores = independentPlugInScores model x
            for i in 0 .. n - 1 do
                Expect.contains (argmaxWithTies scores i) assignment[i] $"example {i}: y* is the argmin of the cost"
            Expect.isGreaterThan (Array.distinct assignment).Length 1 "more than one epitome is chosen"
            let balanced = Trainer.EpochAssignment(model, configWith FirstEpochAssignment.Balanced AssignmentEstimate.Plugin 10, binarizer, 0)
            let counts a = Array.init model.Groups (fun y -> a |> Array.filter ((=) y) |> Array.length)
            Expect.isLessThanOrEqual (Array.max (counts balanced) - Array.min (counts balanced)) 1 "the default start stays balanced"
            // The trainer uses it: epoch 1's counts in assignments.csv are those of the argmin.
            use folder = new TempFolder("vae-protocol-")
            let run = RunFolder.Create(Path.Combine(folder.Path, "run"))
            Trainer.Run(config, run, false, data, SilentProgress.Instance) |> ignore
            let saved = RunCsv.ReadAssignments(run.AssignmentsPath) |> Seq.filter (fun r -> r.Epoch = 1) |> Seq.map (fun r -> r.Count) |> Array.ofSeq
            Expect.equal saved (counts assignment) "assignments.csv, epoch 1"

        testCase "evae_assign monte_carlo is seeded by (seed, epoch) and agrees with an independent Monte-Carlo estimate" <| fun () ->
            let mc = configWith FirstEpochAssignment.Assign AssignmentEstimate.MonteCarlo 10
            let data = Trainer.LoadData(mc, null, null)
            let model = ModelFactory.Build(mc, data.Train.Dim, Rng(mc.Seed, TrainStreams.Init))
            let binarizer = Binarizer(data.Train, mc.EffectiveBinarization, mc.Seed)
            let first = Trainer.EpochAssignment(model, mc, binarizer, 1)
            Expect.equal (Trainer.EpochAssignment(model, mc, binarizer, 1)) first "same seed and epoch: same assignment"
            Expect.notEqual (Trainer.EpochAssignment(model, configWith FirstEpochAssignment.Assign AssignmentEstimate.MonteCarlo 1, binarizer, 1)) first
                "another sample count draws differently"
            // Many draws: the model's estimate of E_q[log p(x|m_y z)] - KL against one from System.Random draws.
            let evae = smallEvae 5UL 9
            let n, d, samples = 6, 8, 4000
            let x = binary 5UL n 9
            let scores = evae.AssignmentScores(x, samples, Rng(5UL, 9UL))
            use _noGrad = Autograd.NoGrad()
            let q = evae.Network.Encoder.Forward x
            let mu, logVar = q.Mu.ToArray(), q.LogVar.ToArray()
            let random = Random 17
            let normal () = sqrt (-2.0 * log (1.0 - random.NextDouble())) * cos (2.0 * Math.PI * random.NextDouble())
            let plugIn = independentPlugInScores evae x
            for y in 0 .. evae.Groups - 1 do
                let inside u = u >= evae.Layout.Start y && u < evae.Layout.Start y + evae.Layout.Size
                let z = Array.init (samples * n * d) (fun j ->
                            let u, at = j % d, j % (n * d)
                            if inside u then float32 (float mu[at] + exp (0.5 * float logVar[at]) * normal ()) else 0.0f)
                let logPx = evae.Network.Decoder.LogLikelihood(Tensor.FromArray(z, samples, n, d), x).ToArray()
                for i in 0 .. n - 1 do
                    let values = Array.init samples (fun s -> float logPx[s * n + i])
                    let mean = Array.average values
                    let sd = sqrt ((values |> Array.sumBy (fun v -> (v - mean) ** 2.0)) / float (samples - 1))
                    // The plug-in score less its reconstruction is -KL; add the MC reconstruction to it.
                    let plugInReconstruction =
                        float (evae.Network.Decoder.LogLikelihood(
                                   Tensor.FromArray(Array.init (n * d) (fun j -> if inside (j % d) then mu[j] else 0.0f), 1, n, d), x).ToArray()[i])
                    let expected = plugIn[y][i] - plugInReconstruction + mean
                    within (monteCarloSigmas * sqrt 2.0 * sd / sqrt (float samples) + tieTolerance) (float scores.[y].[i]) expected $"epitome {y}, example {i}"

        testCase "epitome_layout cover: D = 8, K = 3 gives three epitomes of 3 contiguous units covering every unit; tile rejects it" <| fun () ->
            let layout = EpitomeLayout.Create(8, 3, 3, EpitomeLayoutKind.Cover)
            Expect.equal layout.Count 3 "floor((8 - 3) / 3) + 1 strided epitomes plus one aligned to the end"
            Expect.equal [ for y in 0 .. 2 -> layout.Start y ] [ 0; 3; 5 ] "starts"
            let masks = [ for y in 0 .. 2 -> layout.Mask y ]
            for y, m in List.indexed masks do
                let ones = [ for u in 0 .. 7 do if m[u] = 1.0f then yield u ]
                Expect.equal ones [ ones.Head .. ones.Head + 2 ] $"mask {y}: K contiguous ones"
            for u in 0 .. 7 do Expect.isTrue (masks |> List.exists (fun m -> m[u] = 1.0f)) $"unit {u} covered"
            let e = throws<ConfigException> (fun () -> EpitomeLayout.Create(8, 3, 3) |> ignore)
            Expect.equal e.Key "epitome_stride" "tile (the default) rejects it"
            let evae = TrainConfig(Model = ModelKind.Evae, Latent = 8, EpitomeSize = Nullable 3)
            Expect.equal (throws<ConfigException> (fun () -> evae.Validate() |> ignore)).Key "epitome_size" "config: tile rejects it"
            TrainConfig(Model = ModelKind.Evae, Latent = 8, EpitomeSize = Nullable 3, EpitomeLayout = EpitomeLayoutKind.Cover).Validate() |> ignore
            let mixture = ModelFactory.Build(TrainConfig(Model = ModelKind.Mvae, Latent = 8, EpitomeSize = Nullable 3, EpitomeLayout = EpitomeLayoutKind.Cover, Hidden = [| 20 |]), 9, Rng(1UL))
            Expect.equal mixture.Groups 3 "mvae uses the same layout"

        property (0x5EEDUL, 0xC0FFUL) 200 "epitome_layout cover: every unit covered, floor((D - K)/s) + 1 epitomes, one more when s does not divide D - K" <|
            fun (PositiveInt d0) (PositiveInt k0) (PositiveInt s0) ->
                let d = 1 + d0 % 40
                let k = 1 + k0 % d
                let s = 1 + s0 % k
                let layout = EpitomeLayout.Create(d, k, s, EpitomeLayoutKind.Cover)
                let covered = Array.zeroCreate<bool> d
                for y in 0 .. layout.Count - 1 do
                    for u in layout.Start y .. layout.Start y + k - 1 do covered[u] <- true
                Array.forall id covered
                && layout.Count = (d - k) / s + 1 + (if (d - k) % s = 0 then 0 else 1)
                && layout.Start(layout.Count - 1) = d - k

        testCase "budget total: k samples in all, floor(k/G) each with the remainder to the first, agreeing with per_epitome" <| fun () ->
            for k, g in [ 10, 3; 3, 3; 2, 5; 5000, 7; 1, 1 ] do
                let a = Evaluation.Allocation(k, g)
                Expect.equal (Array.sum a) k $"k = {k}, G = {g}: total"
                Expect.isLessThanOrEqual (Array.max a - Array.min a) 1 $"k = {k}, G = {g}: spread"
                Expect.equal (Evaluation.SamplesDrawn(EvaluationBudget.Total, k, g)) (int64 k) "samples drawn, total"
                Expect.equal (Evaluation.SamplesDrawn(EvaluationBudget.PerEpitome, k, g)) (int64 (k * g)) "samples drawn, per epitome"
            let evae = smallEvae 3UL 9
            let n, k = 200, 3000
            let images = (binary 3UL n 9).ToArray()
            let per = Evaluation.LogLikelihoodBounds(evae, images, n, k, Rng(3UL, 1UL))
            let total = Evaluation.LogLikelihoodBounds(evae, images, n, k, EvaluationBudget.Total, Rng(3UL, 2UL))
            // Independent draws: the per-image differences have mean (bias gap) and a standard error from their spread.
            let diff = Array.map2 (-) per total
            let mean = Array.average diff
            let se = sqrt ((diff |> Array.sumBy (fun v -> (v - mean) ** 2.0)) / float (n - 1) / float n)
            within (budgetSigmas * se + budgetBias) (Array.average total) (Array.average per) $"mean bound, total vs per_epitome (se {se})"

        testCase "budget ystar: log p(y*) + L_k(x|y*), never above the marginal estimate with the same draws" <| fun () ->
            // The marginal log sum_y p(y) exp(L_k(x|y)) has the y* term as one of its non-negative summands.
            let evae = smallEvae 4UL 9
            let n, k = 20, 50
            let x = binary 4UL n 9
            let ystar = Evaluation.LogLikelihoodBounds(evae, x.ToArray(), n, k, EvaluationBudget.Ystar, Rng(4UL, 1UL))
            use _noGrad = Autograd.NoGrad()
            let groupBounds = Array.init evae.Groups (fun y -> evae.GroupBound(x, ReadOnlySpan(Array.create n y), k, Rng(4UL, 1UL)).ToArray())
            let best = evae.Assign x
            let logPy = -log (float evae.Groups)
            for i in 0 .. n - 1 do
                let marginal = (groupBounds |> Array.fold (fun acc b -> LogSpace.Add(acc, float b[i])) Double.NegativeInfinity) + logPy
                within 1e-4 ystar[i] (float groupBounds.[best.[i]].[i] + logPy) $"example {i}: the y* term"
                Expect.isLessThanOrEqual ystar[i] (marginal + 1e-9) $"example {i}: ystar <= marginal"

        testCase "gaussian_logvar unbounded: a linear log-variance reaches values the tanh bound cannot" <| fun () ->
            let build kind = Vae(native, 9, 2, [| 4 |], Activation.Softplus, DecoderKind.Gaussian, false, 0.0f, Rng(8UL), logVariance = kind)
            let z = Tensor.FromArray([| 0.5f; -1.0f; 2.0f; 0.0f |], 2, 2)
            let logVar (kind: GaussianLogVariance) =
                let vae = build kind
                let struct (_, bias) = vae.NamedParameters() |> Seq.find (fun (struct (name, _)) -> name = "decoder.logvar.bias")
                bias.Data.Fill 5.0f
                use _noGrad = Autograd.NoGrad()
                vae.Decoder.LogVariance(z).ToArray()
            Expect.isGreaterThan (Array.min (logVar GaussianLogVariance.Unbounded)) 2.0f "unbounded: about the bias, 5"
            Expect.isLessThan (Array.max (logVar GaussianLogVariance.Bounded)) 1.0f "bounded: tanh < 1"
            let bad = TrainConfig(GaussianLogvar = GaussianLogVariance.Unbounded)
            Expect.equal (throws<ConfigException> (fun () -> bad.Validate() |> ignore)).Key "gaussian_logvar" "bernoulli rejects it"
    ]
