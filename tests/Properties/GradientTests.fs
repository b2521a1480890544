module VaeResearch.Properties.GradientTests

// Gradient checks for every op of the engine (src/Core.CSharp/Engine/Ops) and for a small composed
// network trained on the IWAE bound, after tinygrad's and DiffSharp's test suites:
//   1. the harness: each op's forward is written again here in double precision (module Ref, from the
//      op's definition, sharing no code with the engine); the objective sum(w * op(inputs)), with a
//      fixed random weighting w (|w| in [0.5, 1.5], random signs, so every output element matters), is
//      differentiated by central differences in double and compared element by element with the
//      engine's analytic gradient of the same objective; the engine's forward is compared too;
//   2. one property per op (elementwise maps, Add/Sub/Mul/Div, Linear, reductions, LogSumExp,
//      BernoulliLogLikelihood, BatchNorm, Reshape, SelectRows, ConcatRows) and one for a small VAE on the
//      IWAE bound, over FsCheck-generated shapes (dims 1..6) and values, covering every broadcasting
//      form of the binary ops and every axis of the reductions;
//   3. negative controls: deliberately wrong gradients (right forward, wrong backward; a reference of
//      another op; a single perturbed or NaN component) must be REJECTED by the same checker;
//   4. forward values and gradients are bitwise the same for 1 and 2 threads (tensors large enough for
//      the kernels to split) and inside or outside a Workspace (whose pool is first filled with NaN).
// Every property replays the fixed FsCheck seed below; a failing case prints as a Case record and
// belongs in a regression test once fixed.

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open VaeResearch.Engine
open VaeResearch.TestSupport

/// FsCheck (seed, gamma) every property replays, so each run generates the same cases.
let private Seed = (20250612UL, 104729UL)

// ---------------------------------------------------------------------------------------------
// Tolerances

/// Central-difference step, relative to the input: h = FdStep * max(1, |x|). In double the truncation
/// error is ~h^2 |f'''| / 6 ~ 1e-12 and the rounding error ~1e-16 |objective| / h ~ 1e-10 |objective|,
/// both far below the float32 error of the engine's gradient that GradRelTol allows.
let FdStep = 1e-6

/// Relative part of the gradient tolerance. The engine computes in float32 (u = 6e-8); the ops here
/// chain at most ~20 roundings on O(1) values (the composed network), so agreement is ~1e-6. The worst
/// case seen over all properties is 3 % of the tolerance (LogSumExp of inputs near 60, whose rounded
/// result enters the softmax). A wrong gradient is off by O(1) (a factor, a sign, a missed term or
/// path; see the negative controls), far outside.
let GradRelTol = 1e-4

/// Absolute part of the gradient tolerance, per unit of the input's gradient scale
/// max(1, max_i |numeric_i|): components that cancel to ~0 keep the float32 error of the terms
/// that cancelled, which is relative to that scale, not to the component.
let GradAbsTol = 1e-5

/// The engine's forward values must agree with the reference to this relative error ...
let ForwardRelTol = 1e-5

/// ... plus this much per unit of max(1, max|output|, max|input|) (cancellation, as for GradAbsTol).
let ForwardAbsTol = 1e-5

// ---------------------------------------------------------------------------------------------
// The reference side: double-precision tensors and ops

/// A double-precision tensor of the reference side: values in C order and their shape.
type Arr = { Shape: int[]; Values: float[] }

/// Number of elements of a shape (1 for the scalar shape []).
let shapeSize (shape: int[]) = Array.fold (*) 1 shape

/// The ops again, in double precision, from their definitions (not from the engine's code).
[<RequireQualifiedAccess>]
module Ref =
    let map (f: float -> float) (x: Arr) = { Shape = Array.copy x.Shape; Values = Array.map f x.Values }

    /// log(1 + u) for u >= 0: the alternating series for small u (four terms: relative error < u^4 / 5),
    /// so that softplus of very negative inputs keeps its relative precision.
    let log1p (u: float) =
        if u < 1e-4 then u * (1.0 - u * (0.5 - u * (1.0 / 3.0 - u * 0.25))) else log (1.0 + u)

    /// log(1 + e^x), split at 0 so that e^x never overflows.
    let softplus (x: float) = if x > 0.0 then x + log1p (exp -x) else log1p (exp x)

    /// The logistic function through the identity sigmoid(x) = (1 + tanh(x / 2)) / 2.
    let sigmoid (x: float) = 0.5 * (1.0 + tanh (0.5 * x))

    /// Elementwise f(a, b) under suffix broadcasting: the operand of higher rank gives the output's
    /// shape, the other one (a suffix of it) repeats over the leading dimensions.
    let broadcast (f: float -> float -> float) (a: Arr) (b: Arr) =
        let aBig = a.Shape.Length >= b.Shape.Length
        let big = if aBig then a else b
        let m = shapeSize (if aBig then b.Shape else a.Shape)
        { Shape = Array.copy big.Shape
          Values =
            Array.init big.Values.Length (fun i ->
                let ai = if aBig then i else i % m
                let bi = if aBig then i % m else i
                f a.Values[ai] b.Values[bi]) }

    /// y[..., o] = sum_i x[..., i] w[o, i] + b[o].
    let linear (x: Arr) (w: Arr) (b: Arr option) =
        let outDim, inDim = w.Shape[0], w.Shape[1]
        let rows = x.Values.Length / inDim
        { Shape = Array.append (Array.sub x.Shape 0 (x.Shape.Length - 1)) [| outDim |]
          Values =
            Array.init (rows * outDim) (fun idx ->
                let r, o = idx / outDim, idx % outDim
                let mutable s = match b with Some b -> b.Values[o] | None -> 0.0
                for i in 0 .. inDim - 1 do
                    s <- s + x.Values[r * inDim + i] * w.Values[o * inDim + i]
                s) }

    /// Applies reduce to every line of x along axis (negative counts from the end); the axis goes.
    let reduceAxis (reduce: float[] -> float) (x: Arr) (axis: int) =
        let a = if axis < 0 then axis + x.Shape.Length else axis
        let outer = shapeSize (Array.sub x.Shape 0 a)
        let n = x.Shape[a]
        let inner = shapeSize (Array.sub x.Shape (a + 1) (x.Shape.Length - a - 1))
        { Shape = Array.removeAt a x.Shape
          Values =
            Array.init (outer * inner) (fun r ->
                let p, i = r / inner, r % inner
                reduce (Array.init n (fun j -> x.Values[(p * n + j) * inner + i]))) }

    /// log sum_j e^(v_j), shifted by the maximum; all -inf gives -inf, any +inf gives +inf.
    let logSumExp (v: float[]) =
        let m = Array.max v
        if Double.IsInfinity m then m else m + log (Array.sumBy (fun x -> exp (x - m)) v)

    let scalar (v: float) = { Shape = [||]; Values = [| v |] }

    /// Bernoulli log-likelihood written as the negative cross-entropy x log s + (1 - x) log(1 - s) with
    /// s = sigmoid(l), log s = -softplus(-l) and log(1 - s) = -softplus(l); rows of logits [..., n, d]
    /// are matched with rows of x [n, d] cyclically.
    let bernoulliLogLikelihood (logits: Arr) (x: Arr) =
        let n, d = x.Shape[0], x.Shape[1]
        { Shape = Array.sub logits.Shape 0 (logits.Shape.Length - 1)
          Values =
            Array.init (logits.Values.Length / d) (fun r ->
                let mutable s = 0.0
                for j in 0 .. d - 1 do
                    let l = logits.Values[r * d + j]
                    let xv = x.Values[(r % n) * d + j]
                    s <- s - xv * softplus -l - (1.0 - xv) * softplus l
                s) }

    /// gamma (x - mean) / sqrt(var + eps) + beta per column of x [..., d]: with the batch mean and
    /// biased variance (training, stats = None) or with given statistics (evaluation).
    let batchNorm (x: Arr) (gamma: Arr) (beta: Arr) (stats: (float[] * float[]) option) (eps: float) =
        let d = x.Shape[x.Shape.Length - 1]
        let n = x.Values.Length / d
        let column j = Array.init n (fun r -> x.Values[r * d + j])
        let mean, var =
            match stats with
            | Some s -> s
            | None ->
                let mean = Array.init d (fun j -> Array.average (column j))
                mean, Array.init d (fun j -> column j |> Array.averageBy (fun v -> (v - mean[j]) ** 2.0))
        { Shape = Array.copy x.Shape
          Values =
            Array.init (n * d) (fun idx ->
                let j = idx % d
                gamma.Values[j] * (x.Values[idx] - mean[j]) / sqrt (var[j] + eps) + beta.Values[j]) }

    /// The negative IWAE bound -mean_i L_k(x_i) of a VAE with one softplus hidden layer in the encoder
    /// and in the decoder and a Bernoulli decoder, for fixed noise eps [k, n, D]; Burda et al. (2015)
    /// eq. (8): L_k(x) = log (1/k) sum_s p(x, z_s) / q(z_s | x), z_s = mu + eps_s exp(logvar / 2).
    /// The log densities are written out in full, 2 pi terms included, as densities of z.
    let iwaeLoss (p: Arr[]) =
        let x, eps = p[0], p[1]
        let h = linear x p[2] (Some p[3]) |> map softplus
        let mu = linear h p[4] (Some p[5])
        let lv = linear h p[6] (Some p[7])
        let k, n, dz = eps.Shape[0], eps.Shape[1], eps.Shape[2]
        let z =
            { Shape = [| k; n; dz |]
              Values =
                Array.init (k * n * dz) (fun idx ->
                    let ij = idx % (n * dz)
                    mu.Values[ij] + eps.Values[idx] * exp (0.5 * lv.Values[ij])) }
        let logits = linear (linear z p[8] (Some p[9]) |> map softplus) p[10] (Some p[11])
        let logPx = bernoulliLogLikelihood logits x
        let log2Pi = log (2.0 * Math.PI)
        let logW =
            Array.init (k * n) (fun si ->
                let i = si % n
                let mutable logP = 0.0
                let mutable logQ = 0.0
                for j in 0 .. dz - 1 do
                    let zj = z.Values[si * dz + j]
                    let m = mu.Values[i * dz + j]
                    let logVar = lv.Values[i * dz + j]
                    logP <- logP - 0.5 * (log2Pi + zj * zj)
                    logQ <- logQ - 0.5 * (log2Pi + logVar + (zj - m) * (zj - m) / exp logVar)
                logPx.Values[si] + logP - logQ)
        let bounds = Array.init n (fun i -> logSumExp (Array.init k (fun s -> logW[s * n + i])) - log (float k))
        scalar -(Array.average bounds)

