module VaeResearch.Properties.ModelTests

// Properties of the bounds, the models and the training settings (issue 4), in this order:
//   1. KL per unit: exactly 0 for a collapsed unit (mu = 0, logvar = 0), never negative, and equal to
//      the closed form in double;
//   2. a linear-Gaussian model (z ~ N(0, I), x | z ~ N(W z + b, sigma^2 I)), whose log p(x) =
//      log N(x; b, W W^T + sigma^2 I) is known in closed form (MathNet Cholesky, double), as the oracle:
//      with the exact posterior L_k = log p(x) for every k and every draw; with any other Gaussian q,
//      E[L_1] = E[ELBO] = log p(x) - KL(q || p(z|x)), E[L_k] <= log p(x), E[L_k] does not decrease with k,
//      and E[L_k] approaches log p(x) as fast as the importance weights' chi^2 divergence allows;
//   3. the same statistical properties (E[L_{k+1}] >= E[L_k], E[L_1] = E[ELBO]) for a nonlinear VAE;
//   4. the eVAE with K = D = s is the VAE bit for bit (bound and gradients); epitome layouts; the
//      per-example eVAE KL counts exactly K units; KL weight 0 leaves the reconstruction term; dropout
//      on z is the identity in evaluation mode;
//   5. warm-up beta and the Burda learning-rate schedule; mVAE parameter count within 5 % of the eVAE's;
//      TrainConfig.Validate names the option that is wrong.
// Statistical checks compare means of many independent draws (the central limit theorem makes each
// mean's error normal with the sample standard error) against a bound of SigmaBound standard errors.
// Every generator is seeded (FsCheck replays Seed; the engine's Rng is seeded per case), so a run
// always draws the same numbers; the failure probabilities say how often a correct implementation
// would fail a check for a fresh seed.

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.LinearAlgebra
open VaeResearch
open VaeResearch.Engine
open VaeResearch.Models
open VaeResearch.Training
open VaeResearch.TestSupport

/// FsCheck (seed, gamma) every property replays, so each run generates the same cases.
let private Seed = (20250614UL, 131071UL)

// ---------------------------------------------------------------------------------------------
// Tolerances

/// Means are compared to within this many standard errors. One-sided checks (E[L_k] <= log p(x),
/// E[L_{k+1}] >= E[L_k]) fail a correct implementation with probability P(Z > 6) = 9.9e-10, two-sided
/// ones (E[L_1] = ELBO) with P(|Z| > 6) = 1.97e-9; with about 230 such checks in this file, the chance
/// that any of them fails by bad luck for a fresh seed is below 5e-7.
let SigmaBound = 6.0

/// Independent draws of a bound per mean (each a row of one batched call). With the standard errors
/// they give, the checks resolve differences of ~0.01-0.05 nats in the cases generated here.
let Draws = 2000

/// Draws for the largest k (1000), to keep memory and time modest ([k, draws, N] tensors).
let DrawsLargeK = 500

/// The largest k of the approach check.
let LargeK = 1000

/// With the exact posterior, log w = log p(x) for every sample, so L_k = log p(x) up to float32 rounding:
/// the engine sums O(N + D) terms of size up to |log p(x|z)| + N + D with u = 6e-8 each, and W^T W is
/// diagonal only up to the float32 rounding of W (relative 6e-8). This allows |L_k - log p(x)| <=
/// ExactRelTol * (1 + |log p(x)| + N + D) (~16 u per unit of scale); the worst case seen is a fifth of it.
/// A wrong constant (log 2 pi, the 1/2 of a log-variance, a missing -log k) is >= 0.3 nats.
let ExactRelTol = 1e-6

/// Approach: for large k, log p(x) - E[L_k] = chi2 / (2 k) + O(k^-2) (delta method; chi2 = E_q[(p(z|x)/q)^2] - 1
/// is the variance of the normalized weights). The check allows ApproachFactor times the leading term
/// (the cases keep chi2 <= 3, so the O(k^-2) terms are < 1 % of it at k = 1000) plus SigmaBound standard
/// errors. In the generated cases that allowance is 0.002-0.006 nats (mostly the standard error), while
/// a bound stuck at the ELBO (no importance weighting) would miss by KL(q || p(z|x)) = 0.04-0.3 nats.
let ApproachFactor = 2.0

/// KL per unit and its gradients against the double closed form, relative to the largest term
/// mu^2 + exp(logvar) + |logvar| + 1: the engine evaluates the KL in double and rounds once to float32
/// (u = 6e-8), and a gradient is one float32 product of rounded factors; 1e-6 is ~16 u. The float32
/// formula the engine used before was off by 6e-8 absolute at mu = logvar = 0, which the exact-zero
/// checks (not this tolerance) catch.
let KlRelTol = 1e-6

/// mVAE and eVAE parameter counts agree within this relative gap (issue 4, eVAE paper section 5.2).
let ParameterTolerance = ModelFactory.MixtureParameterTolerance

// ---------------------------------------------------------------------------------------------
// Helpers

/// The exception thrown by f, exactly of type 'e.

/// The IEEE bit patterns of float32 values (bit-for-bit comparison, NaN-safe).
let private bits (values: float32[]) = values |> Array.map BitConverter.SingleToInt32Bits

/// Mean and standard error (sample standard deviation / sqrt n) of float32 draws, in double.
let private meanSe (draws: float32[]) =
    let xs = Array.map float draws
    let n = float xs.Length
    let mean = Array.average xs
    let var = (xs |> Array.sumBy (fun v -> (v - mean) * (v - mean))) / (n - 1.0)
    mean, sqrt (var / n)

/// An [n, d] tensor of uniform [0, 1) values from a seeded stream.
let private uniform (seed: uint64) (stream: uint64) (n: int) (d: int) =
    let t = Tensor.Empty(n, d)
    Rng(seed, stream).FillUniform(t.Data)
    t

/// An [n, d] tensor of binary pixels (Bernoulli(1/2)) from a seeded stream.
let private binary (seed: uint64) (stream: uint64) (n: int) (d: int) =
    let t = Tensor.Empty(n, d)
    Rng(seed, stream).FillBernoulli(t.Data, 0.5f)
    t

/// The vector x repeated `copies` times as rows, [copies, N]: each row gets its own independent draw.
let private repeatRow (x: float32[]) (copies: int) =
    Tensor.FromArray(Array.init (copies * x.Length) (fun i -> x[i % x.Length]), copies, x.Length)

