/// The invariants of the bounds and models, written once over the compute seam and run on every backend (the native
/// engine, and libtorch where it loads), the way DiffSharp runs one suite per backend.
module VaeResearch.Properties.BackendTests

open System
open Expecto
open VaeResearch
open VaeResearch.Compute
open VaeResearch.Engine
open VaeResearch.Models
open VaeResearch.TestSupport
open VaeResearch.Torch

/// Binary images [n, N] with about 30% ones, seeded.
let private binaryPixels (seed: uint64) (n: int) (input: int) =
    let values = Array.zeroCreate<float32> (n * input)
    Rng(seed, 21UL).FillUniform(Span values)
    values |> Array.map (fun u -> if u < 0.3f then 1.0f else 0.0f)

/// The same rows repeated: x [N] as [n, N].
let private repeatRow (row: float32[]) (n: int) = Array.init (n * row.Length) (fun i -> row[i % row.Length])

let private meanSe (values: float32[]) =
    let xs = values |> Array.map float
    let m = Array.average xs
    let var = (xs |> Array.sumBy (fun v -> (v - m) * (v - m))) / float (xs.Length - 1)
    m, sqrt (var / float xs.Length)

/// A linear-Gaussian model with diagonal weights, x_j = w_j z_j + b_j + sigma eps_j: log p(x) and the exact posterior
/// N(m_j, v_j) per unit are closed forms (p(x_j) = N(b_j, w_j^2 + sigma^2); v_j = 1 / (1 + w_j^2 / sigma^2),
/// m_j = v_j w_j (x_j - b_j) / sigma^2).
type private DiagonalGaussian =
    { W: float32[]; B: float32[]; Sigma: float32; X: float32[] }

    member m.LogPx =
        Array.init m.W.Length (fun j ->
            let var = float m.W[j] * float m.W[j] + float m.Sigma * float m.Sigma
            let r = float m.X[j] - float m.B[j]
            -0.5 * (log (2.0 * Math.PI * var) + r * r / var))
        |> Array.sum

    member m.Posterior =
        let s2 = float m.Sigma * float m.Sigma
        Array.init m.W.Length (fun j ->
            let w = float m.W[j]
            let v = 1.0 / (1.0 + w * w / s2)
            float32 (v * w * (float m.X[j] - float m.B[j]) / s2), float32 (log v))
        |> Array.unzip

/// log p(x|z) of the diagonal model from the seam's ops: z [k, n, D] -> [k, n], for data x [n, D].
let private diagonalLogLikelihood (context: ComputeContext<'T>) (m: DiagonalGaussian) (x: 'T) : Func<'T, 'T> =
    let d = m.W.Length
    let weights = Array.init (d * d) (fun i -> if i / d = i % d then m.W[i / d] else 0.0f)
    let w = context.Upload(ReadOnlySpan weights, d, d)
    let b = context.Upload(ReadOnlySpan m.B, d)
    let s2 = m.Sigma * m.Sigma
    let constant = -0.5f * float32 d * MathF.Log(2.0f * MathF.PI * s2)
    Func<'T, 'T>(fun z ->
        let r = 'T.op_Subtraction('T.Linear(z, w, b), x)
        'T.op_Addition('T.op_Multiply(r.Square().Sum(-1), -0.5f / s2), constant))