// ---------------------------------------------------------------------------------------------
// The harness

/// One input of an op: its values (float32, as the engine holds them) and whether it is a trainable
/// leaf whose gradient is checked, or a constant.
type Input = { Name: string; Dims: int[]; Data: float32[]; NeedsGrad: bool }

/// A generated check: the op's inputs, and the seed of the weighting w of the objective sum(w * y).
type Case = { Inputs: Input[]; WeightSeed: int }

let input name dims data needsGrad = { Name = name; Dims = dims; Data = data; NeedsGrad = needsGrad }

/// What the engine computed: the output and, per input, the gradient of sum(w * output) (None for constants).
type EngineRun = { OutShape: int[]; Output: float32[]; Weights: float32[]; Grads: float32[] option[] }

/// |w| in [0.5, 1.5] with random signs: no output element is weighted (nearly) zero.
let weightsFor (seed: int) (n: int) =
    let r = Random seed
    Array.init n (fun _ -> float32 ((if r.Next 2 = 0 then -1.0 else 1.0) * (0.5 + r.NextDouble())))

/// Runs op on fresh tensors made from the case (parameters for the inputs that need a gradient), then
/// backward from sum(w * y); copies everything out, so it is safe inside a Workspace.
let runEngine (op: Tensor[] -> Tensor) (case: Case) =
    let tensors =
        case.Inputs
        |> Array.map (fun i ->
            if i.NeedsGrad then Tensor.Parameter(Array.copy i.Data, i.Dims) else Tensor.FromArray(Array.copy i.Data, i.Dims))
    let y = op tensors
    let w = weightsFor case.WeightSeed y.Size
    Tensor.Mul(y, Tensor.FromArray(w, y.Shape)).Sum().Backward()
    { OutShape = y.Shape
      Output = y.ToArray()
      Weights = w
      Grads = Array.map2 (fun (i: Input) (t: Tensor) -> if i.NeedsGrad then Some(t.Grad.ToArray()) else None) case.Inputs tensors }

/// d objective / d args[j] by central differences in double, one element at a time.
let numericGradient (objective: Arr[] -> float) (args: Arr[]) (j: int) =
    let v = args[j].Values
    Array.init v.Length (fun i ->
        let x = v[i]
        let h = FdStep * max 1.0 (abs x)
        let xp, xm = x + h, x - h
        v[i] <- xp
        let fp = objective args
        v[i] <- xm
        let fm = objective args
        v[i] <- x
        (fp - fm) / (xp - xm))

/// The checker's verdict on one case.
type Report =
    { ForwardOk: bool
      GradientOk: bool
      /// The largest |error| / allowed over all gradient components (> 1 means rejected; NaN counts as infinite).
      WorstGradientRatio: float
      Details: string }
    member r.Passed = r.ForwardOk && r.GradientOk

/// Element-wise comparison of an analytic gradient with the numeric one:
/// |a - n| <= GradAbsTol * max(1, max|n|) + GradRelTol * |n| for every element. Returns the worst
/// ratio |a - n| / allowed and a description of the worst element.
let compareGradient (name: string) (analytic: float[]) (numeric: float[]) =
    let scale = numeric |> Array.fold (fun m v -> max m (abs v)) 1.0
    let mutable worst, at = 0.0, -1
    for i in 0 .. numeric.Length - 1 do
        let allowed = GradAbsTol * scale + GradRelTol * abs numeric[i]
        let err = abs (analytic[i] - numeric[i])
        let ratio = if Double.IsNaN err then Double.PositiveInfinity else err / allowed
        if ratio > worst || at < 0 then
            worst <- ratio
            at <- i
    let detail =
        if at < 0 then $"d/d{name}: empty"
        else $"d/d{name}: worst element {at}: analytic {analytic[at]:R}, numeric {numeric[at]:R}, {worst:F3} x the tolerance"
    worst, detail

