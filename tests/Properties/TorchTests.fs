module VaeResearch.Properties.TorchTests

// The torch backend (src/Torch.CSharp) against the native engine:
//   1. every operation of TorchTensor on seeded random inputs gives the native Tensor's values, shape and
//      gradients (the backward pass of sum(op(inputs) * w) for a fixed random w), within OpRelTol / OpAbsTol;
//   2. batch norm in training updates the running statistics as the native engine does; evaluation uses them;
//   3. TorchAdam follows the native Adam, both rules, step by step on the same gradients, and its state dict
//      has the native layout and round-trips through a safetensors file;
//   4. a scope disposes its temporaries while parameters, their gradients and state survive;
//   5. a CUDA device on a build without CUDA is a ConfigException that names TorchSharp-cuda-linux;
//   6. the build's copy of libLibTorchSharp.so carries the libstdc++ patch, the NuGet cache's does not.
// Every test needs libtorch: where it does not load, the test is skipped with the reason (failed under CI=true).

open System
open System.IO
open Expecto
open VaeResearch
open VaeResearch.Build
open VaeResearch.Compute
open VaeResearch.Engine
open VaeResearch.Torch
open VaeResearch.TestSupport

// ---------------------------------------------------------------------------------------------
// Tolerances

/// Relative error allowed between the two backends' float32 results: libtorch and the native engine sum in
/// different orders (GEMM blocking, pairwise versus blocked sums) and use different exp/log kernels, each
/// about 1 ulp (6e-8) per operation; the inputs here have at most a few dozen terms per sum.
let OpRelTol = 1e-5

/// Absolute error allowed beside OpRelTol, for results near zero that come from cancelling terms of size ~1
/// (a gradient summed over tiles, a centred batch-norm value).
let OpAbsTol = 1e-6

/// Adam after several steps: both backends apply the same float32 operations in the same order, so they agree
/// to a few ulps of the parameters (libtorch may fuse a multiply-add where .NET rounds twice).
let AdamRelTol = 1e-6