/// The invariants on one backend; <paramref name="context"/> makes every tensor.
let invariants<'T when 'T :> ITensor<'T> and 'T: not struct> (name: string) (context: ComputeContext<'T>) =
    let vae seed input latent decoder =
        Vae(context, input, latent, [| 8 |], Activation.Softplus, decoder, false, 0.0f, Rng(seed, 7UL))
    testList $"backend {name}" [
        testCase "a collapsed unit (mu = 0, logvar = 0) has exactly zero KL, and so has every unit an eVAE masks out" <| fun () ->
            use _ = context.NoGrad()
            use _ = context.Scope()
            let zeros = context.Zeros(4, 6)
            Expect.allEqual (Bounds.KlPerUnit(Posterior(zeros, zeros)).ToArray()) 0.0f "KL at the prior"
            let net = vae 3UL 10 6 DecoderKind.Bernoulli
            let evae = EpitomicVae(net, EpitomeLayout.Create(6, 2, 2))
            let x = context.Upload(ReadOnlySpan(binaryPixels 3UL 5 10), 5, 10)
            let groups = [| 0; 1; 2; 1; 0 |]
            let kl = Bounds.KlPerUnit(evae.Encode(x, ReadOnlySpan groups)).ToArray()
            for i in 0 .. 4 do
                for u in 0 .. 5 do
                    if u / 2 <> groups[i] then Expect.equal kl[i * 6 + u] 0.0f $"example {i}, masked unit {u}"
                    else Expect.isGreaterThan kl[i * 6 + u] 0.0f $"example {i}, epitome unit {u}"

        testCase "an eVAE with K = D = s has the VAE's bound and gradients bit for bit (ELBO and L_5)" <| fun () ->
            for k in [ 1; 5 ] do
                let bits (model: GenerativeModel<'T>) =
                    use _ = context.Scope()
                    let x = context.Upload(ReadOnlySpan(binaryPixels 5UL 6 12), 6, 12)
                    let bound = model.Objective(x, ReadOnlySpan(Array.zeroCreate 6), k, 1.0f, Rng(9UL))
                    let loss = 'T.op_UnaryNegation(bound.Mean())
                    loss.Backward()
                    let grads = model.Parameters() |> Seq.collect (fun p -> p.GradToArray()) |> Array.ofSeq
                    bound.ToArray() |> Array.map BitConverter.SingleToInt32Bits, grads |> Array.map BitConverter.SingleToInt32Bits
                let plain = vae 4UL 12 3 DecoderKind.Gaussian
                let evae = EpitomicVae(vae 4UL 12 3 DecoderKind.Gaussian, EpitomeLayout.Create(3, 3, 3))
                let vb, vg = bits plain
                let eb, eg = bits evae
                Expect.sequenceEqual eb vb $"k = {k}: the bound"
                Expect.sequenceEqual eg vg $"k = {k}: the gradients"

        // 4000 draws per k, compared with an allowance of 5 standard errors of the difference of the two means: a true
        // E[L_(k+1)] >= E[L_k] fails it by chance with probability under 3e-7 per pair (normal approximation).
        testCase "E[L_(k+1)] >= E[L_k] for k = 1..5 (a random VAE, 4000 draws, 5 standard errors)" <| fun () ->
            use _ = context.NoGrad()
            let net = vae 6UL 10 3 DecoderKind.Bernoulli
            let draws = 4000
            let estimates =
                [ for k in 1 .. 5 ->
                      use _ = context.Scope()
                      let x = context.Upload(ReadOnlySpan(repeatRow (binaryPixels 6UL 1 10) draws), draws, 10)
                      meanSe (Bounds.ImportanceWeighted(net, x, k, Rng(6UL, uint64 k)).ToArray()) ]
            for (m0, s0), (m1, s1) in List.pairwise estimates do
                Expect.isGreaterThanOrEqual m1 (m0 - 5.0 * sqrt (s0 * s0 + s1 * s1)) $"E[L_k] = {m0:F3} +- {s0:F3}, E[L_(k+1)] = {m1:F3} +- {s1:F3}"
            let (first, _), (last, _) = List.head estimates, List.last estimates
            Expect.isGreaterThan last first "L_5 is tighter than L_1 on this model"

        testCase "with the exact posterior every draw of L_k equals log p(x) (linear-Gaussian closed form, k = 1, 5, 50)" <| fun () ->
            use _ = context.NoGrad()
            let m = { W = [| 1.5f; -0.7f; 0.3f |]; B = [| 0.2f; -0.1f; 0.4f |]; Sigma = 0.6f; X = [| 1.1f; -0.9f; 0.25f |] }
            let mu, lv = m.Posterior
            for k in [ 1; 5; 50 ] do
                use _ = context.Scope()
                let n = 20
                let x = context.Upload(ReadOnlySpan(repeatRow m.X n), n, 3)
                let q = Posterior(context.Upload(ReadOnlySpan(repeatRow mu n), n, 3), context.Upload(ReadOnlySpan(repeatRow lv n), n, 3))
                let bound = Bounds.ImportanceWeighted(context, q, diagonalLogLikelihood context m x, k, Rng(11UL, uint64 k)).ToArray()
                for b in bound do within 2e-4 (float b) m.LogPx $"k = {k}: L_k against log p(x) = {m.LogPx:F5}"
    ]

let private largest (values: float32[]) = values |> Array.fold (fun m v -> max m (abs (float v))) 0.0

/// |actual - expected| <= tolerance max(max |expected|, floor) elementwise: a float32 tolerance relative to the vector's
/// scale, so that an entry near zero is compared at the precision of its neighbours.
let private closeToScale (tolerance: float) (floor: float) (actual: float32[]) (expected: float32[]) (message: string) =
    Expect.equal actual.Length expected.Length $"{message}: length"
    let scale = max (largest expected) floor
    for i in 0 .. actual.Length - 1 do
        if not (abs (float actual[i] - float expected[i]) <= tolerance * scale) then
            failtestf "%s[%d]: expected %.9g, got %.9g (off by %g, allowed %g)" message i expected[i] actual[i]
                (abs (float actual[i] - float expected[i])) (tolerance * scale)

/// The model kinds the equivalence covers, as configurations on 20-pixel data with D = 6.
let private equivalenceCases =
    let hidden = [| 16; 12 |]
    [ "VAE, Bernoulli", VaeResearch.Training.TrainConfig(Latent = 6, Hidden = hidden, Batch = 8)
      "VAE, Gaussian", VaeResearch.Training.TrainConfig(Latent = 6, Hidden = hidden, Batch = 8, Decoder = DecoderKind.Gaussian)
      "VAE, batch norm", VaeResearch.Training.TrainConfig(Latent = 6, Hidden = hidden, Batch = 8, Batchnorm = true)
      "IWAE, k = 5", VaeResearch.Training.TrainConfig(Latent = 6, Hidden = hidden, Batch = 8, Samples = 5)
      "VAE, log-std scale head, Monte-Carlo KL",
      VaeResearch.Training.TrainConfig(Latent = 6, Hidden = hidden, Batch = 8, PosteriorScale = PosteriorScale.LogStd, Kl = KlEstimator.MonteCarlo)
      "eVAE, K = 2, s = 2",
      VaeResearch.Training.TrainConfig(Latent = 6, Hidden = hidden, Batch = 8, Model = VaeResearch.Training.ModelKind.Evae, EpitomeSize = Nullable 2)
      "mVAE, K = 3",
      VaeResearch.Training.TrainConfig(Latent = 6, Hidden = [| 24; 12 |], Batch = 8, Model = VaeResearch.Training.ModelKind.Mvae, EpitomeSize = Nullable 3) ]

/// The bound per example and every gradient of one training step's loss, on one backend, from the same seeds.
let private stepOn (context: ComputeContext<'T>) (config: VaeResearch.Training.TrainConfig) =
    let model = VaeResearch.Training.ModelFactory.Build(context, config, 20, Rng(1UL, 2UL))
    let pixels = binaryPixels 8UL 8 20
    let groups = Array.init 8 (fun i -> i % model.Groups)
    use _ = context.Scope()
    let x = context.Upload(ReadOnlySpan pixels, 8, 20)
    let bound = model.TrainingObjective(x, ReadOnlySpan groups, config.Bound, 1.0f, Rng(5UL))
    'T.op_UnaryNegation(bound.Mean()).Backward()
    bound.ToArray(), [ for struct (name, p) in model.NamedParameters() -> name, p.GradToArray() ]

/// The same weights and noise give the same per-example bound and gradients on libtorch as on the native engine.
let private equivalence (torch: ComputeContext<TorchTensor>) =
    testList "native and torch agree" [
        // Tolerances: the backends sum in another order (libtorch's GEMM and reductions), so results differ by float32
        // rounding (a few ulps, 1e-7 relative, per operation, compounded over the network); 1e-5 of the bound's scale and
        // 1e-4 of a gradient tensor's are far above that and far below a changed term or mask.
        // A tensor's scale has a floor of 1e-3 of the model's largest gradient. The bias of a hidden layer before batch norm
        // has gradient 0 in exact arithmetic (the norm removes any shift): both backends return rounding noise there
        // (about 1e-7 of the largest gradient), so it is checked to be that small on both instead.
        for name, config in equivalenceCases ->
            testCase $"{name}: the bound per example (1e-5 of its scale) and every gradient (1e-4 of its tensor's largest)" <| fun () ->
                let nativeBound, nativeGrads = stepOn native config
                let torchBound, torchGrads = stepOn torch config
                closeToScale 1e-5 0.0 torchBound nativeBound "bound"
                Expect.sequenceEqual (List.map fst torchGrads) (List.map fst nativeGrads) "parameter names"
                let floor = 1e-3 * (nativeGrads |> List.map (snd >> largest) |> List.max)
                Expect.isGreaterThan floor 0.0 "a non-zero gradient to compare"
                let beforeNorm (n: string) = config.Batchnorm && n.Contains ".hidden." && n.EndsWith ".bias"
                for (n, t), (_, e) in List.zip torchGrads nativeGrads do
                    if beforeNorm n then
                        for g, who in [ t, "torch"; e, "native" ] do
                            Expect.isLessThanOrEqual (largest g) (1e-5 * floor / 1e-3) $"{who}: gradient of {n} (zero before batch norm)"
                    else closeToScale 1e-4 floor t e $"gradient of {n}"
    ]

/// The invariants on the native engine and on libtorch (CPU); where libtorch cannot load, one test says why (skipped,
/// or failed under CI).
let tests =
    testList "Backends" [
        invariants "native" native
        match Option.ofObj TorchBackend.LoadError with
        | None ->
            let torch = TorchContext("cpu", Environment.ProcessorCount)
            testList "torch" [ invariants "torch" torch; equivalence torch ]
        | Some why ->
            testCase "backend torch" <| fun () ->
                requireNative "libtorch (TorchSharp)" (Some why) "dotnet build restores libtorch-cpu-linux-x64 2.10.0 and patches libLibTorchSharp.so under bin/"
    ]