/// Engine forward against the reference: same shape, and each value within
/// ForwardAbsTol * max(1, max|output|, max|input|) + ForwardRelTol * |reference|.
let private compareForward (run: EngineRun) (expected: Arr) (case: Case) =
    if run.OutShape <> expected.Shape then
        false, $"forward: engine shape {Tensor.ShapeString(run.OutShape)}, reference shape {Tensor.ShapeString(expected.Shape)}"
    else
        let maxAbs (xs: seq<float>) = Seq.fold (fun m v -> max m (abs v)) 1.0 xs
        let scale =
            max (maxAbs expected.Values) (case.Inputs |> Seq.collect (fun i -> i.Data) |> Seq.map float |> maxAbs)
        let bad =
            Array.zip (Array.map float run.Output) expected.Values
            |> Array.tryFindIndex (fun (e, r) -> not (abs (e - r) <= ForwardAbsTol * scale + ForwardRelTol * abs r))
        match bad with
        | None -> true, "forward ok"
        | Some i -> false, $"forward: element {i}: engine {run.Output[i]:R}, reference {expected.Values[i]:R}"

/// The full check of one case, with a hook that may tamper with the engine's gradient of each input
/// before the comparison (the negative controls use it; the real checks pass `untouched`).
let checkWith (tamper: Input -> float[] -> float[]) (op: Tensor[] -> Tensor) (reference: Arr[] -> Arr) (case: Case) =
    let run = runEngine op case
    let args () = case.Inputs |> Array.map (fun i -> { Shape = Array.copy i.Dims; Values = Array.map float i.Data })
    let expected = reference (args ())
    let forwardOk, forwardDetail = compareForward run expected case
    if run.OutShape <> expected.Shape then
        { ForwardOk = false; GradientOk = false; WorstGradientRatio = nan; Details = forwardDetail }
    else
        let w = Array.map float run.Weights
        let objective (a: Arr[]) = Array.fold2 (fun s wi yi -> s + wi * yi) 0.0 w (reference a).Values
        let a = args ()
        let results =
            [ for j in 0 .. case.Inputs.Length - 1 do
                  match run.Grads[j] with
                  | Some g ->
                      let i = case.Inputs[j]
                      yield compareGradient i.Name (tamper i (Array.map float g)) (numericGradient objective a j)
                  | None -> () ]
        let worst = results |> List.fold (fun m (r, _) -> if Double.IsNaN r then infinity else max m r) 0.0
        { ForwardOk = forwardOk
          GradientOk = worst <= 1.0
          WorstGradientRatio = worst
          Details = String.Join("; ", forwardDetail :: List.map snd results) }

let untouched (_: Input) (g: float[]) = g

/// The check every op property uses.
let gradCheck op reference case = checkWith untouched op reference case

/// The property form: passes when the checker accepts the case, labelled with the checker's details.
let private accepted op reference (case: Case) =
    let r = gradCheck op reference case
    r.Passed |> Prop.label r.Details

// ---------------------------------------------------------------------------------------------
// Generators (dims 1..6)

let private genDim = Gen.choose (1, 6)

let private genShape rank = Gen.arrayOfLength rank genDim

let private genSeed = Gen.choose (0, Int32.MaxValue)

/// Uniform on a grid of 2^20 points in [lo, hi].
let private genUniform (lo: float) (hi: float) =
    Gen.choose (0, 1 <<< 20) |> Gen.map (fun i -> float32 (lo + (hi - lo) * float i / float (1 <<< 20)))

/// Magnitude in [lo, hi] with a random sign (e.g. denominators, ReLU inputs away from the kink).
let private genSigned (lo: float) (hi: float) =
    Gen.map2 (fun (m: float32) s -> if s then m else -m) (genUniform lo hi) (Gen.elements [ true; false ])

let private genValues (g: Gen<float32>) (dims: int[]) = Gen.arrayOfLength (shapeSize dims) g

let private genInput name (g: Gen<float32>) needsGrad dims =
    genValues g dims |> Gen.map (fun data -> input name dims data needsGrad)

let private caseOf (inputs: Gen<Input[]>) =
    Gen.map2 (fun i s -> { Inputs = i; WeightSeed = s }) inputs genSeed

/// One input x of rank 0..3 (a scalar [] included) with values from g.
let private genUnary (g: Gen<float32>) =
    gen {
        let! rank = Gen.choose (0, 3)
        let! dims = genShape rank
        let! x = genInput "x" g true dims
        return [| x |]
    }
    |> caseOf

let private unaryProperty (g: Gen<float32>) (engine: Tensor -> Tensor) (reference: float -> float) =
    Prop.forAll (Arb.fromGen (genUnary g)) (accepted (fun t -> engine t[0]) (fun a -> Ref.map reference a[0]))

// ---------------------------------------------------------------------------------------------
// 2. Binary ops with suffix broadcasting

type BinaryOp =
    | Add
    | Sub
    | Mul
    | Div

let private binaryEngine op : Tensor[] -> Tensor =
    match op with
    | Add -> fun t -> Tensor.Add(t[0], t[1])
    | Sub -> fun t -> Tensor.Sub(t[0], t[1])
    | Mul -> fun t -> Tensor.Mul(t[0], t[1])
    | Div -> fun t -> Tensor.Div(t[0], t[1])

let private binaryReference op (a: Arr[]) =
    let f =
        match op with
        | Add -> (+)
        | Sub -> (-)
        | Mul -> (*)
        | Div -> (/)
    Ref.broadcast f a[0] a[1]

/// Every broadcasting form: a shape of rank 0..3 and a suffix of it (rank 0 = the scalar [] up to the
/// whole shape), the smaller operand on either side, and gradients for both operands or for one
/// (the other a constant, e.g. a mask). Denominators have |b| in [0.5, 3].
let private genBinary op =
    gen {
        let! rank = Gen.choose (0, 3)
        let! big = genShape rank
        let! smallRank = Gen.choose (0, rank)
        let small = Array.sub big (rank - smallRank) smallRank
        let! smallFirst = Gen.elements [ true; false ]
        let! grads = Gen.elements [ (true, true); (true, false); (false, true) ]
        let aDims, bDims = if smallFirst then small, big else big, small
        let! a = genInput "a" (genUniform -3.0 3.0) (fst grads) aDims
        let! b = genInput "b" (if op = Div then genSigned 0.5 3.0 else genUniform -3.0 3.0) (snd grads) bDims
        return [| a; b |]
    }
    |> caseOf

let private binaryProperty op =
    Prop.forAll (Arb.fromGen (genBinary op)) (fun case ->
        let a, b = case.Inputs[0], case.Inputs[1]
        accepted (binaryEngine op) (binaryReference op) case
        |> Prop.classify (a.Dims = b.Dims) "same shape"
        |> Prop.classify (a.Dims.Length < b.Dims.Length) "smaller on the left"
        |> Prop.classify (a.Dims.Length > b.Dims.Length) "smaller on the right"
        |> Prop.classify (a.Dims.Length = 0 || b.Dims.Length = 0) "a scalar []"
        |> Prop.classify (a.NeedsGrad && b.NeedsGrad) "both need gradients")