/// Passes when |actual - expected| <= abs + rel |expected| for every element, and the lengths agree.
let private close (rel: float) (abs': float) (actual: float32[]) (expected: float32[]) (message: string) =
    if actual.Length <> expected.Length then failtestf "%s: expected %d values, got %d" message expected.Length actual.Length
    for i in 0 .. actual.Length - 1 do
        let a, e = float actual[i], float expected[i]
        if not (abs (a - e) <= abs' + rel * abs e) then
            failtestf "%s[%d]: expected %.9g, got %.9g (off by %g, allowed %g)" message i e a (abs (a - e)) (abs' + rel * abs e)

// ---------------------------------------------------------------------------------------------
// Availability

let private requireTorch () =
    requireNative "libtorch (TorchSharp)" (Option.ofObj TorchBackend.LoadError)
        "dotnet build tests/Properties (restores TorchSharp 0.107.0 and libtorch-cpu-linux-x64 2.10.0, and patches the copy of libLibTorchSharp.so)"

/// One torch context for the module (libtorch's thread count is process-wide).
let private torchContext = lazy (TorchContext("cpu", Environment.ProcessorCount))

let private native = NativeContext.Cpu

// ---------------------------------------------------------------------------------------------
// Inputs and the generic run

/// How an input is made: a trainable parameter, a constant upload, or non-trainable state.
type private Kind =
    | Param
    | Const
    | State

type private Input = { Shape: int[]; Values: float32[]; Kind: Kind }

/// Standard-normal values from the engine's seeded generator.
let private normal (seed: uint64) (n: int) =
    let values = Array.zeroCreate<float32> n
    Rng(seed).FillNormal(values.AsSpan())
    values

let private input kind seed (shape: int[]) = { Shape = shape; Values = normal seed (Array.fold (*) 1 shape); Kind = kind }
let private param = input Param
let private constant = input Const

/// An operation written once for both backends.
type private IOp =
    abstract Apply<'T when 'T: not struct and 'T :> ITensor<'T>> : 'T[] -> 'T

// The interface's static members as functions, so that an IOp's body need not name its type parameter.
let private add<'T when 'T: not struct and 'T :> ITensor<'T>> (a: 'T) (b: 'T) = 'T.op_Addition(a, b)
let private sub<'T when 'T: not struct and 'T :> ITensor<'T>> (a: 'T) (b: 'T) = 'T.op_Subtraction(a, b)
let private mul<'T when 'T: not struct and 'T :> ITensor<'T>> (a: 'T) (b: 'T) = 'T.op_Multiply(a, b)
let private scale<'T when 'T: not struct and 'T :> ITensor<'T>> (a: 'T) (c: float32) = 'T.op_Multiply(a, c)
let private scaleLeft<'T when 'T: not struct and 'T :> ITensor<'T>> (c: float32) (a: 'T) = 'T.op_Multiply(c, a)
let private addConst<'T when 'T: not struct and 'T :> ITensor<'T>> (a: 'T) (c: float32) = 'T.op_Addition(a, c)
let private subConst<'T when 'T: not struct and 'T :> ITensor<'T>> (a: 'T) (c: float32) = 'T.op_Subtraction(a, c)
let private neg<'T when 'T: not struct and 'T :> ITensor<'T>> (a: 'T) = 'T.op_UnaryNegation a
let private concatRows<'T when 'T: not struct and 'T :> ITensor<'T>> (parts: 'T[]) = 'T.ConcatRows parts
let private linear<'T when 'T: not struct and 'T :> ITensor<'T>> (x: 'T) (w: 'T) (b: 'T option) = 'T.Linear(x, w, Option.toObj b)
let private gaussianKl<'T when 'T: not struct and 'T :> ITensor<'T>> (mu: 'T) (logVar: 'T) = 'T.GaussianKl(mu, logVar)
let private bernoulli<'T when 'T: not struct and 'T :> ITensor<'T>> (logits: 'T) (x: 'T) = 'T.BernoulliLogLikelihood(logits, x)
let private batchNormOf<'T when 'T: not struct and 'T :> ITensor<'T>> (xs: 'T[]) (training: bool) (momentum: float32) (eps: float32) =
    'T.BatchNorm(xs[0], xs[1], xs[2], xs[3], xs[4], training, momentum, eps)

/// What a run gives: the result's shape and values, each input's gradient (parameters) and its values afterwards.
type private Outcome = { Shape: int[]; Values: float32[]; Grads: float32[] option[]; After: float32[][] }

/// Makes the inputs on `ctx`, applies `op`, and differentiates sum(result * w) with w standard normal (seed 7).
let private runOn<'T when 'T: not struct and 'T :> ITensor<'T>> (ctx: ComputeContext<'T>) (op: IOp) (inputs: Input[]) =
    use _scope = ctx.Scope()
    let xs =
        inputs
        |> Array.map (fun i ->
            match i.Kind with
            | Param -> ctx.Parameter(ReadOnlySpan i.Values, i.Shape)
            | Const -> ctx.Upload(ReadOnlySpan i.Values, i.Shape)
            | State -> ctx.State(ReadOnlySpan i.Values, i.Shape))
    let y = op.Apply xs
    let values = TensorExtensions.ToArray y
    if y.RequiresGrad then
        let w = ctx.Upload(ReadOnlySpan(normal 7UL y.Size), y.Shape)
        let loss = ('T.op_Multiply(y, w)).Sum()
        loss.Backward()
    { Shape = y.Shape
      Values = values
      Grads = xs |> Array.map (fun x -> if x.RequiresGrad then Some(x.GradToArray()) else None)
      After = xs |> Array.map TensorExtensions.ToArray }

/// Runs `op` on both backends and compares shapes, values, gradients and the inputs' values afterwards.
/// `torchShape` is the shape the torch result must have when it differs from the native one (Sum(), Mean()).
let private compare (op: IOp) (inputs: Input[]) (torchShape: int[] option) =
    requireTorch ()
    let expected = runOn native op inputs
    let actual = runOn torchContext.Value op inputs
    let shape = defaultArg torchShape expected.Shape
    Expect.sequenceEqual actual.Shape shape "shape"
    close OpRelTol OpAbsTol actual.Values expected.Values "values"
    for i in 0 .. inputs.Length - 1 do
        match actual.Grads[i], expected.Grads[i] with
        | Some a, Some e -> close OpRelTol OpAbsTol a e $"gradient of input {i}"
        | None, None -> ()
        | _ -> failtestf "input %d: a gradient on one backend only" i
        close OpRelTol OpAbsTol actual.After[i] expected.After[i] $"input {i} afterwards"

// ---------------------------------------------------------------------------------------------
// The operations

let private opCase name (inputs: Input[]) (op: IOp) = testCase name <| fun () -> compare op inputs None

let private binaryCases =
    let shapes =
        [ "equal shapes [4, 5]", [| 4; 5 |], [| 4; 5 |]
          "[k, n, D] with [n, D]", [| 3; 4; 5 |], [| 4; 5 |]
          "[n, D] with [k, n, D]", [| 4; 5 |], [| 3; 4; 5 |]
          "[n, D] with [D]", [| 4; 5 |], [| 5 |] ]
    [ for opName, op in
          [ "+", { new IOp with member _.Apply xs = add xs[0] xs[1] }
            "-", { new IOp with member _.Apply xs = sub xs[0] xs[1] }
            "*", { new IOp with member _.Apply xs = mul xs[0] xs[1] } ] do
        for shapeName, a, b in shapes do
            opCase $"a {opName} b, {shapeName}" [| param 11UL a; param 12UL b |] op
        opCase $"a {opName} b with a constant b" [| param 13UL [| 3; 4 |]; constant 14UL [| 4 |] |] op ]

let private scalarCases =
    let x = [| param 21UL [| 3; 4; 5 |] |]
    [ opCase "x * c" x { new IOp with member _.Apply xs = scale xs[0] 1.75f }
      opCase "c * x" x { new IOp with member _.Apply xs = scaleLeft -0.5f xs[0] }
      opCase "x + c" x { new IOp with member _.Apply xs = addConst xs[0] 2.25f }
      opCase "x - c" x { new IOp with member _.Apply xs = subConst xs[0] 0.3f }
      opCase "-x" x { new IOp with member _.Apply xs = neg xs[0] } ]

let private unaryCases =
    // NOTE: scaled by 4 so that softplus, sigmoid and tanh see their tails as well as the middle.
    let x = [| { param 31UL [| 6; 7 |] with Values = normal 31UL 42 |> Array.map (fun v -> 4f * v) } |]
    [ opCase "Exp" x { new IOp with member _.Apply xs = xs[0].Exp() }
      opCase "Square" x { new IOp with member _.Apply xs = xs[0].Square() }
      opCase "Sigmoid" x { new IOp with member _.Apply xs = xs[0].Sigmoid() }
      opCase "Tanh" x { new IOp with member _.Apply xs = xs[0].Tanh() }
      opCase "Softplus" x { new IOp with member _.Apply xs = xs[0].Softplus() }
      opCase "Relu" x { new IOp with member _.Apply xs = xs[0].Relu() } ]

let private reductionCases =
    let x = [| param 41UL [| 3; 4; 5 |] |]
    [ for axis in [ 0; 1; 2; -1 ] do
          opCase $"Sum({axis}) of [3, 4, 5]" x { new IOp with member _.Apply xs = xs[0].Sum axis }
          opCase $"Mean({axis}) of [3, 4, 5]" x { new IOp with member _.Apply xs = xs[0].Mean axis }
          opCase $"LogSumExp({axis}) of [3, 4, 5]" x { new IOp with member _.Apply xs = xs[0].LogSumExp axis }
      testCase "Sum() of [3, 4, 5] has shape [1]" <| fun () ->
          compare { new IOp with member _.Apply xs = xs[0].Sum() } x (Some [| 1 |])
      testCase "Mean() of [3, 4, 5] has shape [1]" <| fun () ->
          compare { new IOp with member _.Apply xs = xs[0].Mean() } x (Some [| 1 |])
      opCase "Sum(0) of a vector [6]" [| param 42UL [| 6 |] |] { new IOp with member _.Apply xs = xs[0].Sum 0 }
      opCase "LogSumExp(0) of large values [k = 5, n = 3] (the IWAE bound's shape)"
          [| { param 43UL [| 5; 3 |] with Values = normal 43UL 15 |> Array.map (fun v -> 300f * v - 1000f) } |]
          { new IOp with member _.Apply xs = xs[0].LogSumExp 0 } ]

let private shapeCases =
    let x = [| param 51UL [| 3; 4; 5 |] |]
    [ opCase "Reshape [3, 4, 5] to [12, 5]" x { new IOp with member _.Apply xs = xs[0].Reshape(12, 5) }
      opCase "Reshape [3, 4, 5] to [-1, 10]" x { new IOp with member _.Apply xs = xs[0].Reshape(-1, 10) }
      opCase "Reshape [3, 4, 5] to [60]" x { new IOp with member _.Apply xs = xs[0].Reshape 60 }
      opCase "SelectRows [2, 0, 2, 1] of [3, 4, 5] (a repeat accumulates)" x
          { new IOp with member _.Apply xs = xs[0].SelectRows(ReadOnlySpan [| 2; 0; 2; 1 |]) }
      opCase "SelectRows [] of [3, 4, 5]" x { new IOp with member _.Apply xs = xs[0].SelectRows(ReadOnlySpan<int>.Empty) }
      opCase "ConcatRows of [2, 5], [1, 5] and a constant [3, 5]" [| param 52UL [| 2; 5 |]; param 53UL [| 1; 5 |]; constant 54UL [| 3; 5 |] |]
          { new IOp with member _.Apply xs = concatRows xs } ]

let private layerCases =
    [ opCase "Linear x [4, 6], W [3, 6], b [3]" [| param 61UL [| 4; 6 |]; param 62UL [| 3; 6 |]; param 63UL [| 3 |] |]
          { new IOp with member _.Apply xs = linear xs[0] xs[1] (Some xs[2]) }
      opCase "Linear x [2, 4, 6] (leading dims), W [3, 6], b [3]" [| param 64UL [| 2; 4; 6 |]; param 65UL [| 3; 6 |]; param 66UL [| 3 |] |]
          { new IOp with member _.Apply xs = linear xs[0] xs[1] (Some xs[2]) }
      opCase "Linear without bias" [| param 67UL [| 4; 6 |]; param 68UL [| 3; 6 |] |]
          { new IOp with member _.Apply xs = linear xs[0] xs[1] None }
      opCase "GaussianKl mu, logVar [4, 5]" [| param 71UL [| 4; 5 |]; param 72UL [| 4; 5 |] |]
          { new IOp with member _.Apply xs = gaussianKl xs[0] xs[1] }
      opCase "GaussianKl near logVar = 0 (no cancellation) and exactly 0 at mu = logVar = 0"
          [| { param 73UL [| 2; 4 |] with Values = [| 0f; 1e-4f; -1e-3f; 0.5f; 0f; 0f; 2f; -3f |] }
             { param 74UL [| 2; 4 |] with Values = [| 0f; 1e-5f; -2e-4f; 1e-3f; 3e-4f; -1e-6f; 4f; -6f |] } |]
          { new IOp with member _.Apply xs = gaussianKl xs[0] xs[1] }
      opCase "BernoulliLogLikelihood logits [k = 3, n = 4, N = 7], x [4, 7] binary"
          [| { param 81UL [| 3; 4; 7 |] with Values = normal 81UL 84 |> Array.map (fun v -> 5f * v) }
             { constant 82UL [| 4; 7 |] with Values = normal 82UL 28 |> Array.map (fun v -> if v > 0f then 1f else 0f) } |]
          { new IOp with member _.Apply xs = bernoulli xs[0] xs[1] }
      opCase "BernoulliLogLikelihood logits [4, 7], x [4, 7] in [0, 1]"
          [| param 83UL [| 4; 7 |]; { constant 84UL [| 4; 7 |] with Values = normal 84UL 28 |> Array.map (fun v -> 1f / (1f + exp -v)) } |]
          { new IOp with member _.Apply xs = bernoulli xs[0] xs[1] } ]

/// BatchNorm inputs: x, gamma, beta as parameters, running mean and variance as state (variance positive).
let private batchNormInputs (seed: uint64) (xShape: int[]) =
    let d = xShape[xShape.Length - 1]
    [| param seed xShape
       { param (seed + 1UL) [| d |] with Values = normal (seed + 1UL) d |> Array.map (fun v -> 1f + 0.3f * v) }
       param (seed + 2UL) [| d |]
       { Shape = [| d |]; Values = normal (seed + 3UL) d |> Array.map (fun v -> 0.2f * v); Kind = State }
       { Shape = [| d |]; Values = normal (seed + 4UL) d |> Array.map (fun v -> 0.5f + abs v); Kind = State } |]

let private batchNorm (training: bool) (momentum: float32) (eps: float32) =
    { new IOp with member _.Apply xs = batchNormOf xs training momentum eps }

let private batchNormCases =
    [ opCase "BatchNorm training [8, 5]: output, gradients and the running statistics' update" (batchNormInputs 91UL [| 8; 5 |]) (batchNorm true 0.1f 1e-5f)
      opCase "BatchNorm training [2, 6, 5] (leading dims are rows), momentum 0.3" (batchNormInputs 96UL [| 2; 6; 5 |]) (batchNorm true 0.3f 1e-3f)
      opCase "BatchNorm evaluation [8, 5]: the running statistics normalize and stay" (batchNormInputs 101UL [| 8; 5 |]) (batchNorm false 0.1f 1e-5f)
      testCase "BatchNorm training updates the running statistics in place as PyTorch does (unbiased variance)" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          let x = [| 1f; 2f; 3f; 10f; 4f; 6f |] // [3, 2]: column means 8/3 and 6, biased variances 14/9 and 32/3
          use _scope = ctx.Scope()
          let rm = ctx.State(ReadOnlySpan [| 0f; 1f |], 2)
          let rv = ctx.State(ReadOnlySpan [| 1f; 2f |], 2)
          let y = TorchTensor.BatchNorm(ctx.Upload(ReadOnlySpan x, 3, 2), ctx.Parameter(ReadOnlySpan [| 1f; 1f |], 2),
                                        ctx.Parameter(ReadOnlySpan [| 0f; 0f |], 2), rm, rv, true, 0.1f, 1e-5f)
          let mean = [| 8.0 / 3.0; 6.0 |]
          let biased = [| 14.0 / 9.0; 32.0 / 3.0 |]
          let unbiased = biased |> Array.map (fun v -> v * 3.0 / 2.0)
          withinEach 1e-6 (rm.ToArray() |> Array.map float) [| 0.9 * 0.0 + 0.1 * mean[0]; 0.9 * 1.0 + 0.1 * mean[1] |] "running mean"
          withinEach 1e-6 (rv.ToArray() |> Array.map float) [| 0.9 * 1.0 + 0.1 * unbiased[0]; 0.9 * 2.0 + 0.1 * unbiased[1] |] "running variance"
          withinEach 1e-5 (y.ToArray() |> Array.map float) [| for r in 0 .. 2 do for c in 0 .. 1 -> (float x[2 * r + c] - mean[c]) / sqrt (biased[c] + 1e-5) |] "normalized"
      testCase "BatchNorm training on one row is an error, as natively" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          use _scope = ctx.Scope()
          let p () = ctx.Parameter(ReadOnlySpan [| 1f; 1f |], 2)
          let e = throws<ArgumentException> (fun () ->
              TorchTensor.BatchNorm(ctx.Upload(ReadOnlySpan [| 1f; 2f |], 1, 2), p (), p (), ctx.State(ReadOnlySpan [| 0f; 0f |], 2),
                                    ctx.State(ReadOnlySpan [| 1f; 1f |], 2), true, 0.1f, 1e-5f) |> ignore)
          Expect.stringContains e.Message "at least 2 rows" "message" ]

let private errorCases =
    [ testCase "shapes that do not broadcast natively are rejected with both shapes named" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          use _scope = ctx.Scope()
          let e = throws<ArgumentException> (fun () -> ctx.Zeros(3, 4) + ctx.Zeros(3) |> ignore)
          Expect.stringContains e.Message "[3, 4] and [3]" "message"
      testCase "a one-element [1] or [] operand broadcasts as a scalar (what Sum() gives)" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          use _scope = ctx.Scope()
          let x = ctx.Upload(ReadOnlySpan [| 1f; 2f; 3f; 4f |], 2, 2)
          Expect.sequenceEqual ((x - x.Sum()).ToArray()) [| -9f; -8f; -7f; -6f |] "x - sum x"
          Expect.sequenceEqual ((x.Sum(0).Sum(0) * x).ToArray()) [| 10f; 20f; 30f; 40f |] "[] * x"
      testCase "Reshape to a different size, Item of many elements and Backward of a vector are errors" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          use _scope = ctx.Scope()
          let p = ctx.Parameter(ReadOnlySpan [| 1f; 2f; 3f |], 3)
          throws<ArgumentException> (fun () -> p.Reshape(2, 2) |> ignore) |> ignore
          throws<InvalidOperationException> (fun () -> p.Item() |> ignore) |> ignore
          throws<InvalidOperationException> (fun () -> (p * 2f).Backward()) |> ignore
          throws<ArgumentOutOfRangeException> (fun () -> p.SelectRows(ReadOnlySpan [| 3 |]) |> ignore) |> ignore
          throws<ArgumentException> (fun () -> ctx.Upload(ReadOnlySpan [| 1f |], 2) |> ignore) |> ignore ]

// ---------------------------------------------------------------------------------------------
// Transfers, scopes and the context

let private contextCases =
    [ testCase "Upload, CopyTo, CopyFrom, Item and GradToArray move values in C order" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          let values = normal 111UL 12
          let p = ctx.Parameter(ReadOnlySpan values, 3, 4)
          Expect.sequenceEqual (p.ToArray()) values "values"
          Expect.sequenceEqual (p.GradToArray()) (Array.zeroCreate 12) "gradient before backward"
          p.CopyFrom(ReadOnlySpan(Array.init 12 float32))
          Expect.sequenceEqual (p.ToArray()) (Array.init 12 float32) "after CopyFrom"
          Expect.isTrue p.RequiresGrad "still a parameter"
          Expect.isTrue p.Value.is_leaf "still a leaf"
          Expect.equal (p.SelectRows(ReadOnlySpan [| 2 |]).Sum().Item()) (8f + 9f + 10f + 11f) "Item"
          Expect.equal (p.Dim -1) 4 "Dim(-1)"
          Expect.equal p.Rank 2 "Rank"
      testCase "a scope disposes its temporaries; parameters, their gradients and state survive it" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          let p = ctx.Parameter(ReadOnlySpan [| 1f; 2f; 3f |], 3)
          let t, z, y, w, s =
              use _scope = ctx.Scope()
              let t = ctx.Upload(ReadOnlySpan [| 4f; 5f; 6f |], 3)
              let z = ctx.Zeros(3)
              let w = ctx.Parameter(ReadOnlySpan [| 1f |], 1) // a parameter and state made inside the scope
              let s = ctx.State(ReadOnlySpan [| 5f; 6f; 7f |], 3)
              let y = (p * t * w + z).Sum()
              y.Backward()
              Expect.isFalse t.Value.IsInvalid "alive inside the scope"
              t, z, y, w, s
          Expect.isTrue t.Value.IsInvalid "the upload is disposed"
          Expect.isTrue z.Value.IsInvalid "the zeros are disposed"
          Expect.isTrue y.Value.IsInvalid "the result is disposed"
          Expect.isFalse p.Value.IsInvalid "the parameter survives"
          Expect.isFalse w.Value.IsInvalid "a parameter made in the scope survives"
          Expect.isFalse s.Value.IsInvalid "the state survives"
          Expect.sequenceEqual (p.GradToArray()) [| 4f; 5f; 6f |] "the gradient survives"
          Expect.sequenceEqual (w.GradToArray()) [| 32f |] "the gradient of the inner parameter survives"
          Expect.sequenceEqual (s.ToArray()) [| 5f; 6f; 7f |] "state values"
          // NOTE: TorchSharp's error for a disposed tensor.
          let e = throws<InvalidOperationException> (fun () -> t.ToArray() |> ignore)
          Expect.stringContains e.Message "empty handle" "a disposed tensor"
      testCase "NoGrad records nothing" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          use _scope = ctx.Scope()
          let p = ctx.Parameter(ReadOnlySpan [| 1f; 2f |], 2)
          let y =
              use _ng = ctx.NoGrad()
              p * 3f
          Expect.isFalse y.RequiresGrad "no graph inside NoGrad"
          Expect.isTrue (p * 3f).RequiresGrad "recording again after it"
      testCase "the context reports backend torch, device cpu, its threads and the library versions" <| fun () ->
          requireTorch ()
          let ctx = TorchContext("cpu", 1)
          Expect.equal ctx.Backend "torch" "backend"
          Expect.equal ctx.Device "cpu" "device"
          Expect.equal ctx.Threads 1 "threads (torch.set_num_threads)"
          Expect.equal ctx.Versions["torchsharp"] "0.107.0" "TorchSharp version"
          Expect.stringStarts ctx.Versions["libtorch"] "2." "libtorch version"
          Expect.equal (TorchContext("cpu", Environment.ProcessorCount).Threads) Environment.ProcessorCount "threads restored"
      testCase "TorchBackend.Register makes ComputeBackends.Create(torch, cpu) a TorchContext" <| fun () ->
          requireTorch ()
          TorchBackend.Register()
          Expect.isTrue (ComputeBackends.IsAvailable ComputeBackends.Torch) "registered"
          let ctx = ComputeBackends.Create(ComputeBackends.Torch, "cpu", Environment.ProcessorCount)
          Expect.isTrue (ctx :? TorchContext) $"a TorchContext, got {ctx.GetType().Name}"
          Expect.equal ctx.Backend "torch" "backend"
      testCase "a CUDA device without CUDA is a ConfigException (device) naming TorchSharp-cuda-linux and the project file" <| fun () ->
          requireTorch ()
          if TorchSharp.torch.cuda.is_available () then skiptest "CUDA is available here"
          for device in [ "cuda"; "cuda:0"; "cuda:1" ] do
              let e = throws<ConfigException> (fun () -> TorchContext(device, 1) |> ignore)
              Expect.equal e.Key "device" "key"
              Expect.stringContains e.Message "TorchSharp-cuda-linux" "names the CUDA package"
              Expect.stringContains e.Message "libtorch-cpu-linux-x64" "names the package to replace"
              Expect.stringContains e.Message "src/Torch.CSharp/Torch.CSharp.csproj" "names the project file"
          TorchBackend.Register()
          let e = throws<ConfigException> (fun () -> ComputeBackends.Create(ComputeBackends.Torch, "cuda", 1) |> ignore)
          Expect.stringContains e.Message "CUDA is not available" "through the registry"
      testCase "a device that is not cpu, cuda or cuda:N is a ConfigException" <| fun () ->
          requireTorch ()
          let e = throws<ConfigException> (fun () -> TorchContext("gpu", 1) |> ignore)
          Expect.equal e.Key "device" "key" ]

// ---------------------------------------------------------------------------------------------
// Adam

/// Parameter shapes for the Adam runs (three tensors, 23 values).
let private adamShapes = [ [| 3; 4 |]; [| 4 |]; [| 7 |] ]

/// Runs `steps` steps of Adam on `ctx` from the same initial parameters, with gradient g_t (seed 200 + t,
/// scaled by `scale`) through Backward of sum(p * g_t); returns the parameters after each step and the final state.
let private adamRun<'T when 'T: not struct and 'T :> ITensor<'T>> (ctx: ComputeContext<'T>) (settings: AdamSettings) (steps: int) =
    let ps = adamShapes |> List.mapi (fun i shape -> ctx.Parameter(ReadOnlySpan(normal (150UL + uint64 i) (Array.fold (*) 1 shape)), shape)) |> List.toArray
    let opt = ctx.Adam(ps, settings)
    let trajectory =
        [ for t in 1 .. steps do
              use _scope = ctx.Scope()
              opt.ZeroGrad()
              let loss =
                  ps
                  |> Array.mapi (fun i p ->
                      // NOTE: gradients from 1e-3 to 10 in size, so that sqrt(v) and eps both matter somewhere.
                      let g = normal (200UL + uint64 (10 * t + i)) p.Size |> Array.mapi (fun j v -> v * (10f ** float32 (j % 5 - 3)))
                      ('T.op_Multiply(p, ctx.Upload(ReadOnlySpan g, p.Shape))).Sum())
                  |> Array.reduce (fun a b -> 'T.op_Addition(a, b))
              loss.Backward()
              if t = 3 then opt.LearningRate <- opt.LearningRate * 0.5f
              opt.Step()
              yield ps |> Array.collect TensorExtensions.ToArray ]
    trajectory, opt

let private adamCases =
    [ for kind, settings in
          [ "Adam (PyTorch's rule)", AdamSettings(0.01f)
            "Adam, beta2 = 0.9999, eps = 1e-3", AdamSettings(0.02f, 0.8f, 0.9999f, 1e-3f)
            "BurdaAdam (beta1 = 0.99)", AdamSettings(0.01f, 0.99f, 0.999f, 1e-4f, OptimizerKind.BurdaAdam)
            "BurdaAdam, beta1 = 0.9", AdamSettings(0.001f, 0.9f, 0.999f, 1e-8f, OptimizerKind.BurdaAdam) ] do
        testCase $"TorchAdam follows the native {kind} for 6 steps (a learning-rate change after step 2)" <| fun () ->
            requireTorch ()
            let expected, nativeOpt = adamRun native settings 6
            let actual, torchOpt = adamRun torchContext.Value settings 6
            for t in 0 .. 5 do
                close AdamRelTol 1e-7 actual[t] expected[t] $"parameters after step {t + 1}"
            if settings.Kind = OptimizerKind.BurdaAdam then
                let initial = adamShapes |> List.mapi (fun i shape -> normal (150UL + uint64 i) (Array.fold (*) 1 shape)) |> Array.concat
                Expect.sequenceEqual actual[0] initial "Burda's first step leaves the parameters unchanged"
            Expect.equal torchOpt.StepCount nativeOpt.StepCount "step count"
            let torchState = torchOpt.StateDict() |> Seq.toList
            let nativeState = nativeOpt.StateDict() |> Seq.toList
            Expect.sequenceEqual (torchState |> List.map (fun t -> t.Name)) [ "optimizer.exp_avg"; "optimizer.exp_avg_sq" ] "state names"
            for a, e in List.zip torchState nativeState do
                Expect.sequenceEqual a.Shape [| 23 |] $"{a.Name} is flat over all parameters"
                close AdamRelTol 1e-9 a.Data e.Data a.Name
      testCase "TorchAdam's state dict round-trips through safetensors: a restored optimizer continues identically" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          let settings = AdamSettings(0.01f, Kind = OptimizerKind.BurdaAdam)
          let _, first = adamRun ctx settings 3
          let bytes = Safetensors.Serialize(first.StateDict())
          let content = Safetensors.Parse(ReadOnlySpan bytes, "adam.safetensors")
          let make () =
              let ps = [| ctx.Parameter(ReadOnlySpan [| 1f; 2f |], 2); ctx.Parameter(ReadOnlySpan(Array.init 21 float32), 21) |]
              ps, ctx.Adam(ps, settings)
          let psA, a = make ()
          let psB, b = make ()
          a.LoadStateDict(content, first.StepCount)
          b.LoadStateDict(content, first.StepCount)
          Expect.equal a.StepCount 3L "step count restored"
          let restored = a.StateDict() |> Seq.toList
          for saved, back in List.zip (first.StateDict() |> Seq.toList) restored do
              Expect.sequenceEqual back.Data saved.Data $"{saved.Name} restored exactly"
          for ps, opt in [ psA, a; psB, b ] do
              use _scope = ctx.Scope()
              let loss = (ps[0].Square().Sum() + ps[1].Sum())
              loss.Backward()
              opt.Step()
          Expect.sequenceEqual (Array.collect TensorExtensions.ToArray psA) (Array.collect TensorExtensions.ToArray psB) "same step from the same state"
          // A native optimizer given the same state takes the same step.
          let nps = [| native.Parameter(ReadOnlySpan [| 1f; 2f |], 2); native.Parameter(ReadOnlySpan(Array.init 21 float32), 21) |]
          let nopt = native.Adam(nps, settings)
          nopt.LoadStateDict(content, first.StepCount)
          (
              use _scope = native.Scope()
              let loss = (nps[0].Square().Sum() + nps[1].Sum())
              loss.Backward()
              nopt.Step()
          )
          close AdamRelTol 1e-7 (Array.collect TensorExtensions.ToArray psA) (Array.collect TensorExtensions.ToArray nps) "native continues the same way"
      testCase "TorchAdam ZeroGrad clears the gradients; a parameter no backward reached steps with a zero gradient" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          let p = ctx.Parameter(ReadOnlySpan [| 1f; -1f |], 2)
          let q = ctx.Parameter(ReadOnlySpan [| 3f |], 1)
          let opt = ctx.Adam([| p; q |], AdamSettings(0.1f))
          (
              use _scope = ctx.Scope()
              (p * 2f).Sum().Backward()
          )
          Expect.sequenceEqual (p.GradToArray()) [| 2f; 2f |] "gradient"
          opt.Step()
          Expect.sequenceEqual (q.ToArray()) [| 3f |] "q did not move"
          within 1e-6 (float (p.ToArray()[0])) 0.9 "p moved by lr against the gradient's sign"
          opt.ZeroGrad()
          Expect.sequenceEqual (p.GradToArray()) [| 0f; 0f |] "cleared"
      testCase "TorchAdam rejects bad hyperparameters and duplicate parameters" <| fun () ->
          requireTorch ()
          let ctx = torchContext.Value
          let p = ctx.Parameter(ReadOnlySpan [| 1f |], 1)
          throws<ArgumentOutOfRangeException> (fun () -> ctx.Adam([| p |], AdamSettings(-1f)) |> ignore) |> ignore
          throws<ArgumentOutOfRangeException> (fun () -> ctx.Adam([| p |], AdamSettings(0.1f, Beta1 = 1f)) |> ignore) |> ignore
          throws<ArgumentOutOfRangeException> (fun () -> ctx.Adam([| p |], AdamSettings(0.1f, Eps = 0f)) |> ignore) |> ignore
          throws<ArgumentException> (fun () -> ctx.Adam([| p; p |], AdamSettings(0.1f)) |> ignore) |> ignore
          use _scope = ctx.Scope()
          throws<ArgumentException> (fun () -> ctx.Adam([| p * 2f |], AdamSettings(0.1f)) |> ignore) |> ignore ]

// ---------------------------------------------------------------------------------------------
// The libstdc++ patch

let private patchCases =
    [ testCase "the build's copy of libLibTorchSharp.so has the patch its stamp names; the NuGet cache's copy is unchanged" <| fun () ->
          if not (OperatingSystem.IsLinux()) then skiptest "Linux only"
          // RID-less outputs keep it under runtimes/linux-x64/native/, RID-specific ones at the top.
          let places =
              [ Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so")
                Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so") ]
          let copy =
              match places |> List.tryFind File.Exists with
              | Some path -> path
              | None -> failtestf "no libLibTorchSharp.so in %s: the test program's output should hold TorchSharp's shim" AppContext.BaseDirectory
          let stamp = copy + ".libstdcxx-stamp"
          if not (File.Exists stamp) then failtestf "no %s: build/Torch.targets did not run after Build" stamp
          let said = File.ReadAllText stamp
          let outcome = Elf.markWeak (File.ReadAllBytes copy) "GLIBCXX_3.4.32"
          if said.Contains "weak" then
              Expect.equal outcome (Elf.AlreadyWeak 1) $"the copy is patched (stamp: {said.Trim()})"
          else
              Expect.stringContains said "defines GLIBCXX_3.4.32" "the only reason to leave it"
          let packages =
              match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
              | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
              | dir -> dir
          let cached = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")
          if File.Exists cached then
              Expect.equal (Elf.markWeak (File.ReadAllBytes cached) "GLIBCXX_3.4.32") (Elf.Marked 1) "the NuGet cache's copy still has a strong need"
              Expect.equal (FileInfo(copy).Length) (FileInfo(cached).Length) "same size"
              Expect.equal (File.GetLastWriteTimeUtc copy) (File.GetLastWriteTimeUtc cached) "same time, so MSBuild's copy step skips it" ]

let tests =
    testList "Torch" [
        testList "ops" (binaryCases @ scalarCases @ unaryCases @ reductionCases @ shapeCases @ layerCases)
        testList "batch norm" batchNormCases
        testList "errors" errorCases
        testList "context" contextCases
        testList "adam" adamCases
        testList "libstdc++ patch" patchCases
    ]
