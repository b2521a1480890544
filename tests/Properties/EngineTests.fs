module VaeResearch.Properties.EngineTests

// Numerical and behavioural properties of the engine beyond gradients (GradientTests.fs):
//   1. log-sum-exp is exact (to float32 rounding) at extreme inputs, where the naive formula overflows;
//   2. softplus (and its derivative) is finite and correct to float32 precision at |x| up to 100;
//   3. Adam follows PyTorch's update rule (closed form in double), bias correction included, for varied
//      hyperparameters, several steps and a learning-rate schedule; ZeroGrad; thread invariance;
//   4. Xavier-normal initialization has mean 0 and variance 2 / (fanIn + fanOut) (chi-square bound);
//   5. dropout: identity in evaluation, mean-preserving inverted mask in training;
//   6. batch norm: evaluation uses the running statistics, which update as PyTorch's;
//   7. module state-dict names; reshape shares values; shape errors name both shapes; no-grad mode.
// Statistical checks state their tolerance and the probability that a correct implementation fails
// them; all generators are seeded, so every run draws the same numbers.

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.Distributions
open VaeResearch.Engine
open VaeResearch.TestSupport

/// FsCheck (seed, gamma) every property replays, so each run generates the same cases.
let private Seed = (20250613UL, 65537UL)

/// Distance between adjacent float32 values at |v| (2^-149 among the subnormals).
let ulp (v: float) =
    let a = abs (float32 v)
    float (MathF.BitIncrement a) - float a

// ---------------------------------------------------------------------------------------------
// Tolerances

/// Log-sum-exp results within this many float32 ulps of the exact (double) value: the result is
/// m + fl(log s) with m an input (exact), so the error is half an ulp of the sum plus half an ulp of log s.
let LseUlps = 1.0

/// Relative error of a log-sum-exp gradient (the softmax exp(x_j - y)) per unit of ulp(y): the engine
/// evaluates exp at x_j - fl(y), so it inherits y's rounding (at |y| = 1e4, ulp = 2^-10 ~ 1e-3); the
/// factor 2 covers the float32 rounding of exp and of the difference.
let LseGradUlpFactor = 2.0

/// Softplus and its derivative within this relative error of the double value: four float32 unit
/// roundoffs (u = 2^-24). The SIMD exp and log of System.Numerics are accurate to about 1 ulp each
/// (Vector256.Exp(0) is 1 + 2^-23, so the derivative at x >= 17 reads 1.0000001 where the exact value
/// is just below 1: 1.6e-7 relative); results below 2^-126 are subnormal and get SoftplusSubnormalUlps
/// spacings of 2^-149 instead.
let SoftplusRelTol = 4.0 * 2.0 ** -24.0

/// Absolute slack, in subnormal spacings 2^-149, for softplus values and derivatives below 2^-126.
let SoftplusSubnormalUlps = 2.0

/// Adam: the engine's parameters after t steps within AdamRelTol * sum_t |update_t| + t float32 ulps of
/// |p| of the closed form in double. The update's float32 error is dominated by the bias correction
/// 1 - beta^t, which cancels: at beta2 = 0.9999, t = 2 it carries a relative error of ~2^-24 / 2e-4 =
/// 3e-4, halved by the square root (the generated runs stay below 1e-4); 1e-3 is above that and
/// well below what a missing bias correction
/// (a factor (1 - beta1) / sqrt(1 - beta2), >= 3 here) or eps inside the square root (>= 10 % at
/// eps = 1e-2) does (see the controls).
let AdamRelTol = 1e-3

/// Means are checked to within this many standard errors: under the null hypothesis (CLT)
/// P(|Z| > 6) = 1.97e-9 per check.
let SigmaBound = 6.0

/// Two-sided failure probability of each chi-square variance check under the null hypothesis.
let VarianceFailureProbability = 1e-8

/// Running statistics and evaluation-mode outputs of batch norm against the double closed form,
/// relative (float32 storage, means accumulated in double by the engine).
let BatchNormRelTol = 1e-5

// ---------------------------------------------------------------------------------------------
// 1. Log-sum-exp at extreme inputs

/// log sum exp in double, shifted by the maximum (the oracle; -inf for all -inf, +inf for any +inf).
let private lseReference (v: float[]) =
    let m = Array.max v
    if Double.IsInfinity m then m else m + log (Array.sumBy (fun x -> exp (x - m)) v)

/// The textbook float32 formula log(sum(exp(x))) without the shift: the contrast.
let private naiveLse (v: float32[]) = MathF.Log(Array.sumBy MathF.Exp v)

/// LogSumExp over a row vector [n] (axis 0): the value and the gradient.
let private engineLse (v: float32[]) =
    let x = Tensor.Parameter(Array.copy v, v.Length)
    let y = x.LogSumExp 0
    y.Backward()
    y.Item(), x.Grad.ToArray()

/// Checks value and gradient against the double oracle (the gradient is the softmax, 0 at -inf).
let private checkLse (v: float32[]) =
    let value, grad = engineLse v
    let xs = Array.map float v
    let expected = lseReference xs
    if Double.IsInfinity expected then
        Expect.equal (float value) expected ($"LSE of %A{v}")
        if expected < 0.0 then Expect.allEqual grad 0.0f ($"all -inf: the gradient of %A{v} must be 0, not NaN")
    else
        Expect.isLessThanOrEqual (abs (float value - expected)) (LseUlps * ulp expected) ($"LSE of %A{v}: {value:R} vs {expected:R}")
        for j in 0 .. v.Length - 1 do
            let p = exp (xs[j] - expected)
            let allowed = p * LseGradUlpFactor * (ulp expected + 2.0 ** -23.0) + 2.0 ** -126.0
            Expect.isLessThanOrEqual (abs (float grad[j] - p)) allowed ($"d LSE / dx[{j}] of %A{v}: {grad[j]:R} vs {p:R}")
    value, grad