// ---------------------------------------------------------------------------------------------
// 1. KL per unit

/// KL(N(mu, e^lv) || N(0, 1)) per unit in double: the oracle.
let private klReference (mu: float) (lv: float) = 0.5 * (mu * mu + exp lv - 1.0 - lv)

/// Generated (mu, logvar) pairs: broad values, and the near-collapsed region where float32 rounding of
/// exp(logvar) - logvar - 1 is larger than the true value (|logvar| below ~3.5e-4).
let private genMuLogVar =
    let broad = Gen.choose (-1_000_000, 1_000_000) |> Gen.map (fun i -> float32 i * 1e-5f)
    let tiny = Gen.choose (-1_000_000, 1_000_000) |> Gen.map (fun i -> float32 i * 4e-10f)
    let entry = Gen.frequency [ 1, broad; 2, tiny; 1, Gen.constant 0.0f ]
    gen {
        let! n = Gen.choose (1, 40)
        let! mu = Gen.arrayOfLength n entry
        let! lv = Gen.arrayOfLength n entry
        return mu, lv
    }

// ---------------------------------------------------------------------------------------------
// 2. The linear-Gaussian model: log p(x) in closed form

/// A linear-Gaussian model with orthogonal columns of W (so the exact posterior is diagonal), a data
/// point drawn from it, and a perturbed posterior q: mu = mu* + Delta sd*, logvar = logvar* + Gamma.
type LinearGaussianCase =
    { N: int
      D: int
      Sigma: float
      Scales: float[]
      Delta: float[]
      Gamma: float[]
      Seed: int }

let private genLinearGaussian =
    gen {
        let! n = Gen.choose (2, 6)
        let! d = Gen.choose (1, min 3 n)
        let! sigma = Gen.choose (30, 150) |> Gen.map (fun i -> float i / 100.0)
        let! scales = Gen.arrayOfLength d (Gen.choose (50, 300) |> Gen.map (fun i -> float i / 100.0))
        // Gamma >= -0.2 keeps q's variance above 0.82 of the posterior's (the weights' chi^2 stays finite and small).
        let! delta = Gen.arrayOfLength d (Gen.choose (-50, 50) |> Gen.map (fun i -> float i / 100.0))
        let! gamma = Gen.arrayOfLength d (Gen.choose (-20, 50) |> Gen.map (fun i -> float i / 100.0))
        let! seed = Gen.choose (0, 1_000_000)
        return { N = n; D = d; Sigma = sigma; Scales = scales; Delta = delta; Gamma = gamma; Seed = seed }
    }

/// The model in float32 (as the engine sees it) and the oracle's quantities in double.
type private LinearGaussian =
    { W: float32[] // [N, D], nn.Linear layout
      B: float32[] // [N]
      Sd: float32 // sigma
      X: float32[] // [N]
      LogPx: float // log N(x; b, W W^T + sigma^2 I)
      PostMu: float[] // exact posterior mean
      PostPrecision: Matrix<float> } // I + W^T W / sigma^2

let private buildLinearGaussian (c: LinearGaussianCase) =
    let random = Random(c.Seed)
    let normal () = MathNet.Numerics.Distributions.Normal.Sample(random, 0.0, 1.0)
    // Orthonormal columns by Gram-Schmidt on a Gaussian matrix, then scaled: W = U diag(scales).
    let u = Array.init c.D (fun _ -> Array.init c.N (fun _ -> normal ()))
    for j in 0 .. c.D - 1 do
        for i in 0 .. j - 1 do
            let p = Array.fold2 (fun acc a b -> acc + a * b) 0.0 u[j] u[i]
            u[j] <- Array.map2 (fun a b -> a - p * b) u[j] u[i]
        let norm = sqrt (Array.sumBy (fun a -> a * a) u[j])
        u[j] <- Array.map (fun a -> a / norm) u[j]
    let w = Array.init (c.N * c.D) (fun idx -> float32 (u[idx % c.D][idx / c.D] * c.Scales[idx % c.D]))
    let b = Array.init c.N (fun _ -> float32 (0.5 * normal ()))
    let sigma = float32 c.Sigma
    // The oracle works with the float32 values exactly (float32 -> double is exact).
    let wm = Matrix<float>.Build.Dense(c.N, c.D, fun i j -> float w[i * c.D + j])
    let bv = Vector<float>.Build.Dense(c.N, fun i -> float b[i])
    let s2 = float sigma * float sigma
    let z0 = Vector<float>.Build.Dense(c.D, fun _ -> normal ())
    let xd = wm * z0 + bv + Vector<float>.Build.Dense(c.N, fun _ -> float sigma * normal ())
    let x = xd.ToArray() |> Array.map float32
    let xv = Vector<float>.Build.Dense(c.N, fun i -> float x[i])
    // log N(x; b, C) with C = W W^T + sigma^2 I through its Cholesky factor L: log det C = 2 sum log L_ii.
    let cov = wm * wm.Transpose() + Matrix<float>.Build.DenseIdentity(c.N) * s2
    let chol = cov.Cholesky()
    let r = xv - bv
    let logDet = 2.0 * (chol.Factor.Diagonal() |> Seq.sumBy log)
    let logPx = -0.5 * (float c.N * log (2.0 * Math.PI) + logDet + r * chol.Solve r)
    let precision = Matrix<float>.Build.DenseIdentity(c.D) + wm.Transpose() * wm / s2
    let postMu = precision.Solve(wm.Transpose() * r / s2).ToArray()
    { W = w; B = b; Sd = sigma; X = x; LogPx = logPx; PostMu = postMu; PostPrecision = precision }

/// log p(x|z) of the model from engine ops: z [k, n, D] -> [k, n], for data x [n, N].
let private linearGaussianLogLikelihood (m: LinearGaussian) (x: Tensor) =
    let n, d = m.B.Length, m.W.Length / m.B.Length
    let w = Tensor.FromArray(m.W, n, d)
    let b = Tensor.FromArray(m.B, n)
    let s2 = m.Sd * m.Sd
    let constant = -0.5f * float32 n * MathF.Log(2.0f * MathF.PI * s2)
    Func<Tensor, Tensor>(fun z -> ((Tensor.Linear(z, w, b) - x).Square().Sum(-1) * (-0.5f / s2)) + constant)