// ---------------------------------------------------------------------------------------------
// 3. Linear

/// x of rank 1..3 [..., in], W [out, in], b [out] or no bias; all inputs need gradients.
let private genLinear =
    gen {
        let! rank = Gen.choose (1, 3)
        let! lead = genShape (rank - 1)
        let! inDim = genDim
        let! outDim = genDim
        let! withBias = Gen.elements [ true; true; false ]
        let! x = genInput "x" (genUniform -2.0 2.0) true (Array.append lead [| inDim |])
        let! w = genInput "W" (genUniform -1.0 1.0) true [| outDim; inDim |]
        let! b = genInput "b" (genUniform -1.0 1.0) true [| outDim |]
        return if withBias then [| x; w; b |] else [| x; w |]
    }
    |> caseOf

let private linearEngine (t: Tensor[]) =
    let bias: Tensor | null = if t.Length > 2 then t[2] else null
    Tensor.Linear(t[0], t[1], bias)

let private linearReference (a: Arr[]) = Ref.linear a[0] a[1] (if a.Length > 2 then Some a[2] else None)

// ---------------------------------------------------------------------------------------------
// 4. Reductions

/// x of rank 1..3 and an axis of it, negative (from the end) half of the time.
let private genAxisCase (g: Gen<float32>) =
    gen {
        let! rank = Gen.choose (1, 3)
        let! dims = genShape rank
        let! axis = Gen.choose (0, rank - 1)
        let! fromEnd = Gen.elements [ true; false ]
        let! x = genInput "x" g true dims
        let! seed = genSeed
        return { Inputs = [| x |]; WeightSeed = seed }, (if fromEnd then axis - rank else axis)
    }

/// Epsilon of the batch-norm checks (BatchNorm1d's default).
let private BatchNormEps = 1e-5f

/// x [..., d] with at least 2 rows for training, gamma (|gamma| in [0.5, 1.5]) and beta needing
/// gradients; constant running statistics (mean in [-1, 1], variance in [0.5, 2]).
let private genBatchNorm training =
    gen {
        let! rank = if training then Gen.choose (2, 3) else Gen.choose (1, 3)
        let! dims0 = genShape rank
        let dims = if training && shapeSize dims0 / dims0[rank - 1] < 2 then Array.append [| 2 |] dims0 else dims0
        let d = dims[dims.Length - 1]
        let! x = genInput "x" (genUniform -3.0 3.0) true dims
        let! gamma = genInput "gamma" (genSigned 0.5 1.5) true [| d |]
        let! beta = genInput "beta" (genUniform -1.0 1.0) true [| d |]
        let! mean = genInput "running_mean" (genUniform -1.0 1.0) false [| d |]
        let! var = genInput "running_var" (genUniform 0.5 2.0) false [| d |]
        return [| x; gamma; beta; mean; var |]
    }
    // NOTE: a column whose values (nearly) coincide has a gradient ~ 1/std that float32 cannot resolve;
    // the spread is kept at std >= 0.25 (well-conditioned, as real activations are).
    |> Gen.filter (fun inputs ->
        let x = inputs[0]
        let d = x.Dims[x.Dims.Length - 1]
        let n = x.Data.Length / d
        not training
        || Seq.forall (fun j ->
            let col = Array.init n (fun r -> float x.Data[r * d + j])
            let m = Array.average col
            sqrt (Array.averageBy (fun v -> (v - m) ** 2.0) col) >= 0.25) [ 0 .. d - 1 ])
    |> caseOf

let private batchNormEngine training (t: Tensor[]) =
    Tensor.BatchNorm(t[0], t[1], t[2], t[3], t[4], training, 0.1f, BatchNormEps)

let private batchNormReference training (a: Arr[]) =
    Ref.batchNorm a[0] a[1] a[2] (if training then None else Some(a[3].Values, a[4].Values)) (float BatchNormEps)

// ---------------------------------------------------------------------------------------------
// 6. A composed network: encoder, reparameterization, decoder, IWAE bound

/// Parameters of a VAE with input size Din, one hidden layer of size H on each side and D latent units,
/// data x [n, Din] (binary or in [0, 1]) and noise eps [k, n, D]; all sizes 1..6.
let private genIwae =
    gen {
        let! n = genDim
        let! din = genDim
        let! hid = genDim
        let! dz = genDim
        let! k = genDim
        let! binary = Gen.elements [ true; false ]
        let! x = genInput "x" (if binary then Gen.elements [ 0.0f; 1.0f ] else genUniform 0.0 1.0) false [| n; din |]
        let! eps = genInput "eps" (genUniform -2.0 2.0) false [| k; n; dz |]
        let weight name o i = genInput name (genUniform -1.0 1.0) true [| o; i |]
        let bias name o = genInput name (genUniform -0.5 0.5) true [| o |]
        let! w1 = weight "encoder.hidden.weight" hid din
        let! b1 = bias "encoder.hidden.bias" hid
        let! wmu = weight "encoder.mu.weight" dz hid
        let! bmu = bias "encoder.mu.bias" dz
        let! wlv = weight "encoder.logvar.weight" dz hid
        let! blv = bias "encoder.logvar.bias" dz
        let! w2 = weight "decoder.hidden.weight" hid dz
        let! b2 = bias "decoder.hidden.bias" hid
        let! w3 = weight "decoder.logits.weight" din hid
        let! b3 = bias "decoder.logits.bias" din
        return [| x; eps; w1; b1; wmu; bmu; wlv; blv; w2; b2; w3; b3 |]
    }
    |> caseOf

/// The same network with the engine's ops (as the seed model composes them, but with fixed noise).
let iwaeEngine (t: Tensor[]) =
    let x, eps = t[0], t[1]
    let k = eps.Dim 0
    let h = Tensor.Linear(x, t[2], t[3]).Softplus()
    let mu = Tensor.Linear(h, t[4], t[5])
    let lv = Tensor.Linear(h, t[6], t[7])
    let z = eps * (lv * 0.5f).Exp() + mu
    let logits = Tensor.Linear(Tensor.Linear(z, t[8], t[9]).Softplus(), t[10], t[11])
    let logPx = Tensor.BernoulliLogLikelihood(logits, x)
    // log p(z) - log q(z|x) = -0.5 sum(z^2) + 0.5 sum(eps^2 + logvar): the 2 pi terms cancel.
    let logPz = z.Square().Sum(-1) * -0.5f
    let logQz = (eps.Square().Sum(-1) + lv.Sum(-1)) * -0.5f
    let bound = (logPx + logPz - logQz).LogSumExp(0) - MathF.Log(float32 k)
    -(bound.Mean())

// ---------------------------------------------------------------------------------------------
// 7. Negative controls: the checker must reject wrong gradients

/// y with the gradient multiplied by `factor` and the same forward: factor * y - (factor - 1) * stop(y).
let private withGradientTimes (factor: float32) (y: Tensor) = Tensor.Sub(y.Scale factor, y.Detach().Scale(factor - 1.0f))

/// Ops whose gradient is nowhere zero on the generated values, with their references.
let private nonzeroGradientOps: (string * (Tensor -> Tensor) * (float -> float)) list =
    [ "Exp", (fun x -> x.Exp()), exp
      "Softplus", (fun x -> x.Softplus()), Ref.softplus
      "Sigmoid", (fun x -> x.Sigmoid()), Ref.sigmoid
      "Tanh", (fun x -> x.Tanh()), tanh
      "Scale(1.5)", (fun x -> x.Scale 1.5f), (fun x -> 1.5 * x) ]