// ---------------------------------------------------------------------------------------------
// 2. Softplus at large |x|

/// softplus in double: log1p(e^x) for x <= 0 (via the series for tiny e^x), x + log1p(e^-x) above.
let private softplusReference (x: float) =
    let log1p u = if u < 1e-4 then u * (1.0 - u * (0.5 - u / 3.0)) else log (1.0 + u)
    if x > 0.0 then x + log1p (exp -x) else log1p (exp x)

let private sigmoidReference (x: float) = if x >= 0.0 then 1.0 / (1.0 + exp -x) else exp x / (1.0 + exp x)

let private softplusPoints = [| -100.0f; -88.0f; -80.0f; -30.0f; -1.0f; 0.0f; 0.5f; 1.0f; 17.0f; 30.0f; 80.0f; 100.0f |]

let private engineSoftplus (v: float32[]) =
    let x = Tensor.Parameter(Array.copy v, v.Length)
    let y = x.Softplus()
    y.Sum().Backward()
    y.ToArray(), x.Grad.ToArray()

// ---------------------------------------------------------------------------------------------
// 3. Adam

/// Adam in double, in Kingma and Ba's form (which PyTorch's rule rearranges): per step t,
/// m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, m^ = m / (1 - b1^t), v^ = v / (1 - b2^t),
/// p -= lr_t m^ / (sqrt(v^) + eps). Returns the parameters and, per element, sum_t |update_t|.
let adamReference (lrs: float[]) (b1: float) (b2: float) (eps: float) (p0: float[]) (grads: float[][]) =
    let p = Array.copy p0
    let m = Array.zeroCreate p0.Length
    let v = Array.zeroCreate p0.Length
    let moved = Array.zeroCreate p0.Length
    for t in 1 .. grads.Length do
        let g = grads[t - 1]
        for i in 0 .. p.Length - 1 do
            m[i] <- b1 * m[i] + (1.0 - b1) * g[i]
            v[i] <- b2 * v[i] + (1.0 - b2) * g[i] * g[i]
            let mHat = m[i] / (1.0 - b1 ** float t)
            let vHat = v[i] / (1.0 - b2 ** float t)
            let update = lrs[t - 1] * mHat / (sqrt vHat + eps)
            p[i] <- p[i] - update
            moved[i] <- moved[i] + abs update
    p, moved

/// A generated Adam run: hyperparameters, parameter tensors (sizes straddling the 8-lane SIMD width)
/// and gradients per step (some exactly 0, some tiny, so that eps matters).
type AdamCase =
    { Lrs: float32[]
      Beta1: float32
      Beta2: float32
      Eps: float32
      Sizes: int[]
      Initial: float32[]
      Grads: float32[][] }

let private genAdamCase =
    gen {
        let! steps = Gen.choose (1, 6)
        let! lr = Gen.elements [ 1e-4f; 1e-3f; 1e-2f; 0.1f; 0.5f ]
        // Constant, or a schedule that changes lr between steps.
        let! schedule = Gen.elements [ false; true ]
        let! beta1 = Gen.elements [ 0.0f; 0.5f; 0.9f; 0.99f ]
        let! beta2 = Gen.elements [ 0.9f; 0.99f; 0.999f; 0.9999f ]
        let! eps = Gen.elements [ 1e-8f; 1e-6f; 1e-4f; 1e-2f ]
        let! count = Gen.choose (1, 3)
        let! sizes = Gen.arrayOfLength count (Gen.choose (1, 21))
        let total = Array.sum sizes
        let value = Gen.choose (-2000000, 2000000) |> Gen.map (fun i -> float32 i / 1e6f)
        let gradient = Gen.frequency [ 8, value; 1, Gen.constant 0.0f; 1, value |> Gen.map (fun g -> g * 1e-6f) ]
        let! initial = Gen.arrayOfLength total value
        let! grads = Gen.arrayOfLength steps (Gen.arrayOfLength total gradient)
        return
            { Lrs = Array.init steps (fun t -> if schedule then lr * float32 (t + 1) / float32 steps else lr)
              Beta1 = beta1
              Beta2 = beta2
              Eps = eps
              Sizes = sizes
              Initial = initial
              Grads = grads }
    }

/// Runs the engine's Adam on the case's parameters, writing each step's gradients through the
/// parameters' own Grad views (which the optimizer rebinds to its shared buffer); returns the values.
let private runAdam (c: AdamCase) =
    let offsets = Array.scan (+) 0 c.Sizes
    let parameters = c.Sizes |> Array.mapi (fun k size -> Tensor.Parameter(Array.sub c.Initial offsets[k] size, size))
    let adam = Adam(parameters, c.Lrs[0], c.Beta1, c.Beta2, c.Eps)
    for t in 0 .. c.Grads.Length - 1 do
        adam.LearningRate <- c.Lrs[t]
        for k in 0 .. parameters.Length - 1 do
            let g = parameters[k].Grad
            for i in 0 .. g.Length - 1 do
                g[i] <- c.Grads[t][offsets[k] + i]
        adam.Step()
    Expect.equal adam.StepCount (int64 c.Grads.Length) "adam.StepCount"
    parameters |> Array.collect (fun p -> p.ToArray())

/// Elements where the engine differs from a reference run by more than the Adam tolerance.
let private adamMismatches (c: AdamCase) (engine: float32[]) (expected: float[], moved: float[]) =
    [ for i in 0 .. engine.Length - 1 do
          let allowed = AdamRelTol * moved[i] + float c.Grads.Length * ulp expected[i]
          if not (abs (float engine[i] - expected[i]) <= allowed) then yield i, engine[i], expected[i] ]

let private reference (c: AdamCase) =
    adamReference (Array.map float c.Lrs) (float c.Beta1) (float c.Beta2) (float c.Eps) (Array.map float c.Initial)
        (c.Grads |> Array.map (Array.map float))

// ---------------------------------------------------------------------------------------------
// 4. Xavier-normal initialization