/// The diagonal Gaussian q used by the checks, in float32: mean and log-variance [D].
let private posteriorFor (c: LinearGaussianCase) (m: LinearGaussian) (exact: bool) =
    let postVar = m.PostPrecision.Inverse().Diagonal().ToArray()
    let mu = Array.init c.D (fun j -> if exact then m.PostMu[j] else m.PostMu[j] + c.Delta[j] * sqrt postVar[j])
    let lv = Array.init c.D (fun j -> if exact then log postVar[j] else log postVar[j] + c.Gamma[j])
    Array.map float32 mu, Array.map float32 lv

/// KL(q || p(z|x)) in double for the diagonal q (mean mu, log-variance lv) and the exact Gaussian
/// posterior N(m, P^-1): 1/2 (tr(P Q) + (mu - m)^T P (mu - m) - D - log det P - sum lv).
let private klToPosterior (m: LinearGaussian) (mu: float32[]) (lv: float32[]) =
    let d = mu.Length
    let p = m.PostPrecision
    let diff = Vector<float>.Build.Dense(d, fun j -> float mu[j] - m.PostMu[j])
    let trace = Seq.sum (seq { for j in 0 .. d - 1 -> p[j, j] * exp (float lv[j]) })
    0.5 * (trace + diff * (p * diff) - float d - log (p.Determinant()) - Array.sumBy float lv)

/// chi^2 divergence E_q[(p(z|x)/q)^2] - 1, per dimension for diagonal Gaussians p = N(m1, v1), q = N(m2, v2):
/// E_q[(p/q)^2] = v2 / sqrt(v1 (2 v2 - v1)) exp((m1 - m2)^2 / (2 v2 - v1)) (finite for 2 v2 > v1).
let private chiSquare (m: LinearGaussian) (mu: float32[]) (lv: float32[]) =
    let postVar = m.PostPrecision.Inverse().Diagonal().ToArray()
    let prod =
        Array.init mu.Length (fun j ->
            let v1, v2 = postVar[j], exp (float lv[j])
            let dm = m.PostMu[j] - float mu[j]
            v2 / sqrt (v1 * (2.0 * v2 - v1)) * exp (dm * dm / (2.0 * v2 - v1)))
        |> Array.fold (*) 1.0
    prod - 1.0

/// `draws` independent values of L_k(x) (batched: q and x repeated over the rows).
let private drawBound (m: LinearGaussian) (mu: float32[]) (lv: float32[]) (k: int) (draws: int) (rng: Rng) =
    use _noGrad = Autograd.NoGrad()
    let x = repeatRow m.X draws
    let q = Posterior(repeatRow mu draws, repeatRow lv draws)
    Bounds.ImportanceWeighted(native, q, linearGaussianLogLikelihood m x, k, rng).ToArray()

/// `draws` independent values of the ELBO with the analytic KL.
let private drawElbo (m: LinearGaussian) (mu: float32[]) (lv: float32[]) (draws: int) (rng: Rng) =
    use _noGrad = Autograd.NoGrad()
    let x = repeatRow m.X draws
    let q = Posterior(repeatRow mu draws, repeatRow lv draws)
    Bounds.Elbo(native, q, linearGaussianLogLikelihood m x, rng).ToArray()

// ---------------------------------------------------------------------------------------------
// 3. A nonlinear VAE: E[L_{k+1}] >= E[L_k] and E[L_1] = E[ELBO]

/// A small VAE with random weights on binary data (its encoder is far from the true posterior, so the
/// bounds are far apart and the checks have power).
type VaeCase =
    { Input: int
      Latent: int
      Hidden: int list
      Activation: Activation
      Decoder: DecoderKind
      BatchNorm: bool
      Dropout: float32
      Examples: int
      Seed: int }

let private genVaeCase =
    gen {
        let! input = Gen.choose (3, 12)
        let! latent = Gen.choose (1, 5)
        let! depth = Gen.choose (1, 2)
        let! hidden = Gen.listOfLength depth (Gen.choose (2, 10))
        let! activation = Gen.elements [ Activation.Softplus; Activation.Tanh; Activation.Relu ]
        let! decoder = Gen.elements [ DecoderKind.Bernoulli; DecoderKind.Gaussian ]
        let! batchNorm = Gen.elements [ false; true ]
        let! dropout = Gen.elements [ 0.0f; 0.0f; 0.25f ]
        let! examples = Gen.choose (2, 6)
        let! seed = Gen.choose (0, 1_000_000)
        return
            { Input = input; Latent = latent; Hidden = hidden; Activation = activation; Decoder = decoder
              BatchNorm = batchNorm; Dropout = dropout; Examples = examples; Seed = seed }
    }

let private buildVae (c: VaeCase) (dropout: float32) =
    Vae(native, c.Input, c.Latent, List.toArray c.Hidden, c.Activation, c.Decoder, c.BatchNorm, dropout, Rng(uint64 c.Seed, 7UL))

/// Data for a case: binary pixels for a Bernoulli decoder, grey levels for a Gaussian one.
let private dataFor (c: VaeCase) =
    match c.Decoder with
    | DecoderKind.Bernoulli -> binary (uint64 c.Seed) 11UL c.Examples c.Input
    | _ -> uniform (uint64 c.Seed) 11UL c.Examples c.Input

// ---------------------------------------------------------------------------------------------
// 4. eVAE, epitomes, KL weight, dropout

/// Gradients of every parameter after backward from the mean bound, with names.
let private gradients (model: Module<Tensor>) =
    model.NamedParameters() |> Seq.map (fun struct (name, p) -> name, bits (p.Grad.ToArray())) |> Seq.toList

/// Valid layouts (D, K, s): the epitomes tile D exactly.
let private genLayout =
    gen {
        let! k = Gen.choose (1, 12)
        let! s = Gen.choose (1, k)
        let! extra = Gen.choose (0, 6)
        return k + s * extra, k, s
    }