// ---------------------------------------------------------------------------------------------
// 8. Independence from the thread count and from workspaces

/// Every op on inputs built from shape [k, n, d] and a seed: (name, op, inputs). With k n d > 2 * 32768
/// the elementwise kernels split across two workers (Kernels.ParallelMin = 32768 elements per worker).
let private suite (k: int) (n: int) (d: int) (seed: int) =
    let r = Random seed
    let values lo hi len = Array.init len (fun _ -> float32 (lo + (hi - lo) * r.NextDouble()))
    let knd = [| k; n; d |]
    let size = k * n * d
    let x () = input "x" knd (values -3.0 3.0 size) true
    let wide () = input "x" knd (Array.init size (fun i -> if i % 7 = 0 then float32 (100 * (i % 3 - 1)) else float32 (r.NextDouble() * 12.0 - 6.0))) true
    let unary name (op: Tensor -> Tensor) inputs = name, (fun (t: Tensor[]) -> op t[0]), inputs
    let binary name op (second: Input) = name, binaryEngine op, [| x (); second |]
    let o = 1 + seed % 5
    [ unary "Exp" (fun t -> t.Exp()) [| x () |]
      unary "Log" (fun t -> t.Log()) [| input "x" knd (values 0.1 5.0 size) true |]
      unary "Softplus" (fun t -> t.Softplus()) [| wide () |]
      unary "Sigmoid" (fun t -> t.Sigmoid()) [| wide () |]
      unary "Tanh" (fun t -> t.Tanh()) [| wide () |]
      unary "Relu" (fun t -> t.Relu()) [| x () |]
      unary "Square" (fun t -> t.Square()) [| x () |]
      unary "Scale" (fun t -> t.Scale 0.37f) [| x () |]
      unary "AddScalar" (fun t -> t.AddScalar -1.25f) [| x () |]
      binary "Add [k,n,d] + [n,d]" Add (input "b" [| n; d |] (values -3.0 3.0 (n * d)) true)
      binary "Sub [k,n,d] - [d]" Sub (input "b" [| d |] (values -3.0 3.0 d) true)
      binary "Mul [k,n,d] * [k,n,d]" Mul (input "b" knd (values -3.0 3.0 size) true)
      binary "Div [k,n,d] / [n,d]" Div (input "b" [| n; d |] (values 0.5 3.0 (n * d)) true)
      binary "Mul [k,n,d] * [] (constant)" Mul (input "b" [||] [| 0.75f |] false)
      "Linear", linearEngine, [| x (); input "W" [| o; d |] (values -1.0 1.0 (o * d)) true; input "b" [| o |] (values -1.0 1.0 o) true |]
      "Linear without bias", linearEngine, [| x (); input "W" [| o; d |] (values -1.0 1.0 (o * d)) true |]
      unary "Sum(1)" (fun t -> t.Sum 1) [| x () |]
      unary "Mean(-1)" (fun t -> t.Mean -1) [| x () |]
      unary "Sum()" (fun t -> t.Sum()) [| x () |]
      unary "Mean()" (fun t -> t.Mean()) [| x () |]
      unary "LogSumExp(0)" (fun t -> t.LogSumExp 0) [| x () |]
      unary "LogSumExp(2)" (fun t -> t.LogSumExp 2) [| x () |]
      "BernoulliLogLikelihood", (fun t -> Tensor.BernoulliLogLikelihood(t[0], t[1])),
      [| wide (); input "data" [| n; d |] (Array.init (n * d) (fun _ -> if r.Next 2 = 0 then 0.0f else 1.0f)) false |]
      "BatchNorm (training)", batchNormEngine true,
      [| x (); input "gamma" [| d |] (values 0.5 1.5 d) true; input "beta" [| d |] (values -1.0 1.0 d) true
         input "running_mean" [| d |] (Array.zeroCreate d) false; input "running_var" [| d |] (Array.create d 1.0f) false |]
      "BatchNorm (evaluation)", batchNormEngine false,
      [| x (); input "gamma" [| d |] (values 0.5 1.5 d) true; input "beta" [| d |] (values -1.0 1.0 d) true
         input "running_mean" [| d |] (values -1.0 1.0 d) false; input "running_var" [| d |] (values 0.5 2.0 d) false |]
      unary "Reshape" (fun t -> t.Reshape(-1, d).Square()) [| x () |]
      unary "SelectRows" (fun t -> t.SelectRows(ReadOnlySpan<int> [| k - 1; 0; k - 1 |])) [| x () |]
      "ConcatRows", (fun t -> Tensor.ConcatRows t), [| x (); input "y" [| 2; n; d |] (values -3.0 3.0 (2 * n * d)) false; x () |]
      // The composed network: data [n, d], hidden 7, latent 3, noise [k, n, 3] (logits [k, n, d]).
      "IWAE network", iwaeEngine,
      [| input "x" [| n; d |] (Array.init (n * d) (fun _ -> if r.Next 2 = 0 then 0.0f else 1.0f)) false
         input "eps" [| k; n; 3 |] (values -2.0 2.0 (k * n * 3)) false
         for name, o, i in [ "W1", 7, d; "Wmu", 3, 7; "Wlv", 3, 7; "W2", 7, 3; "W3", d, 7 ] do
             input name [| o; i |] (values -0.5 0.5 (o * i)) true
             input (name + ".bias") [| o |] (values -0.5 0.5 o) true |] ]
    |> List.map (fun (name, op, inputs) -> name, op, { Inputs = inputs; WeightSeed = seed })

/// The forward values and the gradients of a run as raw bits (so -0 differs from 0 and NaN from NaN payloads).
let private bits (run: EngineRun) =
    Array.append [| Array.map BitConverter.SingleToInt32Bits run.Output |]
        (run.Grads |> Array.choose id |> Array.map (Array.map BitConverter.SingleToInt32Bits))