/// Bounds on the sample variance s^2 (n - 1 degrees of freedom) of n draws from N(0, sigma^2):
/// (n - 1) s^2 / sigma^2 ~ chi-square(n - 1), so s^2 / sigma^2 lies in [q(a/2), q(1 - a/2)] / (n - 1)
/// except with probability a = VarianceFailureProbability (quantiles from MathNet).
let varianceRatioBounds (n: int) =
    let dof = float (n - 1)
    ChiSquared.InvCDF(dof, VarianceFailureProbability / 2.0) / dof, ChiSquared.InvCDF(dof, 1.0 - VarianceFailureProbability / 2.0) / dof

let private sampleStats (w: float32[]) =
    let n = float w.Length
    let mean = Array.sumBy float w / n
    mean, (w |> Array.sumBy (fun v -> (float v - mean) ** 2.0)) / (n - 1.0)

// ---------------------------------------------------------------------------------------------
// 6. Batch norm: running statistics and evaluation mode

let private batchOf (r: Random) n d = Array.init (n * d) (fun i -> float32 (r.NextDouble() * 4.0 - 1.0 + float (i % d)))

/// Asserts that f throws an ArgumentException (or a subclass) whose message names every shape.
let private shapeError (shapes: string list) (f: unit -> unit) =
    let e = catches<ArgumentException> f
    for s in shapes do
        Expect.stringContains e.Message s ($"the message should name {s}")

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Engine" [

        testCase "log-sum-exp of +-1e4 is exact where the naive float formula overflows or underflows" <| fun () ->
            for v in [ [| 1e4f; 1e4f |]; [| 1e4f; 9999f; 9990f |]; [| -1e4f; -9999f |]; [| -1e4f; -1e4f; -1e4f |]; [| 1e4f; -1e4f |] ] do
                checkLse v |> ignore
            // The contrast: e^1e4 overflows float32 (and double), e^-1e4 underflows to 0.
            Expect.equal (naiveLse [| 1e4f; 1e4f |]) Single.PositiveInfinity "naiveLse [| 1e4f; 1e4f |]"
            Expect.equal (naiveLse [| -1e4f; -9999f |]) Single.NegativeInfinity "naiveLse [| -1e4f; -9999f |]"
            // Closed forms: n equal entries a give a + log n.
            let value, grad = engineLse [| 1e4f; 1e4f |]
            Expect.isLessThanOrEqual (abs (float value - (1e4 + log 2.0))) (ulp 1e4) "abs (float value - (1e4 + log 2.0))"
            withinEach (float (1e-3)) grad [| 0.5f; 0.5f |] "grad"

        testCase "log-sum-exp of all -inf is -inf with a zero (not NaN) gradient" <| fun () ->
            let value, grad = engineLse [| Single.NegativeInfinity; Single.NegativeInfinity; Single.NegativeInfinity |]
            Expect.equal value Single.NegativeInfinity "value"
            Expect.equal grad ([| 0.0f; 0.0f; 0.0f |]) "grad"
            // The naive formula agrees here (log 0), but an unguarded softmax exp(x - y) would be exp(NaN).
            Expect.equal (naiveLse [| Single.NegativeInfinity |]) Single.NegativeInfinity "naiveLse [| Single.NegativeInfinity |]"
            Expect.isTrue (Single.IsNaN(Single.NegativeInfinity - Single.NegativeInfinity)) "Single.IsNaN(Single.NegativeInfinity - Single.NegativeInfinity)"

        testCase "log-sum-exp with some -inf entries ignores them (zero gradient there)" <| fun () ->
            let ninf = Single.NegativeInfinity
            for v in [ [| ninf; 0.0f; 1.0f; ninf |]; [| ninf; 1e4f |]; [| -1e4f; ninf; -1e4f |]; [| ninf; -3.5f |] ] do
                let value, grad = checkLse v
                for j in 0 .. v.Length - 1 do
                    if Single.IsNegativeInfinity v[j] then Expect.equal (grad[j]) 0.0f "grad[j]"
                // The softmax sums to 1, up to the rounding of the result it is computed from.
                let allowed = LseGradUlpFactor * (ulp (float value) + 2.0 ** -23.0)
                within (float (allowed)) (float (Array.sumBy float grad)) (float (1.0)) ("the softmax sums to 1")
            within (float (ulp 1.3)) (float (fst (engineLse [| ninf; 0.0f; 1.0f; ninf |]) |> float)) (float (log (1.0 + Math.E))) "fst (engineLse [| ninf; 0.0f; 1.0f; ninf |]) |> float"

        testCase "log-sum-exp with a +inf entry is +inf" <| fun () ->
            for v in [ [| Single.PositiveInfinity; 1.0f |]; [| Single.NegativeInfinity; Single.PositiveInfinity |]; [| 1e4f; Single.PositiveInfinity; -1e4f |] ] do
                let x = Tensor.FromArray(v, v.Length)
                Expect.equal (x.LogSumExp(0).Item()) Single.PositiveInfinity ($"%A{v}")

        testCase "log-sum-exp over either axis of a matrix with extreme columns" <| fun () ->
            // Columns: all -inf; +-1e4; mixed -inf and finite; ordinary.
            let ninf = Single.NegativeInfinity
            let rows = [| [| ninf; 1e4f; ninf; 0.5f |]; [| ninf; -1e4f; 3.0f; -0.5f |]; [| ninf; 1e4f; 2.0f; 1.5f |] |]
            let data = Array.concat rows
            for axis in [ 0; 1; -1 ] do
                let x = Tensor.Parameter(Array.copy data, 3, 4)
                let y = x.LogSumExp axis
                let yv = y.ToArray()
                y.Sum().Backward()
                let lines =
                    if axis = 0 then Array.init 4 (fun c -> Array.init 3 (fun r -> rows[r][c]))
                    else rows
                for i in 0 .. lines.Length - 1 do
                    let expected = lseReference (Array.map float lines[i])
                    if Double.IsInfinity expected then Expect.equal (float yv[i]) expected "float yv[i]"
                    else Expect.isLessThanOrEqual (abs (float yv[i] - expected)) (LseUlps * ulp expected) ($"axis {axis}, line {i}")
                Expect.isTrue (x.Grad.ToArray() |> Array.forall Single.IsFinite) ("no NaN in the gradient")

        property Seed 100 "log-sum-exp of generated rows at magnitudes up to 1e4 with -inf entries matches the double oracle" <| fun () ->
            let genRow =
                gen {
                    let! n = Gen.choose (1, 12)
                    let! offset = Gen.elements [ 0.0; 1e4; -1e4; 3e3; -87.0; 88.0 ]
                    let! spread = Gen.elements [ 1.0; 30.0; 200.0 ]
                    let! values = Gen.arrayOfLength n (Gen.choose (-1000000, 1000000) |> Gen.map (fun i -> float32 (offset + spread * float i / 1e6)))
                    let! holes = Gen.arrayOfLength n (Gen.frequency [ 4, Gen.constant false; 1, Gen.constant true ])
                    return Array.map2 (fun v h -> if h then Single.NegativeInfinity else v) values holes
                }
            Prop.forAll (Arb.fromGen genRow) (fun v ->
                checkLse v |> ignore
                true)

        testCase "softplus and its derivative are finite and correct to float32 precision at |x| up to 100" <| fun () ->
            let check (path: string) (x: float32) (y: float32) (g: float32) =
                let ey, eg = softplusReference (float x), sigmoidReference (float x)
                Expect.isTrue (Single.IsFinite y && Single.IsFinite g) ($"{path} softplus({x}) = {y}, gradient {g}")
                let allowed (exact: float) = SoftplusRelTol * exact + SoftplusSubnormalUlps * 2.0 ** -149.0
                Expect.isLessThanOrEqual (abs (float y - ey)) (allowed ey) ($"{path} softplus({x}) = {y:R}, exact {ey:R}")
                Expect.isLessThanOrEqual (abs (float g - eg)) (allowed eg) ($"{path} softplus'({x}) = {g:R}, exact {eg:R}")
            // The SIMD body: the points twice (24 values, a multiple of the 8 lanes, so none in the scalar tail).
            let simd = Array.append softplusPoints softplusPoints
            let ys, gs = engineSoftplus simd
            for i in 0 .. simd.Length - 1 do
                check "SIMD" simd[i] ys[i] gs[i]
            // The scalar tail: each point alone.
            for x in softplusPoints do
                let y, g = engineSoftplus [| x |]
                check "scalar" x y[0] g[0]
            // The contrast: the naive float formula log(1 + e^x) overflows at 100 and returns 0 (not e^-100) at -100.
            Expect.equal (MathF.Log(1.0f + MathF.Exp 100.0f)) Single.PositiveInfinity "MathF.Log(1.0f + MathF.Exp 100.0f)"
            Expect.equal (MathF.Log(1.0f + MathF.Exp -100.0f)) 0.0f "MathF.Log(1.0f + MathF.Exp -100.0f)"
            Expect.isGreaterThan (softplusReference -100.0) 0.0 "softplusReference -100.0"

        property Seed 150 "Adam matches the closed-form update (PyTorch's rule, with bias correction) for varied hyperparameters" <| fun () ->
            Prop.forAll (Arb.fromGen genAdamCase) (fun c ->
                let bad = adamMismatches c (runAdam c) (reference c)
                bad.IsEmpty |> Prop.label $"elements (index, engine, expected) beyond the tolerance: %A{List.truncate 5 bad}")

        testCase "Adam tolerance control: no bias correction, or eps inside the square root, is rejected" <| fun () ->
            let c =
                { Lrs = [| 1e-2f; 1e-2f |]; Beta1 = 0.9f; Beta2 = 0.999f; Eps = 1e-2f; Sizes = [| 5 |]
                  Initial = [| 0.5f; -1.0f; 0.25f; 2.0f; -0.75f |]
                  Grads = [| [| 0.1f; -0.2f; 0.05f; 0.3f; -0.15f |]; [| 0.12f; -0.1f; 0.02f; 0.25f; -0.2f |] |] }
            let engine = runAdam c
            Expect.isEmpty (adamMismatches c engine (reference c)) "adamMismatches c engine (reference c)"
            // Variants of the rule a wrong implementation might use, in double.
            let variant (denominator: float -> float -> float) (noBiasCorrection: bool) =
                let p = Array.map float c.Initial
                let m = Array.zeroCreate p.Length
                let v = Array.zeroCreate p.Length
                let moved = Array.zeroCreate p.Length
                for t in 1 .. c.Grads.Length do
                    for i in 0 .. p.Length - 1 do
                        let g = float (c.Grads[t - 1][i])
                        m[i] <- 0.9 * m[i] + 0.1 * g
                        v[i] <- 0.999 * v[i] + 0.001 * g * g
                        let bc1, bc2 = (if noBiasCorrection then 1.0, 1.0 else 1.0 - 0.9 ** float t, 1.0 - 0.999 ** float t)
                        let update = 1e-2 * (m[i] / bc1) / denominator (v[i] / bc2) (float c.Eps)
                        p[i] <- p[i] - update
                        moved[i] <- moved[i] + abs update
                p, moved
            let noCorrection = variant (fun vHat eps -> sqrt vHat + eps) true
            let epsInside = variant (fun vHat eps -> sqrt (vHat + eps)) false
            Expect.isNonEmpty (adamMismatches c engine noCorrection) ("without bias correction")
            Expect.isNonEmpty (adamMismatches c engine epsInside) ("eps inside the square root")

        testCase "Adam steps on gradients from Backward, and ZeroGrad clears them" <| fun () ->
            // Gradients reach the optimizer's shared buffer through Backward (the parameters were rebound).
            let w = Tensor.Parameter([| 1.0f; -2.0f; 3.0f |], 3)
            let b = Tensor.Parameter([| 0.5f |], 1)
            let adam = Adam([| w; b |], 0.1f)
            Expect.equal adam.Size 4 "adam.Size"
            let c = Tensor.FromArray([| 2.0f; -1.0f; 0.5f |], 3)
            let loss () = Tensor.Add(Tensor.Mul(w, c).Sum(), Tensor.Mul(b, b).Sum())
            loss().Backward()
            Expect.equal (adam.Gradients.ToArray()) ([| 2.0f; -1.0f; 0.5f; 1.0f |]) "adam.Gradients.ToArray()"
            // Backward accumulates; ZeroGrad clears every gradient (through the views too).
            loss().Backward()
            Expect.equal (w.Grad.ToArray()) ([| 4.0f; -2.0f; 1.0f |]) "w.Grad.ToArray()"
            adam.ZeroGrad()
            Expect.allEqual (adam.Gradients.ToArray()) 0.0f "adam.Gradients.ToArray()"
            Expect.allEqual (w.Grad.ToArray()) 0.0f "w.Grad.ToArray()"
            Expect.allEqual (b.Grad.ToArray()) 0.0f "b.Grad.ToArray()"
            loss().Backward()
            adam.Step()
            // First step: m^ = g, v^ = g^2, so every parameter moves by lr * g / (|g| + eps) ~ lr sign(g).
            let expected = [| 1.0 - 0.1; -2.0 + 0.1; 3.0 - 0.1; 0.5 - 0.1 |]
            let got = Array.append (w.ToArray()) (b.ToArray()) |> Array.map float
            withinEach (float (1e-6)) got expected "got"

        testCase "Adam gives the same parameters for 1 and 2 threads" <| fun () ->
            // Above 2 x 65536 values the update splits across two workers, at an element that is not on an
            // 8-lane boundary for most sizes here: the scalar tail and the SIMD body must compute alike.
            let run threads n seed =
                let saved = Parallelism.Threads
                Parallelism.Threads <- threads
                try
                    let r = Random(seed + 0)
                    let p = Tensor.Parameter(Array.init n (fun _ -> float32 (r.NextDouble() - 0.5)), n)
                    let adam = Adam([| p |], 1e-2f, 0.9f, 0.999f, 1e-8f)
                    for _ in 1 .. 3 do
                        let g = p.Grad
                        for i in 0 .. n - 1 do
                            g[i] <- float32 (r.NextDouble() - 0.5)
                        adam.Step()
                    p.ToArray()
                finally
                    Parallelism.Threads <- saved
            for n in 131073 .. 131079 do
                for seed in 1 .. 6 do
                    let one, two = run 1 n seed, run 2 n seed
                    let differing = Seq.zip one two |> Seq.filter (fun (a, b) -> BitConverter.SingleToInt32Bits a <> BitConverter.SingleToInt32Bits b) |> Seq.length
                    Expect.equal differing 0 ($"{n} values, seed {seed}")

        testCase "Adam rejects bad hyperparameters and duplicate parameters" <| fun () ->
            let p = Tensor.Parameter([| 1.0f |], 1)
            catches<ArgumentOutOfRangeException> (fun () -> Adam([| p |], lr = -1.0f) |> ignore) |> ignore
            catches<ArgumentOutOfRangeException> (fun () -> Adam([| p |], beta1 = 1.0f) |> ignore) |> ignore
            catches<ArgumentOutOfRangeException> (fun () -> Adam([| p |], beta2 = 1.0f) |> ignore) |> ignore
            catches<ArgumentOutOfRangeException> (fun () -> Adam([| p |], eps = 0.0f) |> ignore) |> ignore
            catches<ArgumentException> (fun () -> Adam([| p; p |]) |> ignore) |> ignore
            catches<ArgumentException> (fun () -> Adam([| Tensor.FromArray([| 1.0f |], 1) |]) |> ignore) |> ignore

        testCase "Xavier normal init has mean 0 and variance 2 / (fanIn + fanOut) (chi-square bound, failure probability 1e-8)" <| fun () ->
            for (fanOut, fanIn), seed in List.zip [ (200, 784); (50, 200); (784, 200); (1, 5000); (400, 3); (30, 30) ] [ 1UL .. 6UL ] do
                let w = Init.XavierNormal(fanOut, fanIn, Rng seed)
                Expect.equal w.Length (fanOut * fanIn) "w.Length"
                let sigma2 = 2.0 / float (fanIn + fanOut)
                let mean, var = sampleStats w
                let lo, hi = varianceRatioBounds w.Length
                let what = $"Xavier({fanOut}, {fanIn}), seed {seed}"
                inRange lo hi (var / sigma2) ($"{what}: sample variance {var} vs {sigma2}")
                Expect.isLessThanOrEqual (abs mean) (SigmaBound * sqrt (sigma2 / float w.Length)) ($"{what}: mean {mean}")
                // The bound has teeth: LeCun's variance 1 / fanIn lies outside it wherever fanIn != fanOut.
                if fanIn <> fanOut then
                    Expect.isFalse (lo <= (var / (1.0 / float fanIn)) && (var / (1.0 / float fanIn)) <= hi) ($"{what}: indistinguishable from 1 / fanIn")

        testCase "Linear layers start with Xavier weights [out, in] and zero bias, reproducibly from the seed" <| fun () ->
            let layer = Linear(native, 300, 100, Rng 9UL)
            Expect.equal layer.Weight.Shape ([| 100; 300 |]) "layer.Weight.Shape"
            Expect.allEqual (layer.Bias.ToArray()) 0.0f "layer.Bias.ToArray()"
            let _, var = sampleStats (layer.Weight.ToArray())
            let lo, hi = varianceRatioBounds layer.Weight.Size
            inRange lo hi (var / (2.0 / 400.0)) "var / (2.0 / 400.0)"
            Expect.equal (Linear(native, 300, 100, Rng 9UL).Weight.ToArray()) (layer.Weight.ToArray()) "Linear(native, 300, 100, Rng 9UL).Weight.ToArray()"

        // ---------------------------------------------------------------------------------------------
        // 5. Dropout
        testCase "Dropout is the identity in evaluation mode and with p = 0" <| fun () ->
            let x = Tensor.FromArray([| 1.0f; -2.0f; 3.5f; 0.0f |], 2, 2)
            let d = Dropout(native, 0.5f)
            d.Eval()
            Expect.equal (d.Forward(x, Rng 1UL).ToArray()) (x.ToArray()) "d.Forward(x, Rng 1UL).ToArray()"
            let zero = Dropout(native, 0.0f)
            Expect.isTrue zero.Training "zero.Training"
            Expect.equal (zero.Forward(x, Rng 1UL).ToArray()) (x.ToArray()) "zero.Forward(x, Rng 1UL).ToArray()"
            catches<ArgumentOutOfRangeException> (fun () -> Dropout(native, 1.0f) |> ignore) |> ignore

        testCase "Dropout in training keeps the mean, with mask values in {0, 1/(1-p)} (6 sigma, failure probability 2e-9 per check)" <| fun () ->
            let n = 200_000
            for p, seed in [ 0.1f, 1UL; 0.5f, 2UL; 0.8f, 3UL ] do
                let d = Dropout(native, p)
                let x = Tensor.Parameter(Array.create n 1.0f, n)
                let y = d.Forward(x, Rng seed)
                let mask = y.ToArray()
                let keep = 1.0f / (1.0f - p)
                Expect.isTrue (mask |> Array.forall (fun v -> v = 0.0f || v = keep)) ($"p = {p}: mask values outside {{0, {keep}}}")
                // Each value has mean 1 and variance p / (1 - p); the fraction dropped is Binomial(n, p) / n.
                let mean = Array.sumBy float mask / float n
                let pd = float p
                Expect.isLessThanOrEqual (abs (mean - 1.0)) (SigmaBound * sqrt (pd / (1.0 - pd) / float n)) ($"p = {p}: mean {mean}")
                let dropped = float (mask |> Array.filter ((=) 0.0f) |> Array.length) / float n
                Expect.isLessThanOrEqual (abs (dropped - pd)) (SigmaBound * sqrt (pd * (1.0 - pd) / float n)) ($"p = {p}: dropped {dropped}")
                // The gradient flows through the mask: d sum(y) / dx = mask.
                y.Sum().Backward()
                Expect.equal (x.Grad.ToArray()) mask "x.Grad.ToArray()"
                // Values other than 1 are scaled by the same float32 factor.
                let v = Tensor.FromArray(Array.init 64 (fun i -> float32 i - 20.5f), 64)
                let out = d.Forward(v, Rng seed).ToArray()
                Expect.isTrue (Array.forall2 (fun (o: float32) (a: float32) -> o = 0.0f || o = a * keep) out (v.ToArray())) "Array.forall2 (fun (o: float32) (a: float32) -> o = 0.0f || o = a * keep) out (v.ToArray())"
            // Same seed and position, same mask; a fresh stream, another mask.
            let d = Dropout(native, 0.5f)
            let ones = Tensor.FromArray(Array.create 1000 1.0f, 1000)
            Expect.equal (d.Forward(ones, Rng 5UL).ToArray()) (d.Forward(ones, Rng 5UL).ToArray()) "d.Forward(ones, Rng 5UL).ToArray()"
            Expect.notEqual (d.Forward(ones, Rng 5UL).ToArray()) (d.Forward(ones, Rng 6UL).ToArray()) "d.Forward(ones, Rng 5UL).ToArray()"

        testCase "BatchNorm1d running statistics update as PyTorch's (momentum 0.1, unbiased variance)" <| fun () ->
            let d = 3
            let bn = BatchNorm1d(native, d)
            Expect.equal bn.Momentum 0.1f "bn.Momentum"
            Expect.allEqual (bn.RunningMean.ToArray()) 0.0f "bn.RunningMean.ToArray()"
            Expect.allEqual (bn.RunningVar.ToArray()) 1.0f "bn.RunningVar.ToArray()"
            let r = Random 3
            let mutable mean = Array.zeroCreate d
            let mutable var = Array.create d 1.0
            for n in [ 5; 2; 7 ] do
                let x = batchOf r n d
                bn.Forward(Tensor.FromArray(x, n, d)) |> ignore
                for j in 0 .. d - 1 do
                    let col = Array.init n (fun i -> float x[i * d + j])
                    let m = Array.average col
                    let unbiased = (col |> Array.sumBy (fun v -> (v - m) ** 2.0)) / float (n - 1)
                    mean[j] <- 0.9 * mean[j] + 0.1 * m
                    var[j] <- 0.9 * var[j] + 0.1 * unbiased
                let close (got: float32[]) (want: float[]) =
                    Array.forall2 (fun (g: float32) w -> abs (float g - w) <= BatchNormRelTol * (1.0 + abs w)) got want
                Expect.isTrue (close (bn.RunningMean.ToArray()) mean) ($"running mean {bn.RunningMean.ToArray()} vs %A{mean}")
                Expect.isTrue (close (bn.RunningVar.ToArray()) var) ($"running variance {bn.RunningVar.ToArray()} vs %A{var}")
            // Training needs two rows to estimate a variance.
            catches<ArgumentException> (fun () -> bn.Forward(Tensor.FromArray([| 1.0f; 2.0f; 3.0f |], 1, 3)) |> ignore) |> ignore

        testCase "BatchNorm1d in evaluation mode uses the running statistics: a row's output does not depend on the other rows" <| fun () ->
            let d = 4
            let bn = BatchNorm1d(native, d)
            let r = Random 11
            for _ in 1 .. 3 do
                bn.Forward(Tensor.FromArray(batchOf r 6 d, 6, d)) |> ignore
            let gamma = bn.Weight.Data
            let beta = bn.Bias.Data
            for j in 0 .. d - 1 do
                gamma[j] <- 0.5f + float32 j
                beta[j] <- -1.0f + 0.25f * float32 j
            bn.Eval()
            let mean, var = bn.RunningMean.ToArray(), bn.RunningVar.ToArray()
            let n = 5
            let x = batchOf r n d
            let y = bn.Forward(Tensor.FromArray(x, n, d)).ToArray()
            Expect.equal (bn.RunningMean.ToArray()) mean ("evaluation leaves the running mean alone")
            Expect.equal (bn.RunningVar.ToArray()) var ("evaluation leaves the running variance alone")
            for i in 0 .. n - 1 do
                let row = Array.sub x (i * d) d
                // Alone, or in a batch with other rows: bitwise the same output (a single row is fine in evaluation).
                Expect.equal (bn.Forward(Tensor.FromArray(row, 1, d)).ToArray()) (Array.sub y (i * d) d) ($"row {i}")
                let other = Array.append row (batchOf r 3 d)
                Expect.equal (Array.sub (bn.Forward(Tensor.FromArray(other, 4, d)).ToArray()) 0 d) (Array.sub y (i * d) d) "Array.sub (bn.Forward(Tensor.FromArray(other, 4, d)).ToArray()) 0 d"
                for j in 0 .. d - 1 do
                    let expected =
                        float gamma[j] * (float row[j] - float mean[j]) / sqrt (float var[j] + float bn.Eps) + float beta[j]
                    within (float (BatchNormRelTol * (1.0 + abs expected))) (float (float y[i * d + j])) (float (expected)) ($"row {i}, column {j}")

        // ---------------------------------------------------------------------------------------------
        // 7. Module names, reshape, shape errors, no-grad mode
        testCase "Mlp with batch norm names its state hidden.{i}.weight|bias and norm.{i}.weight|bias|running_mean|running_var" <| fun () ->
            let mlp = Mlp(native, 4, [| 3; 2 |], Activation.Softplus, true, Rng 1UL)
            let state = mlp.StateDict() |> Seq.map (fun t -> t.Name, t.Shape) |> List.ofSeq
            let expected =
                [ "hidden.0.weight", [| 3; 4 |]; "hidden.0.bias", [| 3 |]; "hidden.1.weight", [| 2; 3 |]; "hidden.1.bias", [| 2 |]
                  "norm.0.weight", [| 3 |]; "norm.0.bias", [| 3 |]; "norm.1.weight", [| 2 |]; "norm.1.bias", [| 2 |]
                  "norm.0.running_mean", [| 3 |]; "norm.0.running_var", [| 3 |]; "norm.1.running_mean", [| 2 |]; "norm.1.running_var", [| 2 |] ]
            Expect.equal state expected "state"
            // Only weights and biases are trainable; the running statistics are buffers.
            Expect.equal (mlp.NamedParameters() |> Seq.map (fun struct (name, _) -> name) |> List.ofSeq) (List.map fst expected |> List.take 8) "mlp.NamedParameters() |> Seq.map (fun struct (name, _) -> name) |> List.ofSeq"
            Expect.equal (mlp.ParameterCount()) (3L * 4L + 3L + 2L * 3L + 2L + 2L * 3L + 2L * 2L) "mlp.ParameterCount()"
            // Without batch norm: only the hidden layers. The state is a copy, not a view.
            let plain = Mlp(native, 4, [| 3 |], Activation.Tanh, false, Rng 1UL)
            Expect.equal (plain.StateDict() |> Seq.map (fun t -> t.Name) |> List.ofSeq) ([ "hidden.0.weight"; "hidden.0.bias" ]) "plain.StateDict() |> Seq.map (fun t -> t.Name) |> List.ofSeq"
            let copy = (Seq.head (plain.StateDict())).Data
            copy[0] <- 1e6f
            Expect.notEqual ((Seq.head (plain.StateDict())).Data[0]) 1e6f "(Seq.head (plain.StateDict())).Data[0]"

        testCase "Train and Eval switch every submodule" <| fun () ->
            let mlp = Mlp(native, 4, [| 3; 2 |], Activation.Relu, true, Rng 1UL)
            let x = Tensor.FromArray(Array.init 8 float32, 2, 4)
            mlp.Eval()
            Expect.isFalse mlp.Training "mlp.Training"
            let before = mlp.StateDict() |> Seq.filter (fun t -> t.Name.Contains "running") |> Seq.map (fun t -> t.Data) |> List.ofSeq
            mlp.Forward(x) |> ignore
            let after = mlp.StateDict() |> Seq.filter (fun t -> t.Name.Contains "running") |> Seq.map (fun t -> t.Data) |> List.ofSeq
            Expect.equal after before ("evaluation must not touch the running statistics of any norm layer")
            mlp.Train()
            mlp.Forward(x) |> ignore
            let trained = mlp.StateDict() |> Seq.filter (fun t -> t.Name.Contains "running") |> Seq.map (fun t -> t.Data) |> List.ofSeq
            Expect.notEqual trained before "trained"

        testCase "Reshape shares the values, infers -1, and keeps a separate gradient" <| fun () ->
            let data = [| 1.0f; 2.0f; 3.0f; 4.0f; 5.0f; 6.0f |]
            let x = Tensor.FromArray(data, 2, 3)
            let r = x.Reshape(3, 2)
            Expect.equal r.Shape ([| 3; 2 |]) "r.Shape"
            data[0] <- 42.0f
            Expect.equal (r.Data[0]) 42.0f ("a write to the source shows through the reshaped tensor")
            r.Data[5] <- -7.0f
            Expect.equal (x.Data[5]) -7.0f ("and the other way round")
            Expect.equal (x.Reshape(-1).Shape) ([| 6 |]) "x.Reshape(-1).Shape"
            Expect.equal (x.Reshape(3, -1).Shape) ([| 3; 2 |]) "x.Reshape(3, -1).Shape"
            Expect.equal (x.Reshape(1, -1, 3).Shape) ([| 1; 2; 3 |]) "x.Reshape(1, -1, 3).Shape"
            let p = Tensor.Parameter([| 1.0f; 2.0f; 3.0f; 4.0f |], 2, 2)
            let q = p.Reshape(4)
            Tensor.Mul(q, Tensor.FromArray([| 1.0f; 2.0f; 3.0f; 4.0f |], 4)).Sum().Backward()
            Expect.equal (p.Grad.ToArray()) ([| 1.0f; 2.0f; 3.0f; 4.0f |]) "p.Grad.ToArray()"
            Expect.isFalse q.IsLeaf "q.IsLeaf"

        testCase "shape errors raise ArgumentException naming both shapes" <| fun () ->
            let t (dims: int list) = Tensor.Zeros(Array.ofList dims)
            shapeError [ "[2, 3]"; "[2]" ] (fun () -> Tensor.Add(t [ 2; 3 ], t [ 2 ]) |> ignore)
            shapeError [ "[3, 2]"; "[2, 3]" ] (fun () -> Tensor.Mul(t [ 3; 2 ], t [ 2; 3 ]) |> ignore)
            shapeError [ "[2, 4]"; "[5, 3]" ] (fun () -> Tensor.Div(t [ 2; 4 ], t [ 5; 3 ]) |> ignore)
            shapeError [ "[2, 3]"; "[4, 5]" ] (fun () -> Tensor.Linear(t [ 2; 3 ], t [ 4; 5 ], null) |> ignore)
            shapeError [ "[3]"; "[4, 5]" ] (fun () -> Tensor.Linear(t [ 2; 5 ], t [ 4; 5 ], t [ 3 ]) |> ignore)
            shapeError [ "[2, 4]"; "[3, 2, 3]" ] (fun () -> Tensor.BernoulliLogLikelihood(t [ 3; 2; 3 ], t [ 2; 4 ]) |> ignore)
            shapeError [ "[2]"; "[4, 3]" ] (fun () -> Tensor.BatchNorm(t [ 4; 3 ], t [ 2 ], t [ 3 ], t [ 3 ], t [ 3 ], true, 0.1f, 1e-5f) |> ignore)
            shapeError [ "[2, 3]"; "[4, 2]" ] (fun () -> (t [ 2; 3 ]).Reshape(4, 2) |> ignore)
            shapeError [ "[2, 3]"; "[2, 4]" ] (fun () -> Tensor.ConcatRows([| t [ 2; 3 ]; t [ 2; 4 ] |]) |> ignore)
            shapeError [ "[2, 3]" ] (fun () -> (t [ 2; 3 ]).Sum(2) |> ignore)
            shapeError [ "[2, 3]" ] (fun () -> (t [ 2; 3 ]).LogSumExp(-3) |> ignore)
            shapeError [ "[2, 2]" ] (fun () -> Tensor.FromArray(Array.zeroCreate 3, 2, 2) |> ignore)

        property Seed 100 "binary ops on shapes that do not broadcast raise ArgumentException naming both" <| fun () ->
            let genShape = Gen.choose (0, 3) |> Gen.bind (fun r -> Gen.arrayOfLength r (Gen.choose (1, 4)))
            let isSuffix (small: int[]) (big: int[]) =
                small.Length <= big.Length && Array.sub big (big.Length - small.Length) small.Length = small
            let arb =
                Gen.zip genShape genShape
                |> Gen.filter (fun (a, b) -> not (isSuffix a b || isSuffix b a))
                |> Arb.fromGen
            Prop.forAll arb (fun (a, b) ->
                let e = catches<ArgumentException> (fun () -> Tensor.Sub(Tensor.Zeros a, Tensor.Zeros b) |> ignore)
                (e.Message.Contains(Tensor.ShapeString a) && e.Message.Contains(Tensor.ShapeString b))
                |> Prop.label e.Message)

        testCase "no-grad mode records nothing and nests" <| fun () ->
            let p = Tensor.Parameter([| 1.0f; 2.0f |], 2)
            do
                use _ = Autograd.NoGrad()
                Expect.isFalse Autograd.Enabled "Autograd.Enabled"
                do
                    use _ = Autograd.NoGrad()
                    Expect.isFalse (p.Exp().RequiresGrad) "p.Exp().RequiresGrad"
                Expect.isFalse Autograd.Enabled ("the outer scope is still active")
                let y = Tensor.Mul(p, p).Sum()
                Expect.isFalse y.RequiresGrad "y.RequiresGrad"
                catches<InvalidOperationException> (fun () -> y.Backward()) |> ignore
            Expect.isTrue Autograd.Enabled "Autograd.Enabled"
            let y = Tensor.Mul(p, p).Sum()
            Expect.isTrue y.RequiresGrad "y.RequiresGrad"
            y.Backward()
            Expect.equal (p.Grad.ToArray()) ([| 2.0f; 4.0f |]) "p.Grad.ToArray()"
            // Backward needs a one-element result.
            catches<InvalidOperationException> (fun () -> Tensor.Mul(p, p).Backward()) |> ignore

        testCase "a second backward pass through the same graph is refused, a fresh forward pass is not" <| fun () ->
            let p = Tensor.Parameter([| 1.5f; -0.5f |], 2)
            let y = Tensor.Mul(p, p).Exp().Sum()
            y.Backward()
            let once = p.Grad.ToArray()
            let e = catches<InvalidOperationException> (fun () -> y.Backward())
            Expect.stringContains e.Message ("already been differentiated") "e.Message"
            Expect.equal (p.Grad.ToArray()) once ("the refused pass added nothing")
            // Recomputing the forward pass accumulates a second, equal contribution.
            Tensor.Mul(p, p).Exp().Sum().Backward()
            Expect.equal (p.Grad.ToArray()) (once |> Array.map (fun g -> 2.0f * g)) "p.Grad.ToArray()"
    ]