/// A configuration with one setting changed, the option its error must name, and a fragment of the message.
let private invalidConfigs: (string * TrainConfig * string) list =
    [ "k = 0", TrainConfig(Samples = 0), "k"
      "k = -3", TrainConfig(Samples = -3), "k"
      "latent 0", TrainConfig(Latent = 0), "latent"
      "hidden []", TrainConfig(Hidden = [||]), "hidden"
      "hidden 0", TrainConfig(Hidden = [| 200; 0 |]), "hidden"
      "batch 0", TrainConfig(Batch = 0), "batch"
      "batch 1 with batch norm", TrainConfig(Batch = 1, Batchnorm = true), "batch"
      "epochs 0", TrainConfig(Epochs = 0), "epochs"
      "lr 0", TrainConfig(Lr = 0.0), "lr"
      "lr NaN", TrainConfig(Lr = nan), "lr"
      "lr inf", TrainConfig(Lr = infinity), "lr"
      "adam beta1 1", TrainConfig(AdamBeta1 = 1.0), "adam_beta1"
      "adam beta2 -0.1", TrainConfig(AdamBeta2 = -0.1), "adam_beta2"
      "adam eps 0", TrainConfig(AdamEps = 0.0), "adam_eps"
      "kl weight -1", TrainConfig(KlWeight = -1.0), "kl_weight"
      "warm-up -1", TrainConfig(WarmupEpochs = -1), "warmup_epochs"
      "dropout 1", TrainConfig(DropoutZ = 1.0), "dropout_z"
      "train subset 0", TrainConfig(TrainSubset = Nullable 0), "train_subset"
      "test subset 0", TrainConfig(TestSubset = Nullable 0), "test_subset"
      "dataset", TrainConfig(Dataset = "cifar"), "dataset"
      "synthetic dim 0", TrainConfig(Dataset = "synthetic", SyntheticDimension = 0), "synthetic_dimension"
      "binarize none with bernoulli", TrainConfig(Binarize = Nullable VaeResearch.Data.Binarization.None), "binarize"
      "evae without K", TrainConfig(Model = ModelKind.Evae), "epitome_size"
      "vae with K", TrainConfig(EpitomeSize = Nullable 5), "epitome_size"
      "evae K > D", TrainConfig(Model = ModelKind.Evae, Latent = 10, EpitomeSize = Nullable 11), "epitome_size"
      "evae s > K", TrainConfig(Model = ModelKind.Evae, Latent = 10, EpitomeSize = Nullable 2, EpitomeStride = Nullable 3), "epitome_stride" ]

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Models" [

        testCase "KL of a collapsed unit (mu = 0, logvar = 0) is exactly 0.0f" <| fun () ->
            let n, d = 3, 7
            let q = Posterior(Tensor.Zeros(n, d), Tensor.Zeros(n, d))
            let kl = (Bounds.KlPerUnit q).ToArray()
            Expect.equal (bits kl) (Array.zeroCreate<int> (n * d)) ("+0.0f in every entry, bit for bit")
            // A collapsed unit among active ones: only the collapsed entries are 0.
            let mu = Tensor.FromArray([| 0.0f; 1.0f; 0.0f; -0.5f |], 2, 2)
            let lv = Tensor.FromArray([| 0.0f; 0.0f; 0.0f; -1.0f |], 2, 2)
            let kl = (Bounds.KlPerUnit(Posterior(mu, lv))).ToArray()
            Expect.equal ((kl[0], kl[2])) ((0.0f, 0.0f)) "(kl[0], kl[2])"
            within (float (1e-7)) ((float kl[1]) |> float) ((0.5) |> float) "float kl[1]"
            within (float (1e-7)) ((float kl[3]) |> float) ((klReference -0.5 -1.0) |> float) "float kl[3]"

        property Seed 200 "per-unit KL is never negative and matches the double closed form" <| fun () ->
            Prop.forAll (Arb.fromGen genMuLogVar) (fun (mu, lv) ->
                let n = mu.Length
                let kl = (Bounds.KlPerUnit(Posterior(Tensor.FromArray(Array.copy mu, 1, n), Tensor.FromArray(Array.copy lv, 1, n)))).ToArray()
                for i in 0 .. n - 1 do
                    Expect.isGreaterThanOrEqual (kl[i]) 0.0f ($"KL(mu = {mu[i]:R}, logvar = {lv[i]:R}) = {kl[i]:R}")
                    let m, l = float mu[i], float lv[i]
                    let scale = m * m + exp l + abs l + 1.0
                    within (float (KlRelTol * scale)) ((float kl[i]) |> float) ((klReference m l) |> float) "float kl[i]"
                true)

        property Seed 100 "the per-unit KL's gradients are mu and (exp(logvar) - 1) / 2" <| fun () ->
            Prop.forAll (Arb.fromGen genMuLogVar) (fun (mu, lv) ->
                let n = mu.Length
                let m = Tensor.Parameter(Array.copy mu, 1, n)
                let l = Tensor.Parameter(Array.copy lv, 1, n)
                // A weighted sum, so that every element's gradient is scaled differently.
                let weights = Array.init n (fun i -> 0.5f + float32 i / float32 n)
                (Bounds.KlPerUnit(Posterior(m, l)) * Tensor.FromArray(weights, n)).Sum().Backward()
                let gm, gl = m.Grad.ToArray(), l.Grad.ToArray()
                for i in 0 .. n - 1 do
                    let w = float weights[i]
                    within (float (KlRelTol * (1.0 + abs (w * float mu[i])))) ((float gm[i]) |> float) ((w * float mu[i]) |> float) "float gm[i]"
                    let expected = w * 0.5 * (exp (float lv[i]) - 1.0)
                    within (float (KlRelTol * (1.0 + abs expected))) ((float gl[i]) |> float) (expected |> float) "float gl[i]"
                    // A collapsed coordinate has zero gradient, exactly.
                    if lv[i] = 0.0f then Expect.equal (gl[i]) 0.0f "gl[i]"
                true)

        testCase "KL at a small positive logvar is not negative (the float32 rounding regression)" <| fun () ->
            // exp(6.370224582e-06f) rounds to 1.0000063f, below 1 + logvar: the unclamped sum was -2.98e-8.
            // Both the vectorized and the scalar-tail path of the kernels are covered (1 and 19 entries).
            for n in [ 1; 19 ] do
                let lv = Array.create n 6.370224582e-06f
                let kl = (Bounds.KlPerUnit(Posterior(Tensor.Zeros(1, n), Tensor.FromArray(lv, 1, n)))).ToArray()
                Expect.all kl (fun v -> v >= 0.0f) "kl"

        testCase "the linear-Gaussian oracle: log p(x) by Cholesky equals the one-dimensional closed form" <| fun () ->
            // N = 1, D = 1: x ~ N(b, w^2 + sigma^2). Checks the oracle itself against a formula written out by hand.
            let c = { N = 1; D = 1; Sigma = 0.7; Scales = [| 1.5 |]; Delta = [| 0.0 |]; Gamma = [| 0.0 |]; Seed = 3 }
            let m = buildLinearGaussian c
            let v = float m.W[0] ** 2.0 + float m.Sd ** 2.0
            let r = float m.X[0] - float m.B[0]
            within (float (1e-12)) (m.LogPx |> float) ((-0.5 * (log (2.0 * Math.PI * v) + r * r / v)) |> float) "m.LogPx"
            // The exact posterior: precision 1 + w^2 / sigma^2, mean w r / (sigma^2 + w^2).
            within (float (1e-12)) ((m.PostMu[0]) |> float) ((float m.W[0] * r / v) |> float) "m.PostMu[0]"

        property Seed 12 "with the exact posterior every draw of L_k equals log p(x) (linear-Gaussian, k = 1, 5, 50)" <| fun () ->
            Prop.forAll (Arb.fromGen genLinearGaussian) (fun c ->
                let m = buildLinearGaussian c
                let mu, lv = posteriorFor c m true
                let allowed = ExactRelTol * (1.0 + abs m.LogPx + float (c.N + c.D))
                for k in [ 1; 5; 50 ] do
                    let values = drawBound m mu lv k 200 (Rng(uint64 c.Seed, uint64 k))
                    let worst = values |> Array.map (fun v -> abs (float v - m.LogPx)) |> Array.max
                    Expect.isLessThanOrEqual worst allowed ($"k = {k}: max |L_k - log p(x)| with log p(x) = {m.LogPx}")
                // The analytic-KL ELBO too: E_q[log p(x|z)] - KL is log p(x) in expectation only, but its
                // mean over the draws is within SigmaBound standard errors of it.
                let mean, se = meanSe (drawElbo m mu lv Draws (Rng(uint64 c.Seed, 99UL)))
                Expect.isLessThanOrEqual (abs (mean - m.LogPx)) (SigmaBound * se + allowed) "abs (mean - m.LogPx)"
                true)

        property Seed 12 "L_1 and the analytic-KL ELBO both equal log p(x) - KL(q || p(z|x)) in expectation (linear-Gaussian)" <| fun () ->
            Prop.forAll (Arb.fromGen genLinearGaussian) (fun c ->
                let m = buildLinearGaussian c
                let mu, lv = posteriorFor c m false
                let elbo = m.LogPx - klToPosterior m mu lv
                let l1, se1 = meanSe (drawBound m mu lv 1 Draws (Rng(uint64 c.Seed, 1UL)))
                let e, seE = meanSe (drawElbo m mu lv Draws (Rng(uint64 c.Seed, 2UL)))
                Expect.isLessThanOrEqual (abs (l1 - elbo)) (SigmaBound * se1) ($"E[L_1] = {l1} +- {se1}, closed-form ELBO {elbo}")
                Expect.isLessThanOrEqual (abs (e - elbo)) (SigmaBound * seE) ($"E[ELBO] = {e} +- {seE}, closed form {elbo}")
                true)

        property Seed 8 "E[L_k] <= log p(x), does not decrease with k, and approaches log p(x) (linear-Gaussian)" <| fun () ->
            Prop.forAll (Arb.fromGen genLinearGaussian) (fun c ->
                let m = buildLinearGaussian c
                let mu, lv = posteriorFor c m false
                let ks = [ 1; 2; 3; 4; 5; 10; 100; LargeK ]
                let estimates =
                    ks |> List.map (fun k -> k, meanSe (drawBound m mu lv k (if k >= LargeK then DrawsLargeK else Draws) (Rng(uint64 c.Seed, 1000UL + uint64 k))))
                for k, (mean, se) in estimates do
                    Expect.isLessThanOrEqual mean (m.LogPx + SigmaBound * se) ($"E[L_{k}] = {mean} +- {se} above log p(x) = {m.LogPx}")
                for (k1, (m1, s1)), (k2, (m2, s2)) in List.pairwise estimates do
                    Expect.isGreaterThanOrEqual (m2 - m1) (-SigmaBound * sqrt (s1 * s1 + s2 * s2)) ($"E[L_{k2}] = {m2} < E[L_{k1}] = {m1}")
                let chi2 = chiSquare m mu lv
                let mean, se = snd (List.last estimates)
                let gap = m.LogPx - mean
                Expect.isLessThanOrEqual gap (ApproachFactor * chi2 / (2.0 * float LargeK) + SigmaBound * se) ($"log p(x) - E[L_{LargeK}] = {gap} with chi2 = {chi2}, KL(q || p(z|x)) = {klToPosterior m mu lv}")
                true)

        property Seed 10 "E[L_(k+1)] >= E[L_k] for k = 1..5 and E[L_1] = E[ELBO] (random VAE)" <| fun () ->
            Prop.forAll (Arb.fromGen genVaeCase) (fun c ->
                // Evaluation mode: batch norm on running statistics, so the draws are independent.
                let c = { c with Dropout = 0.0f }
                let vae = buildVae c 0.0f
                vae.Eval()
                use _noGrad = Autograd.NoGrad()
                let x = (dataFor c).ToArray()[.. c.Input - 1]
                let xs = repeatRow x Draws
                let estimates =
                    [ for k in 1..6 -> k, meanSe (Bounds.ImportanceWeighted(vae, xs, k, Rng(uint64 c.Seed, uint64 (100 + k))).ToArray()) ]
                for (k1, (m1, s1)), (k2, (m2, s2)) in List.pairwise estimates do
                    Expect.isGreaterThanOrEqual (m2 - m1) (-SigmaBound * sqrt (s1 * s1 + s2 * s2)) ($"E[L_{k2}] = {m2} < E[L_{k1}] = {m1}")
                let l1, s1 = snd estimates.Head
                let e, se = meanSe (Bounds.Elbo(vae, xs, Rng(uint64 c.Seed, 200UL)).ToArray())
                Expect.isLessThanOrEqual (abs (l1 - e)) (SigmaBound * sqrt (s1 * s1 + se * se)) ($"E[L_1] = {l1} +- {s1}, E[ELBO] = {e} +- {se}")
                true)

        property Seed 60 "an eVAE with K = D = s has the VAE's bound and gradients bit for bit" <| fun () ->
            let gen =
                gen {
                    let! c = genVaeCase
                    let! k = Gen.elements [ 1; 3 ]
                    let! beta = Gen.elements [ 1.0f; 0.3f ]
                    return c, k, beta
                }
            Prop.forAll (Arb.fromGen gen) (fun (c, k, beta) ->
                let plain = buildVae c c.Dropout
                let evae = EpitomicVae(buildVae c c.Dropout, EpitomeLayout.Create(c.Latent, c.Latent, c.Latent))
                Expect.equal evae.Groups 1 "evae.Groups"
                let x = dataFor c
                let groups = Array.zeroCreate<int> c.Examples
                let a = plain.Objective(x, ReadOnlySpan groups, k, beta, Rng(uint64 c.Seed, 5UL))
                let b = evae.Objective(x, ReadOnlySpan groups, k, beta, Rng(uint64 c.Seed, 5UL))
                Expect.equal (bits (b.ToArray())) (bits (a.ToArray())) ("bound")
                (-(a.Mean())).Backward()
                (-(b.Mean())).Backward()
                let expected, actual = gradients plain, gradients evae
                Expect.equal (List.map fst actual) (List.map fst expected) ("parameter names")
                for (name, g), (_, h) in List.zip expected actual do
                    Expect.equal h g ($"gradient of {name}")
                // The same for the evaluation bound (y marginalized over its single value) and the posterior.
                plain.Eval()
                evae.Eval()
                use _noGrad = Autograd.NoGrad()
                // (Assign runs in the current mode: in training mode it would update batch-norm statistics.)
                Expect.equal (evae.Assign x) groups "evae.Assign x"
                let la = plain.LogLikelihoodBound(x, k, Rng(uint64 c.Seed, 6UL))
                let lb = evae.LogLikelihoodBound(x, k, Rng(uint64 c.Seed, 6UL))
                Expect.equal (bits (lb.ToArray())) (bits (la.ToArray())) ("log-likelihood bound")
                let qa = plain.Encode(x, ReadOnlySpan groups)
                let qb = evae.Encode(x, ReadOnlySpan groups)
                Expect.equal (bits (qb.Mu.ToArray())) (bits (qa.Mu.ToArray())) ("posterior mean")
                Expect.equal (bits (qb.LogVar.ToArray())) (bits (qa.LogVar.ToArray())) ("posterior log-variance")
                true)

        property Seed 300 "every epitome mask has exactly K contiguous ones starting at y s, and the epitomes tile D" <| fun () ->
            Prop.forAll (Arb.fromGen genLayout) (fun (d, k, s) ->
                let layout = EpitomeLayout.Create(d, k, s)
                Expect.equal ((layout.Latent, layout.Size, layout.Stride, layout.Count)) ((d, k, s, (d - k) / s + 1)) "(layout.Latent, layout.Size, layout.Stride, layout.Count)"
                let covered = Array.zeroCreate<bool> d
                for y in 0 .. layout.Count - 1 do
                    let mask = layout.Mask y
                    Expect.equal mask.Length d "mask.Length"
                    let ones = mask |> Array.indexed |> Array.filter (fun (_, v) -> v = 1.0f) |> Array.map fst
                    Expect.equal ones ([| y * s .. y * s + k - 1 |]) ($"epitome {y} of (D, K, s) = ({d}, {k}, {s})")
                    Expect.isTrue (mask |> Array.forall (fun v -> v = 0.0f || v = 1.0f)) ("0/1 entries")
                    Expect.equal (layout.Start y) (y * s) "layout.Start y"
                    for u in ones do covered[u] <- true
                Expect.all covered id ("every unit belongs to an epitome")
                Expect.equal (layout.Start(layout.Count - 1) + k) d ("the last epitome ends at D")
                // Masks(groups) stacks the same rows.
                let groups = Array.init 7 (fun i -> (i * 5) % layout.Count)
                let stacked = layout.Masks(ReadOnlySpan groups)
                Expect.equal stacked (groups |> Array.collect layout.Mask) "stacked"
                true)

        property Seed 300 "a layout that does not tile D raises a VaeResearchException naming the option" <| fun () ->
            let gen =
                gen {
                    let! d = Gen.choose (1, 30)
                    let! k = Gen.choose (-2, 34)
                    let! s = Gen.choose (-2, 34)
                    return d, k, s
                }
                |> Gen.filter (fun (d, k, s) -> k < 1 || k > d || s < 1 || s > k || (d - k) % s <> 0)
            Prop.forAll (Arb.fromGen gen) (fun (d, k, s) ->
                let e = throws<ConfigException> (fun () -> EpitomeLayout.Create(d, k, s) |> ignore)
                Expect.contains [ "epitome_size"; "epitome_stride" ] e.Key e.Message
                true)

        testCase "bad layouts name the configuration key and the expected value" <| fun () ->
            let message (d, k, s) = (throws<ConfigException> (fun () -> EpitomeLayout.Create(d, k, s) |> ignore)).Message
            Expect.stringContains (message (10, 0, 1)) ("epitome_size (K) must be between 1 and the latent size D = 10, got 0") "message (10, 0, 1)"
            Expect.stringStarts (message (10, 11, 1)) ("epitome_size ") "message (10, 11, 1)"
            Expect.stringContains (message (10, 4, 0)) ("epitome_stride (s) must be between 1 and K = 4") "message (10, 4, 0)"
            Expect.stringStarts (message (10, 4, 5)) ("epitome_stride ") "message (10, 4, 5)"
            Expect.stringContains (message (10, 4, 4)) ("do not tile D = 10 units") "message (10, 4, 4)"
            // The same errors through the configuration.
            let config = TrainConfig(Model = ModelKind.Evae, Latent = 10, EpitomeSize = Nullable 4, EpitomeStride = Nullable 4)
            Expect.stringContains ((throws<ConfigException> (fun () -> config.Validate() |> ignore)).Message) ("do not tile") "(throws<ConfigException> (fun () -> config.Validate() |> ignore)).Message"

        property Seed 60 "the eVAE's per-example KL counts exactly the K units of the assigned epitome" <| fun () ->
            let gen =
                gen {
                    let! d, k, s = genLayout |> Gen.filter (fun (d, _, _) -> d <= 16)
                    let! n = Gen.choose (1, 8)
                    let! seed = Gen.choose (0, 1_000_000)
                    let! groups = Gen.arrayOfLength n (Gen.choose (0, (d - k) / s))
                    return d, k, s, groups, seed
                }
            Prop.forAll (Arb.fromGen gen) (fun (d, k, s, groups, seed) ->
                let n, input = groups.Length, 9
                let net = Vae(native, input, d, [| 6 |], Activation.Softplus, DecoderKind.Bernoulli, false, 0.0f, Rng(uint64 seed))
                let evae = EpitomicVae(net, EpitomeLayout.Create(d, k, s))
                let x = binary (uint64 seed) 3UL n input
                use _noGrad = Autograd.NoGrad()
                let full = (Bounds.KlPerUnit(net.Encoder.Forward x)).ToArray()
                let kl = (Bounds.KlPerUnit(evae.Encode(x, ReadOnlySpan groups))).ToArray()
                for i in 0 .. n - 1 do
                    let start = groups[i] * s
                    for u in 0 .. d - 1 do
                        let v = kl[i * d + u]
                        if u >= start && u < start + k then
                            Expect.equal (BitConverter.SingleToInt32Bits v) (BitConverter.SingleToInt32Bits full[i * d + u]) ($"example {i}, unit {u} (in epitome)")
                        else
                            Expect.equal (BitConverter.SingleToInt32Bits v) 0 ($"example {i}, unit {u} (masked) must be exactly +0")
                    let counted = kl[i * d .. i * d + d - 1] |> Array.filter (fun v -> v <> 0.0f) |> Array.length
                    Expect.equal counted k ($"example {i}: units with KL > 0")
                // The objective's KL term is the sum over the epitome's units: bound(beta = 0) - bound(beta = 1).
                let withKl = evae.Objective(x, ReadOnlySpan groups, 1, 1.0f, Rng(uint64 seed, 4UL)).ToArray()
                let without = evae.Objective(x, ReadOnlySpan groups, 1, 0.0f, Rng(uint64 seed, 4UL)).ToArray()
                for i in 0 .. n - 1 do
                    let expected = Array.sumBy float kl[i * d .. i * d + d - 1]
                    let scale = abs (float without[i]) + expected + 1.0
                    within (float (1e-6 * scale)) ((float without[i] - float withKl[i]) |> float) ((expected) |> float) "float without[i] - float withKl[i]"
                true)

        property Seed 60 "with KL weight 0 the ELBO objective is the reconstruction term log p(x|z) bit for bit" <| fun () ->
            Prop.forAll (Arb.fromGen genVaeCase) (fun c ->
                let vae = buildVae c 0.0f
                vae.Eval()
                let x = dataFor c
                let groups = Array.zeroCreate<int> c.Examples
                use _noGrad = Autograd.NoGrad()
                let objective = vae.Objective(x, ReadOnlySpan groups, 1, 0.0f, Rng(uint64 c.Seed, 8UL)).ToArray()
                // The reconstruction term with the same noise: z = mu + exp(logvar / 2) eps, eps from the same stream.
                let q = vae.Encoder.Forward x
                let struct (z, _) = Bounds.Sample(native, q, 1, Rng(uint64 c.Seed, 8UL))
                let reconstruction = vae.Decoder.LogLikelihood(z, x).ToArray()
                Expect.equal (bits objective) (bits reconstruction) "bits objective"
                // And with weight 1 the bound is lower by the KL (a control that the weight is used).
                let full = vae.Objective(x, ReadOnlySpan groups, 1, 1.0f, Rng(uint64 c.Seed, 8UL)).ToArray()
                let kl = (Bounds.KlPerUnit q).Sum(-1).ToArray()
                for i in 0 .. c.Examples - 1 do
                    within (float (1e-6 * (abs (float objective[i]) + float kl[i] + 1.0))) ((float objective[i] - float full[i]) |> float) ((float kl[i]) |> float) "float objective[i] - float full[i]"
                true)

        property Seed 40 "dropout on z is the identity in evaluation mode" <| fun () ->
            Prop.forAll (Arb.fromGen genVaeCase) (fun c ->
                let withDropout = buildVae c 0.5f
                let without = buildVae c 0.0f
                let x = dataFor c
                let groups = Array.zeroCreate<int> c.Examples
                use _noGrad = Autograd.NoGrad()
                let bound (m: Vae<Tensor>) k = m.Objective(x, ReadOnlySpan groups, k, 1.0f, Rng(uint64 c.Seed, 9UL)).ToArray() |> bits
                withDropout.Eval()
                without.Eval()
                for k in [ 1; 4 ] do
                    Expect.equal (bound withDropout k) (bound without k) ($"evaluation mode, k = {k}")
                let means (m: Vae<Tensor>) = m.Decoder.Mean(m.Encoder.Forward(x).Mu).ToArray() |> bits
                Expect.equal (means withDropout) (means without) "means withDropout"
                // Control: in training mode the dropout mask changes the bound (without batch norm, which would
                // normalize away the 1/(1 - p) scaling when no unit happens to be dropped).
                if not c.BatchNorm then
                    withDropout.Train()
                    without.Train()
                    Expect.notEqual (bound withDropout 1) (bound without 1) ("training mode drops units")
                true)

        // ---------------------------------------------------------------------------------------------
        // 5. Schedules, parameter counts, configuration
        property Seed 200 "warm-up beta is 0 at step 0, 1 after N epochs, and linear in between" <| fun () ->
            let gen =
                gen {
                    let! epochs = Gen.choose (1, 50)
                    let! steps = Gen.choose (1, 600)
                    let! fraction = Gen.choose (0, 1000)
                    return epochs, steps, fraction
                }
            Prop.forAll (Arb.fromGen gen) (fun (epochs, steps, fraction) ->
                let total = int64 epochs * int64 steps
                Expect.equal (Schedules.WarmupBeta(epochs, steps, 0L)) 0.0 "Schedules.WarmupBeta(epochs, steps, 0L)"
                Expect.equal (Schedules.WarmupBeta(epochs, steps, total)) 1.0 "Schedules.WarmupBeta(epochs, steps, total)"
                Expect.equal (Schedules.WarmupBeta(epochs, steps, total + 1L)) 1.0 "Schedules.WarmupBeta(epochs, steps, total + 1L)"
                Expect.equal (Schedules.WarmupBeta(epochs, steps, 10L * total)) 1.0 "Schedules.WarmupBeta(epochs, steps, 10L * total)"
                let step = total * int64 fraction / 1000L
                within (float (1e-15)) ((Schedules.WarmupBeta(epochs, steps, step)) |> float) ((float step / float total) |> float) "Schedules.WarmupBeta(epochs, steps, step)"
                // Linear: equal increments per step.
                if step + 2L <= total then
                    let b0, b1, b2 = Schedules.WarmupBeta(epochs, steps, step), Schedules.WarmupBeta(epochs, steps, step + 1L), Schedules.WarmupBeta(epochs, steps, step + 2L)
                    within (float (1e-15)) ((b2 - b1) |> float) ((b1 - b0) |> float) "b2 - b1"
                    within (float (1e-15)) ((b1 - b0) |> float) ((1.0 / float total) |> float) "b1 - b0"
                // No warm-up: beta is 1 from the start.
                Expect.equal (Schedules.WarmupBeta(0, steps, 0L)) 1.0 "Schedules.WarmupBeta(0, steps, 0L)"
                true)

        testCase "Burda schedule: stage i lasts 3^i epochs at lr * 10^(-i/7), then the last rate stays" <| fun () ->
            let baseRate = 1e-3
            let rate stage = baseRate * 10.0 ** (-(float stage) / 7.0)
            // Stage i starts at epoch sum_{j < i} 3^j: 0, 1, 4, 13, 40, 121, 364, 1093; the schedule ends at 3280.
            let starts = [| 0; 1; 4; 13; 40; 121; 364; 1093 |]
            Expect.equal Schedules.BurdaStages starts.Length "Schedules.BurdaStages"
            Expect.equal Schedules.BurdaEpochs 3280 "Schedules.BurdaEpochs"
            for i in 0 .. starts.Length - 1 do
                within (float (1e-12 * baseRate)) ((Schedules.LearningRate(ScheduleKind.Burda, baseRate, starts[i])) |> float) ((rate i) |> float) "Schedules.LearningRate(ScheduleKind.Burda, baseRate, starts[i])"
                let last = (if i + 1 < starts.Length then starts[i + 1] else Schedules.BurdaEpochs) - 1
                within (float (1e-12 * baseRate)) ((Schedules.LearningRate(ScheduleKind.Burda, baseRate, last)) |> float) ((rate i) |> float) "Schedules.LearningRate(ScheduleKind.Burda, baseRate, last)"
                Expect.equal (last - starts[i] + 1) (pown 3 i) ($"stage {i} lasts 3^{i} epochs")
            within (float (1e-12 * baseRate)) ((Schedules.LearningRate(ScheduleKind.Burda, baseRate, 3280)) |> float) ((rate 7) |> float) "Schedules.LearningRate(ScheduleKind.Burda, baseRate, 3280)"
            within (float (1e-12 * baseRate)) ((Schedules.LearningRate(ScheduleKind.Burda, baseRate, 100_000)) |> float) ((rate 7) |> float) "Schedules.LearningRate(ScheduleKind.Burda, baseRate, 100_000)"
            within (float (1e-15)) ((rate 7 / baseRate) |> float) ((10.0 ** -1.0) |> float) "rate 7 / baseRate"
            within (float (1e-15)) ((Schedules.LearningRate(ScheduleKind.Burda, 0.5, 4)) |> float) ((0.5 * 10.0 ** (-2.0 / 7.0)) |> float) "Schedules.LearningRate(ScheduleKind.Burda, 0.5, 4)"
            for epoch in [ 0; 1; 5; 1000; 5000 ] do
                Expect.equal (Schedules.LearningRate(ScheduleKind.Constant, baseRate, epoch)) baseRate "Schedules.LearningRate(ScheduleKind.Constant, baseRate, epoch)"

        testCase "mVAE parameter count is within 5% of the eVAE's" <| fun () ->
            let settings =
                [ 50, 25, 25, [| 200; 200 |], DecoderKind.Bernoulli, false
                  50, 5, 5, [| 200; 200 |], DecoderKind.Bernoulli, false
                  20, 5, 5, [| 100; 100 |], DecoderKind.Bernoulli, false
                  10, 2, 2, [| 50 |], DecoderKind.Bernoulli, false
                  12, 4, 2, [| 64; 32 |], DecoderKind.Gaussian, false
                  20, 4, 4, [| 100 |], DecoderKind.Bernoulli, true ]
            for d, k, s, hidden, decoder, batchNorm in settings do
                let config model =
                    TrainConfig(Model = model, Latent = d, EpitomeSize = Nullable k, EpitomeStride = Nullable s, Hidden = hidden,
                                Decoder = decoder, Batchnorm = batchNorm).Validate()
                let evae = ModelFactory.Build(config ModelKind.Evae, 784, Rng 1UL)
                let mvae = ModelFactory.Build(config ModelKind.Mvae, 784, Rng 1UL) :?> MixtureVae<Tensor>
                let ce, cm = evae.ParameterCount(), mvae.ParameterCount()
                let gap = abs (float cm - float ce) / float ce
                Expect.isLessThanOrEqual gap ParameterTolerance ($"(D, K, s, hidden) = ({d}, {k}, {s}, %A{hidden}): eVAE {ce}, mVAE {cm}")
                Expect.equal mvae.Components.Count ((d - k) / s + 1) ("one component per epitome")
                // The closed form the factory matches with agrees with the modules' own count.
                Expect.equal (VaeShape.ParameterCount(784, d, hidden, decoder, batchNorm)) ce "VaeShape.ParameterCount(784, d, hidden, decoder, batchNorm)"

        testCase "TrainConfig Validate rejects each bad setting with a message naming its configuration key" <| fun () ->
            let defaults = TrainConfig()
            sameAs (defaults.Validate()) defaults "the defaults are valid (Validate returns the config)"
            for name, config, key in invalidConfigs do
                let e = throws<ConfigException> (fun () -> config.Validate() |> ignore)
                Expect.equal e.Key key ($"{name}: {e.Message}")
                Expect.stringStarts e.Message (key + " ") ($"{name}: the message starts with the key")
            let e = throws<ConfigException> (fun () -> TrainConfig(Samples = 0).Validate() |> ignore)
            Expect.equal e.Message ("k (importance samples) must be >= 1, got 0") "e.Message"
            // Valid corner cases pass.
            for config in
                [ TrainConfig(Samples = 1, Latent = 1, Hidden = [| 1 |], Batch = 1, Epochs = 1, KlWeight = 0.0)
                  TrainConfig(Model = ModelKind.Evae, Latent = 10, EpitomeSize = Nullable 10)
                  TrainConfig(Model = ModelKind.Mvae, Latent = 10, EpitomeSize = Nullable 4, EpitomeStride = Nullable 2)
                  TrainConfig(Decoder = DecoderKind.Gaussian, Binarize = Nullable VaeResearch.Data.Binarization.None) ] do
                sameAs (config.Validate()) config "config.Validate()"
    ]