/// Runs f with Parallelism.Threads set to `threads`, restoring the setting afterwards.
let private withThreads threads (f: unit -> 'a) =
    let saved = Parallelism.Threads
    Parallelism.Threads <- threads
    try f () finally Parallelism.Threads <- saved

/// Parallelism.cs allows one exception to thread invariance: the summation order inside GEMM (OpenBLAS
/// partitions its loops by the thread count). Linear's outputs and gradients must then agree to this
/// relative error per unit of the array's largest magnitude: a k-term float32 dot product summed in
/// another order moves by ~sqrt(k) u sum|terms| ~ 1e-6 of it for the k <= 840 here (rows of dW).
let GemmOrderRelTol = 1e-4

/// The suite's ops that run a GEMM.
let private gemmBacked = set [ "Linear"; "Linear without bias"; "IWAE network" ]

/// Whether two runs agree: bitwise, or (for GEMM-backed ops) within GemmOrderRelTol.
let private sameRun (gemm: bool) (a: EngineRun) (b: EngineRun) =
    if not gemm then bits a = bits b
    else
        let arrays (r: EngineRun) = Array.append [| r.Output |] (Array.choose id r.Grads)
        Array.forall2
            (fun (x: float32[]) (y: float32[]) ->
                let scale = x |> Array.fold (fun m v -> max m (abs (float v))) 1e-30
                Array.forall2 (fun (u: float32) (v: float32) -> abs (float u - float v) <= GemmOrderRelTol * scale) x y)
            (arrays a) (arrays b)

/// Fills the workspace pool with NaN buffers of every length 1..maxLength (`copies` of each), so that
/// an op that reads a pooled buffer before writing it produces NaN.
let private poisonPool maxLength copies =
    use _ = Workspace.Begin()
    for length in 1 .. maxLength do
        for _ in 1 .. copies do
            Tensor.Empty(length).Data.Fill Single.NaN

/// Zeroes the poisoned buffers again (renting more than were poisoned), so later tests see no NaN.
let private cleanPool maxLength copies =
    use _ = Workspace.Begin()
    for length in 1 .. maxLength do
        for _ in 1 .. 2 * copies do
            Tensor.Empty(length).Data.Clear()

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Gradients" [

        // ---------------------------------------------------------------------------------------------
        // 1. Elementwise maps
        property Seed 40 "Exp: gradient matches central differences" <| fun () ->
            unaryProperty (genUniform -4.0 4.0) (fun x -> x.Exp()) exp

        property Seed 40 "Log of positive inputs: gradient matches central differences" <| fun () ->
            unaryProperty (genUniform 0.1 5.0) (fun x -> x.Log()) log

        property Seed 60 "Softplus, including |x| = 30 and 80: gradient matches central differences" <| fun () ->
            let g = Gen.frequency [ 3, genUniform -6.0 6.0; 1, Gen.elements [ 30.0f; -30.0f; 80.0f; -80.0f ] ]
            unaryProperty g (fun x -> x.Softplus()) Ref.softplus

        property Seed 40 "Sigmoid: gradient matches central differences" <| fun () ->
            unaryProperty (genUniform -8.0 8.0) (fun x -> x.Sigmoid()) Ref.sigmoid

        property Seed 40 "Tanh: gradient matches central differences" <| fun () ->
            unaryProperty (genUniform -4.0 4.0) (fun x -> x.Tanh()) tanh

        property Seed 40 "Relu away from the kink: gradient matches central differences" <| fun () ->
            // |x| >= 0.05 >> the finite-difference step, so no difference straddles 0.
            unaryProperty (genSigned 0.05 3.0) (fun x -> x.Relu()) (fun x -> max x 0.0)

        property Seed 40 "Square: gradient matches central differences" <| fun () ->
            unaryProperty (genUniform -3.0 3.0) (fun x -> x.Square()) (fun x -> x * x)

        property Seed 40 "Scale, AddScalar and Neg: gradients match central differences" <| fun () ->
            let arb = Arb.fromGen (Gen.zip3 (genUnary (genUniform -3.0 3.0)) (genUniform -3.0 3.0) (Gen.choose (0, 2)))
            Prop.forAll arb (fun (case, c, which) ->
                match which with
                | 0 -> accepted (fun t -> t[0].Scale c) (fun a -> Ref.map (fun x -> float c * x) a[0]) case
                | 1 -> accepted (fun t -> t[0].AddScalar c) (fun a -> Ref.map (fun x -> x + float c) a[0]) case
                | _ -> accepted (fun t -> t[0].Neg()) (fun a -> Ref.map (fun x -> -x) a[0]) case)

        property Seed 100 "Add with every broadcasting form: gradients match central differences" <| fun () ->
            binaryProperty Add

        property Seed 100 "Sub with every broadcasting form: gradients match central differences" <| fun () ->
            binaryProperty Sub

        property Seed 100 "Mul with every broadcasting form: gradients match central differences" <| fun () ->
            binaryProperty Mul

        property Seed 100 "Div with every broadcasting form: gradients match central differences" <| fun () ->
            binaryProperty Div

        testCase "regression: equal sizes, the smaller rank on the left ([n, d] with [1, n, d]) broadcasts" <| fun () ->
            // Binary.cs chose the larger operand by size alone, so with equal sizes it took [n, d] as the larger
            // and rejected [1, n, d] as not a suffix of it. Found by the properties above.
            for op in [ Add; Sub; Mul; Div ] do
                let case =
                    { Inputs =
                        [| input "a" [| 2; 3 |] [| 1.0f; -2.0f; 0.5f; 3.0f; -1.5f; 2.5f |] true
                           input "b" [| 1; 2; 3 |] [| 0.7f; 1.5f; -2.0f; 0.9f; -0.6f; 1.2f |] true |]
                      WeightSeed = 7 }
                let r = gradCheck (binaryEngine op) (binaryReference op) case
                Expect.isTrue r.Passed r.Details

        property Seed 40 "masking by a constant 0/1 tensor: gradient is the mask" <| fun () ->
            let arb =
                gen {
                    let! rank = Gen.choose (1, 3)
                    let! dims = genShape rank
                    let! smallRank = Gen.choose (1, rank)
                    let! x = genInput "x" (genUniform -3.0 3.0) true dims
                    let! mask = genInput "mask" (Gen.elements [ 0.0f; 1.0f ]) false (Array.sub dims (rank - smallRank) smallRank)
                    return [| x; mask |]
                }
                |> caseOf
                |> Arb.fromGen
            Prop.forAll arb (accepted (binaryEngine Mul) (binaryReference Mul))

        property Seed 40 "an input used twice accumulates the gradients of both uses" <| fun () ->
            // x * x + x / 2 - exp(x): the leaf receives four contributions.
            Prop.forAll (Arb.fromGen (genUnary (genUniform -2.0 2.0))) (fun case ->
                accepted
                    (fun t -> Tensor.Sub(Tensor.Add(Tensor.Mul(t[0], t[0]), t[0].Scale 0.5f), t[0].Exp()))
                    (fun a -> Ref.map (fun x -> x * x + 0.5 * x - exp x) a[0])
                    case)

        property Seed 80 "Linear with x of rank 1 to 3: gradients of x, W and b match central differences" <| fun () ->
            Prop.forAll (Arb.fromGen genLinear) (fun case ->
                accepted linearEngine linearReference case
                |> Prop.classify (case.Inputs[0].Dims.Length = 3) "x of rank 3"
                |> Prop.classify (case.Inputs.Length = 2) "no bias")

        property Seed 80 "Sum(axis) and Mean(axis) over every axis of rank 1 to 3: gradients match central differences" <| fun () ->
            Prop.forAll (Arb.fromGen (Gen.zip (genAxisCase (genUniform -3.0 3.0)) (Gen.elements [ true; false ]))) (fun ((case, axis), mean) ->
                if mean then accepted (fun t -> t[0].Mean axis) (fun a -> Ref.reduceAxis Array.average a[0] axis) case
                else accepted (fun t -> t[0].Sum axis) (fun a -> Ref.reduceAxis Array.sum a[0] axis) case)

        property Seed 40 "Sum() and Mean() of everything: gradients match central differences" <| fun () ->
            Prop.forAll (Arb.fromGen (Gen.zip (genUnary (genUniform -3.0 3.0)) (Gen.elements [ true; false ]))) (fun (case, mean) ->
                if mean then accepted (fun t -> t[0].Mean()) (fun a -> Ref.scalar (Array.average a[0].Values)) case
                else accepted (fun t -> t[0].Sum()) (fun a -> Ref.scalar (Array.sum a[0].Values)) case)

        property Seed 80 "LogSumExp over every axis: gradient matches central differences" <| fun () ->
            // Values in [-6, 6], sometimes shifted by +-60 (the shift must not cost precision).
            let g = Gen.zip (genAxisCase (genUniform -6.0 6.0)) (Gen.elements [ 0.0f; 0.0f; 60.0f; -60.0f ])
            Prop.forAll (Arb.fromGen g) (fun ((case0, axis), shift) ->
                let case = { case0 with Inputs = case0.Inputs |> Array.map (fun i -> { i with Data = Array.map ((+) shift) i.Data }) }
                accepted (fun t -> t[0].LogSumExp axis) (fun a -> Ref.reduceAxis Ref.logSumExp a[0] axis) case)

        // ---------------------------------------------------------------------------------------------
        // 5. Bernoulli log-likelihood, batch norm, reshape, row selection and concatenation
        property Seed 60 "BernoulliLogLikelihood of logits [k, n, d] and data [n, d] in [0, 1]: gradient matches central differences" <| fun () ->
            let arb =
                gen {
                    let! lead = Gen.choose (0, 2) |> Gen.bind genShape
                    let! n = genDim
                    let! d = genDim
                    let logitValue = Gen.frequency [ 4, genUniform -6.0 6.0; 1, Gen.elements [ 30.0f; -30.0f ] ]
                    let! logits = genInput "logits" logitValue true (Array.append lead [| n; d |])
                    // Binary data (the papers' case) or any value in [0, 1] (the cross-entropy).
                    let! binary = Gen.elements [ true; false ]
                    let! x = genInput "x" (if binary then Gen.elements [ 0.0f; 1.0f ] else genUniform 0.0 1.0) false [| n; d |]
                    return [| logits; x |]
                }
                |> caseOf
                |> Arb.fromGen
            Prop.forAll arb (accepted (fun t -> Tensor.BernoulliLogLikelihood(t[0], t[1])) (fun a -> Ref.bernoulliLogLikelihood a[0] a[1]))

        property Seed 60 "BatchNorm in training mode: gradients of x, gamma and beta match central differences" <| fun () ->
            Prop.forAll (Arb.fromGen (genBatchNorm true)) (accepted (batchNormEngine true) (batchNormReference true))

        property Seed 40 "BatchNorm in evaluation mode: gradients of x, gamma and beta match central differences" <| fun () ->
            Prop.forAll (Arb.fromGen (genBatchNorm false)) (accepted (batchNormEngine false) (batchNormReference false))

        property Seed 40 "Reshape: gradient matches central differences" <| fun () ->
            // Targets: flattened with -1, reversed dimensions, a leading 1, and [size, 1].
            let arb = Gen.zip (genUnary (genUniform -3.0 3.0)) (Gen.choose (0, 3)) |> Arb.fromGen
            Prop.forAll arb (fun (case, form) ->
                let dims = case.Inputs[0].Dims
                let target, resolved =
                    match form with
                    | 0 -> [| -1 |], [| shapeSize dims |]
                    | 1 -> Array.rev dims, Array.rev dims
                    | 2 -> Array.append [| 1 |] dims, Array.append [| 1 |] dims
                    | _ -> [| shapeSize dims; -1 |], [| shapeSize dims; 1 |]
                accepted (fun t -> t[0].Reshape target) (fun a -> { Shape = resolved; Values = Array.copy a[0].Values }) case)

        property Seed 40 "SelectRows with repeats: gradient matches central differences" <| fun () ->
            let arb =
                gen {
                    let! case = genUnary (genUniform -3.0 3.0) |> Gen.filter (fun c -> c.Inputs[0].Dims.Length >= 1)
                    let n = case.Inputs[0].Dims[0]
                    let! count = Gen.choose (1, 8)
                    let! rows = Gen.arrayOfLength count (Gen.choose (0, n - 1))
                    return case, rows
                }
                |> Arb.fromGen
            Prop.forAll arb (fun (case, rows) ->
                let reference (a: Arr[]) =
                    let x = a[0]
                    let width = x.Values.Length / x.Shape[0]
                    { Shape = Array.append [| rows.Length |] (Array.sub x.Shape 1 (x.Shape.Length - 1))
                      Values = rows |> Array.collect (fun r -> Array.sub x.Values (r * width) width) }
                accepted (fun t -> t[0].SelectRows(ReadOnlySpan<int> rows)) reference case)

        property Seed 40 "ConcatRows of 1 to 3 parts, some constant: gradients match central differences" <| fun () ->
            let arb =
                gen {
                    let! rank = Gen.choose (1, 3)
                    let! rest = genShape (rank - 1)
                    let! count = Gen.choose (1, 3)
                    let! firsts = Gen.arrayOfLength count (Gen.choose (1, 4))
                    let! grads = Gen.arrayOfLength count (Gen.elements [ true; true; false ]) |> Gen.filter (Array.exists id)
                    let! parts =
                        Array.zip firsts grads
                        |> Array.mapi (fun i (first, g) -> genInput $"part{i}" (genUniform -3.0 3.0) g (Array.append [| first |] rest))
                        |> Array.toList
                        |> Gen.sequenceToList
                    return Array.ofList parts
                }
                |> caseOf
                |> Arb.fromGen
            Prop.forAll arb (fun case ->
                let reference (a: Arr[]) =
                    { Shape = Array.append [| a |> Array.sumBy (fun p -> p.Shape[0]) |] (Array.sub a[0].Shape 1 (a[0].Shape.Length - 1))
                      Values = a |> Array.collect (fun p -> p.Values) }
                accepted (fun t -> Tensor.ConcatRows t) reference case)

        property Seed 60 "a small VAE on the IWAE bound: every parameter's gradient matches central differences" <| fun () ->
            Prop.forAll (Arb.fromGen genIwae) (accepted iwaeEngine Ref.iwaeLoss)

        property Seed 60 "negative control: a doubled or sign-flipped gradient with the right forward is rejected" <| fun () ->
            let arb = Gen.zip3 (genUnary (genUniform -3.0 3.0)) (Gen.elements nonzeroGradientOps) (Gen.elements [ 2.0f; -1.0f; 1.1f ]) |> Arb.fromGen
            Prop.forAll arb (fun (case, (name, op, reference), factor) ->
                let r = gradCheck (fun t -> withGradientTimes factor (op t[0])) (fun a -> Ref.map reference a[0]) case
                // The forward is right (so the gradient alone must fail the check) ...
                (r.ForwardOk && not r.GradientOk)
                |> Prop.label $"{name} with gradient x {factor}: {r.Details}")

        property Seed 60 "negative control: Linear with the bias gradient taken from one row only is rejected" <| fun () ->
            // A classic broadcasting bug: the bias gradient must sum over all rows; here only the first row's
            // gradient reaches it (the other rows see a constant copy of b). Needs at least 2 rows.
            let arb = genLinear |> Gen.filter (fun c -> c.Inputs.Length = 3 && c.Inputs[0].Data.Length / c.Inputs[0].Dims[c.Inputs[0].Dims.Length - 1] >= 2) |> Arb.fromGen
            Prop.forAll arb (fun case ->
                let wrong (t: Tensor[]) =
                    let y = Tensor.Linear(t[0], t[1], t[2].Detach())
                    let firstRowMask = Tensor.FromArray(Array.init y.Size (fun i -> if i < t[1].Dim 0 then 1.0f else 0.0f), y.Shape)
                    // y + mask * (b - stop(b)): forward unchanged, d/db only from the masked (first) row.
                    Tensor.Add(y, Tensor.Mul(firstRowMask, Tensor.Sub(t[2], t[2].Detach())))
                let r = gradCheck wrong linearReference case
                (r.ForwardOk && not r.GradientOk) |> Prop.label r.Details)

        property Seed 40 "negative control: the reference of a different op (Sum for Mean) is rejected" <| fun () ->
            let arb = genAxisCase (genUniform -3.0 3.0) |> Gen.filter (fun (c, axis) -> c.Inputs[0].Dims[(axis + c.Inputs[0].Dims.Length) % c.Inputs[0].Dims.Length] >= 2) |> Arb.fromGen
            Prop.forAll arb (fun (case, axis) ->
                let r = gradCheck (fun t -> t[0].Mean axis) (fun a -> Ref.reduceAxis Array.sum a[0] axis) case
                not r.Passed |> Prop.label r.Details)

        property Seed 40 "negative control: one component off by 1 percent, or NaN, is rejected" <| fun () ->
            // Sum(axis) has gradient w (|w| >= 0.5) everywhere, so 1% of any component is > 30x the tolerance
            // there; the checker must look at every component, not at a norm or a mean.
            let arb = Gen.zip3 (genAxisCase (genUniform -3.0 3.0)) (Gen.choose (0, Int32.MaxValue)) (Gen.elements [ true; false ]) |> Arb.fromGen
            Prop.forAll arb (fun ((case, axis), pick, useNaN) ->
                let tamper (_: Input) (g: float[]) =
                    let g = Array.copy g
                    let i = pick % g.Length
                    g[i] <- if useNaN then nan else g[i] * 1.01
                    g
                let right = gradCheck (fun t -> t[0].Sum axis) (fun a -> Ref.reduceAxis Array.sum a[0] axis) case
                let wrong = checkWith tamper (fun t -> t[0].Sum axis) (fun a -> Ref.reduceAxis Array.sum a[0] axis) case
                (right.Passed && wrong.ForwardOk && not wrong.GradientOk) |> Prop.label $"untampered: {right.Details}; tampered: {wrong.Details}")

        property Seed 20 "negative control: the IWAE network with the logvar path cut from the gradient is rejected" <| fun () ->
            // Detaching lv inside exp(lv / 2) leaves the forward unchanged but drops one path of d/d(logvar
            // parameters): a realistic bug the composed check must see.
            let wrong (t: Tensor[]) =
                let x, eps = t[0], t[1]
                let k = eps.Dim 0
                let h = Tensor.Linear(x, t[2], t[3]).Softplus()
                let mu = Tensor.Linear(h, t[4], t[5])
                let lv = Tensor.Linear(h, t[6], t[7])
                let z = eps * (lv.Detach() * 0.5f).Exp() + mu
                let logits = Tensor.Linear(Tensor.Linear(z, t[8], t[9]).Softplus(), t[10], t[11])
                let logPz = z.Square().Sum(-1) * -0.5f
                let logQz = (eps.Square().Sum(-1) + lv.Sum(-1)) * -0.5f
                let bound = (Tensor.BernoulliLogLikelihood(logits, x) + logPz - logQz).LogSumExp(0) - MathF.Log(float32 k)
                -(bound.Mean())
            Prop.forAll (Arb.fromGen genIwae) (fun case ->
                let r = gradCheck wrong Ref.iwaeLoss case
                (r.ForwardOk && not r.GradientOk) |> Prop.label r.Details)

        property Seed 3 "forward values and gradients do not depend on the thread count (1 vs 2 workers)" <| fun () ->
            let genSize =
                gen {
                    let! k = Gen.choose (3, 6)
                    let! n = Gen.choose (100, 140)
                    let! d = Gen.choose (120, 170)
                    let! seed = genSeed
                    return k, n, d, seed
                }
                // The kernels split only above 2 x 32768 elements; odd sizes put the split off an 8-lane boundary.
                |> Gen.filter (fun (k, n, d, _) -> k * n * d > 2 * 32768)
            Prop.forAll (Arb.fromGen genSize) (fun (k, n, d, seed) ->
                let differing =
                    [ for name, op, case in suite k n d seed do
                          let one = withThreads 1 (fun () -> runEngine op case)
                          let two = withThreads 2 (fun () -> runEngine op case)
                          if not (sameRun (gemmBacked.Contains name) one two) then yield name ]
                differing.IsEmpty |> Prop.label $"differ between 1 and 2 threads for [{k}, {n}, {d}]: %A{differing}")

        testCase "control: a poisoned pool hands out NaN buffers inside a workspace (and clean ones after cleaning)" <| fun () ->
            poisonPool 64 4
            try
                use _ = Workspace.Begin()
                for length in [ 1; 37; 64 ] do
                    Expect.isTrue (Tensor.Empty(length).ToArray() |> Array.forall Single.IsNaN) ($"length {length}")
                // The ops' own allocations must overwrite what they rent: Zeros does.
                Expect.allEqual (Tensor.Zeros(37).ToArray()) 0.0f "Tensor.Zeros(37).ToArray()"
            finally
                cleanPool 64 4
            use _ = Workspace.Begin()
            Expect.isFalse (Tensor.Empty(37).ToArray() |> Array.exists Single.IsNaN) "Tensor.Empty(37).ToArray() |> Array.exists Single.IsNaN"

        property Seed 25 "forward values and gradients are bitwise the same inside a Workspace (pool filled with NaN) and outside" <| fun () ->
            // k >= 2: the suite's training-mode batch norm needs two rows.
            let genSize = Gen.zip3 (Gen.zip (Gen.choose (2, 6)) genDim) genDim genSeed |> Gen.map (fun ((k, n), d, seed) -> k, n, d, seed)
            Prop.forAll (Arb.fromGen genSize) (fun (k, n, d, seed) ->
                let cases = suite k n d seed
                // Every buffer the suite rents is at most ConcatRows' (2k + 2) n d long (dims 1..6: <= 504);
                // 12 copies of each length cover the buffers of one length an op rents at once.
                let maxLength, copies = (2 * k + 2) * n * d, 12
                let differing =
                    [ for name, op, case in cases do
                          let outside = runEngine op case
                          poisonPool maxLength copies
                          let first, second =
                              try
                                  let first =
                                      use _ = Workspace.Begin()
                                      runEngine op case
                                  // The second run reuses the buffers the first one gave back (stale values, not NaN).
                                  let second =
                                      use _ = Workspace.Begin()
                                      runEngine op case
                                  first, second
                              finally
                                  cleanPool maxLength copies
                          if bits outside <> bits first || bits outside <> bits second then yield name ]
                differing.IsEmpty |> Prop.label $"differ inside a workspace for [{k}, {n}, {d}]: %A{differing}")
    ]
