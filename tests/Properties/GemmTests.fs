module VaeResearch.Properties.GemmTests

// Properties of the GEMM backends (src/Core.CSharp/Engine/Gemm*.cs), C = alpha op(A) op(B) + beta C:
//   1. both backends, and every managed kernel this CPU runs, agree with a triple loop in double
//      precision over generated shapes, all four transpose combinations, padded leading dimensions and
//      alpha/beta values; beta = 0 never reads C (NaN-filled) and padding is neither read (NaN-filled)
//      nor written (sentinel); a negative control shows the tolerance catches one missing term;
//   2. the managed result is bitwise identical for any thread count and from run to run;
//   3. degenerate problems (m, n or k = 0; alpha = 0) follow BLAS;
//   4. bad arguments raise ArgumentException naming the argument; a bad VAE_GEMM raises
//      VaeResearchException naming the variable and the fix.
// Every property runs from the fixed FsCheck seed below; a failing case prints as a Case record and
// belongs in `regressionCases` once fixed.

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open VaeResearch
open VaeResearch.Engine
open VaeResearch.TestSupport

/// FsCheck (seed, gamma) every property replays, so each run generates the same cases.
let private Seed = (20250611UL, 7919UL)

/// Tolerance per unit of magnitude. Float32 rounding (u = 6e-8) of a k-term sum is bounded by
/// k u sum|a b| <= k u k max|a| max|b|, but blocked FMA sums stay near sqrt(k) u k max|a||b|; 1e-5 k
/// max|a||b| is above that for every k here (<= 5000) and below the size of one product term
/// (max|a||b|) for k < 1e5, so a dropped or doubled term fails (see the negative control).
let private RelTol = 1e-5

/// Absolute slack for results that cancel to ~0.
let private AbsTol = 1e-6

/// Written into C's padding (columns n..ldc) and required to survive the call unchanged.
let private Sentinel = 12345.0f

// ---------------------------------------------------------------------------------------------
// Cases and the oracle

type Case =
    { TransA: bool
      TransB: bool
      M: int
      N: int
      K: int
      /// Leading dimension minus the stored row width.
      PadA: int
      PadB: int
      PadC: int
      Alpha: float32
      Beta: float32
      /// Seeds System.Random for the matrix values.
      DataSeed: int }

/// Mostly 1..70 (odd sizes, single rows and columns), sometimes 0, sometimes up to 140.
let private genDim =
    Gen.frequency [ 3, Gen.constant 1; 1, Gen.constant 0; 12, Gen.choose (2, 70); 2, Gen.choose (71, 140) ]

let private genPad = Gen.frequency [ 3, Gen.constant 0; 2, Gen.choose (1, 9); 1, Gen.choose (10, 40) ]

let private genCase : Gen<Case> =
    gen {
        let! transA = Gen.elements [ false; true ]
        let! transB = Gen.elements [ false; true ]
        // NOTE: besides small shapes: big ones (several m blocks), deep ones (several k blocks: k above
        // every kernel's KcMax) and wide ones (two n blocks: n around NcMax = 2048).
        let! shape = Gen.frequency [ 14, Gen.constant 0; 1, Gen.constant 1; 1, Gen.constant 2; 1, Gen.constant 3 ]
        let! m = match shape with 0 -> genDim | 1 -> Gen.choose (100, 260) | 2 -> Gen.choose (1, 40) | _ -> Gen.choose (1, 9)
        let! n = match shape with 0 -> genDim | 1 -> Gen.choose (100, 260) | 2 -> Gen.choose (1, 40) | _ -> Gen.choose (2040, 2200)
        let! k = match shape with 0 -> genDim | 1 -> Gen.choose (100, 260) | 2 -> Gen.choose (280, 1300) | _ -> Gen.choose (1, 12)
        let! padA = genPad
        let! padB = genPad
        let! padC = genPad
        let! alpha = Gen.elements [ 1.0f; 1.0f; -1.0f; 0.5f; 2.25f; -0.3f; 0.0f ]
        let! beta = Gen.elements [ 0.0f; 0.0f; 1.0f; -1.0f; 0.75f ]
        let! dataSeed = Gen.choose (0, Int32.MaxValue)
        return
            { TransA = transA; TransB = transB; M = m; N = n; K = k
              PadA = padA; PadB = padB; PadC = padC; Alpha = alpha; Beta = beta; DataSeed = dataSeed }
    }

let private arbCase = Arb.fromGen genCase

/// Cases worth keeping whatever the generator does: the large odd shape of the brief, in all four
/// transpose combinations, with padding and a NaN-filled C.
let private regressionCases =
    [ for ta in [ false; true ] do
          for tb in [ false; true ] do
              { TransA = ta; TransB = tb; M = 130; N = 257; K = 67; PadA = 3; PadB = 5; PadC = 7
                Alpha = 1.0f; Beta = 0.0f; DataSeed = 42 }
              { TransA = ta; TransB = tb; M = 1; N = 70; K = 33; PadA = 0; PadB = 1; PadC = 0
                Alpha = -0.5f; Beta = 0.75f; DataSeed = 7 }
              { TransA = ta; TransB = tb; M = 69; N = 1; K = 129; PadA = 2; PadB = 0; PadC = 4
                Alpha = 2.0f; Beta = 1.0f; DataSeed = 11 }
              { TransA = ta; TransB = tb; M = 17; N = 9; K = 1000; PadA = 1; PadB = 1; PadC = 1
                Alpha = 1.0f; Beta = -1.0f; DataSeed = 13 }
              { TransA = ta; TransB = tb; M = 5; N = 2100; K = 3; PadA = 0; PadB = 2; PadC = 0
                Alpha = 1.0f; Beta = 0.0f; DataSeed = 17 }
              // Tall and wide problems: several m (resp. n) blocks per worker in a row (resp. column)
              // split, and a k block count above 1.
              { TransA = ta; TransB = tb; M = 2000; N = 20; K = 270; PadA = 1; PadB = 0; PadC = 2
                Alpha = 0.5f; Beta = 0.0f; DataSeed = 19 }
              { TransA = ta; TransB = tb; M = 20; N = 2100; K = 260; PadA = 0; PadB = 3; PadC = 0
                Alpha = 1.0f; Beta = 2.0f; DataSeed = 23 } ]

type Operands =
    { A: float32[]
      Lda: int
      B: float32[]
      Ldb: int
      /// C before the call.
      C0: float32[]
      Ldc: int }

/// A rows x cols matrix with leading dimension ld, exactly as long as the call needs; values
/// uniform in [-1, 1), padding filled with `pad`.
let private matrix rows cols ld (fill: unit -> float32) (pad: float32) =
    let length = if rows = 0 || cols = 0 then 0 else (rows - 1) * ld + cols
    Array.init length (fun idx -> if idx % ld < cols then fill () else pad)

let private operands (c: Case) =
    let rnd = Random(c.DataSeed)
    let uniform () = float32 (rnd.NextDouble() * 2.0 - 1.0)
    let aRows, aCols = if c.TransA then c.K, c.M else c.M, c.K
    let bRows, bCols = if c.TransB then c.N, c.K else c.K, c.N
    let lda, ldb, ldc = max 1 aCols + c.PadA, max 1 bCols + c.PadB, max 1 c.N + c.PadC
    // NOTE: NaN padding in A and B catches reads past the row width; with beta = 0, NaN in C
    // catches reads of the old C (BLAS ignores it).
    { A = matrix aRows aCols lda uniform Single.NaN
      Lda = lda
      B = matrix bRows bCols ldb uniform Single.NaN
      Ldb = ldb
      C0 = matrix c.M c.N ldc (if c.Beta = 0.0f then (fun () -> Single.NaN) else uniform) Sentinel
      Ldc = ldc }

/// The reference result in double precision and the tolerance bound for each element.
let private oracle (c: Case) (o: Operands) : (int -> int -> float) * float =
    let opA i p = float (if c.TransA then o.A[p * o.Lda + i] else o.A[i * o.Lda + p])
    let opB p j = float (if c.TransB then o.B[j * o.Ldb + p] else o.B[p * o.Ldb + j])
    let maxAbs (xs: float32[]) ld cols =
        xs |> Array.mapi (fun idx x -> if idx % ld < cols then abs (float x) else 0.0) |> Array.fold max 0.0
    let maxA = maxAbs o.A o.Lda (if c.TransA then c.M else c.K)
    let maxB = maxAbs o.B o.Ldb (if c.TransB then c.K else c.N)
    let maxC = if c.Beta = 0.0f then 0.0 else maxAbs o.C0 o.Ldc c.N
    let expected =
        Array2D.init c.M c.N (fun i j ->
            let mutable s = 0.0
            for p in 0 .. c.K - 1 do
                s <- s + opA i p * opB p j
            let old = if c.Beta = 0.0f then 0.0 else float c.Beta * float o.C0[i * o.Ldc + j]
            float c.Alpha * s + old)
    let bound =
        RelTol * (abs (float c.Alpha) * float c.K * maxA * maxB + abs (float c.Beta) * maxC) + AbsTol
    (fun i j -> expected[i, j]), bound

/// Fails with the case, the first bad element and the bound unless `got` matches the oracle and
/// C's padding is untouched.
let private verify (what: string) (c: Case) (o: Operands) (expected: int -> int -> float) bound (got: float32[]) =
    for i in 0 .. c.M - 1 do
        for j in 0 .. o.Ldc - 1 do
            let idx = i * o.Ldc + j
            if idx < got.Length then
                if j < c.N then
                    let err = abs (float got[idx] - expected i j)
                    // NOTE: written so that NaN (err = NaN) fails: NaN <= bound is false.
                    if not (err <= bound) then
                        failwith $"{what}: C[{i},{j}] = {got[idx]}, expected {expected i j} (|err| = {err:E2} > bound {bound:E2}) for {c}"
                elif BitConverter.SingleToInt32Bits got[idx] <> BitConverter.SingleToInt32Bits Sentinel then
                    failwith $"{what}: padding C[{i},{j}] (ldc = {o.Ldc}) was overwritten with {got[idx]} for {c}"

let private runBackend backend (c: Case) (o: Operands) =
    let got = Array.copy o.C0
    Gemm.Sgemm(backend, c.TransA, c.TransB, c.M, c.N, c.K, c.Alpha,
               ReadOnlySpan o.A, o.Lda, ReadOnlySpan o.B, o.Ldb, c.Beta, Span got, o.Ldc)
    got

/// Runs only where OpenBLAS loads: skipped with the reason and the install command elsewhere, failed under CI.
let private requireOpenBlas () =
    let why = if Gemm.OpenBlasAvailable then None else Some OpenBlas.LoadError
    requireNative "OpenBLAS" why OpenBlas.InstallHint

let private requireBackend backend = if backend = GemmKernel.OpenBlas then requireOpenBlas ()

let private checkBackend backend (c: Case) =
    let o = operands c
    let expected, bound = oracle c o
    verify $"{backend}" c o expected bound (runBackend backend c o)

/// Every managed kernel the CPU supports (the scalar one always), not only the default.
let private supportedKernels =
    [ ManagedKernel.Avx512; ManagedKernel.Avx2; ManagedKernel.Scalar ] |> List.filter ManagedGemm.IsSupported

// ---------------------------------------------------------------------------------------------
// 2. Determinism

let private bits (xs: float32[]) = xs |> Array.map BitConverter.SingleToInt32Bits

// ---------------------------------------------------------------------------------------------
// 4. Errors

/// (what is wrong, expected ParamName, transA, transB, m, n, k, a length, lda, b length, ldb, c length, ldc)
let private badArguments =
    [ "negative m", "m", false, false, -1, 2, 2, 4, 2, 4, 2, 4, 2
      "negative n", "n", false, false, 2, -1, 2, 4, 2, 4, 2, 4, 2
      "negative k", "k", false, false, 2, 2, -3, 4, 2, 4, 2, 4, 2
      "lda < k", "lda", false, false, 3, 2, 4, 12, 3, 8, 2, 6, 2
      "lda < m with transA", "lda", true, false, 3, 2, 4, 12, 2, 8, 2, 6, 2
      "ldb < n", "ldb", false, false, 3, 2, 4, 12, 4, 8, 1, 6, 2
      "ldb < k with transB", "ldb", false, true, 3, 2, 4, 12, 4, 8, 3, 6, 2
      "ldc < n", "ldc", false, false, 3, 2, 4, 12, 4, 8, 2, 6, 1
      "lda = 0 for an empty A", "lda", false, false, 0, 2, 0, 0, 0, 0, 2, 0, 2
      "A too short", "a", false, false, 3, 2, 4, 11, 4, 8, 2, 6, 2
      "A too short for its lda", "a", true, false, 3, 2, 4, 20, 7, 8, 2, 6, 2
      "B too short", "b", false, true, 3, 2, 4, 12, 4, 7, 4, 6, 2
      "C too short", "c", false, false, 3, 2, 4, 12, 4, 8, 2, 5, 2
      "C too short for its ldc", "c", false, false, 3, 2, 4, 12, 4, 8, 2, 9, 5 ]

let private yes = Func<bool>(fun () -> true)
let private no = Func<bool>(fun () -> false)
let private why = Func<string>(fun () -> "cannot open shared object file")
/// A calibration that must not run (VAE_GEMM forces the kernel, or OpenBLAS is missing).
let private noCalibration = Func<GemmKernel>(fun () -> failtest "the calibration ran, but the kernel was already decided")
let private calibratedTo (kernel: GemmKernel) = Func<GemmKernel>(fun () -> kernel)

// ---------------------------------------------------------------------------------------------

/// Problems above the single-thread threshold, every transpose pair: m >= n splits rows, m < n columns, and the parts
/// end inside a 16-row or 16-column unit.
let private splitCases =
    [ for (m, n, k) in [ (130, 257, 67); (257, 130, 67); (300, 40, 200); (21, 700, 90); (2000, 20, 270); (20, 2100, 260) ] do
          for ta in [ false; true ] do
              for tb in [ false; true ] ->
                  { TransA = ta; TransB = tb; M = m; N = n; K = k; PadA = 1; PadB = 2; PadC = 3
                    Alpha = 0.5f; Beta = 0.25f; DataSeed = m + n + k } ]

/// The tests of this module.
let tests =
    testList "Gemm" [

        // ---------------------------------------------------------------------------------------------
        // 1. Agreement with the double-precision oracle
        property Seed 250 "managed backend matches a double-precision triple loop" <| fun () ->
            Prop.forAll arbCase (checkBackend GemmKernel.Managed)

        property Seed 250 "OpenBLAS backend matches a double-precision triple loop" <| fun () ->
            requireOpenBlas ()
            Prop.forAll arbCase (checkBackend GemmKernel.OpenBlas)

        testCase "regression cases: both backends match the oracle" <| fun () ->
            for c in regressionCases do
                checkBackend GemmKernel.Managed c
            requireOpenBlas ()
            for c in regressionCases do
                checkBackend GemmKernel.OpenBlas c

        property Seed 150 "every supported managed kernel matches the oracle with 1 to 3 workers" <| fun () ->
            let arb =
                Gen.map3 (fun c kernel threads -> c, kernel, threads) genCase (Gen.elements supportedKernels) (Gen.choose (1, 3))
                |> Arb.fromGen
            Prop.forAll arb (fun (c0, kernel, threads) ->
                // NOTE: the internal entry point takes only non-degenerate problems (the public one handles the rest).
                let c = { c0 with M = max 1 c0.M; N = max 1 c0.N; K = max 1 c0.K; Alpha = (if c0.Alpha = 0.0f then 1.0f else c0.Alpha) }
                let o = operands c
                let expected, bound = oracle c o
                let got = Array.copy o.C0
                Gemm.SgemmManaged(kernel, threads, c.TransA, c.TransB, c.M, c.N, c.K, c.Alpha,
                                  ReadOnlySpan o.A, o.Lda, ReadOnlySpan o.B, o.Ldb, c.Beta, Span got, o.Ldc)
                verify $"{kernel} kernel, {threads} workers" c o expected bound got)

        testCase "negative control: the tolerance catches one missing product term" <| fun () ->
            // One term of C[0,0] has the largest magnitude max|a||b| = 1; an oracle that drops it must be
            // told apart from the real result, or the tolerance would be too loose to mean anything.
            for k in [ 1; 67; 784; 5000 ] do
                let c = { TransA = false; TransB = true; M = 3; N = 2; K = k; PadA = 0; PadB = 0; PadC = 0
                          Alpha = 1.0f; Beta = 0.0f; DataSeed = k }
                let o = operands c
                o.A[k - 1] <- 1.0f
                o.B[k - 1] <- 1.0f
                let expected, bound = oracle c o
                let got = runBackend GemmKernel.Managed c o
                verify "managed" c o expected bound got
                let dropped i j = if i = 0 && j = 0 then expected i j - 1.0 else expected i j
                throws<Exception> (fun () -> verify "control" c o dropped bound got) |> ignore

        testCase "managed result is bitwise identical for 1, 2 and 3 workers and across runs" <| fun () ->
            for kernel in supportedKernels do
                for c in splitCases do
                            let m, n, k, ta, tb = c.M, c.N, c.K, c.TransA, c.TransB
                            let o = operands c
                            let run threads =
                                let got = Array.copy o.C0
                                Gemm.SgemmManaged(kernel, threads, ta, tb, m, n, k, c.Alpha, ReadOnlySpan o.A, o.Lda,
                                                  ReadOnlySpan o.B, o.Ldb, c.Beta, Span got, o.Ldc)
                                bits got
                            let one = run 1
                            for threads in [ 1; 2; 3 ] do
                                Expect.equal (run threads : int[]) one ($"{kernel}, {m}x{n}x{k} ta={ta} tb={tb}, {threads} workers")

        testCase "OpenBLAS split over 1, 2 and 3 workers (rows or columns of C) matches the oracle" <| fun () ->
            requireOpenBlas ()
            for c in splitCases do
                        let m, n, k, ta, tb = c.M, c.N, c.K, c.TransA, c.TransB
                        let o = operands c
                        let expected, bound = oracle c o
                        for threads in [ 1; 2; 3 ] do
                            let got = Array.copy o.C0
                            Gemm.SgemmOpenBlas(threads, ta, tb, m, n, k, c.Alpha, ReadOnlySpan o.A, o.Lda, ReadOnlySpan o.B, o.Ldb,
                                               c.Beta, Span got, o.Ldc)
                            verify $"OpenBLAS, {threads} workers" c o expected bound got

        testCase "concurrent callers get the same results as sequential calls" <| fun () ->
            // Several threads each run multi-worker GEMMs at once (the fork/join state is per calling thread).
            let cases =
                [| for i in 0 .. 11 ->
                       { TransA = i % 2 = 1; TransB = i % 3 = 0; M = 90 + 7 * i; N = 60 + 11 * i; K = 70 + 5 * i
                         PadA = i % 4; PadB = 0; PadC = 1; Alpha = 1.0f; Beta = (if i % 2 = 0 then 0.0f else 0.5f); DataSeed = i } |]
            let ops = cases |> Array.map operands
            let run (c: Case) (o: Operands) =
                let got = Array.copy o.C0
                Gemm.SgemmManaged(ManagedGemm.Best, 2, c.TransA, c.TransB, c.M, c.N, c.K, c.Alpha, ReadOnlySpan o.A, o.Lda,
                                  ReadOnlySpan o.B, o.Ldb, c.Beta, Span got, o.Ldc)
                bits got
            let sequential = Array.map2 run cases ops
            for _ in 1 .. 5 do
                let concurrent = Array.zip cases ops |> Array.Parallel.map (fun (c, o) -> run c o)
                for i in 0 .. cases.Length - 1 do
                    Expect.equal (concurrent[i] : int[]) (sequential[i]) ($"case {i}")

        // ---------------------------------------------------------------------------------------------
        // 3. Degenerate problems (BLAS semantics)
        testList "k = 0 scales C by beta, and beta = 0 clears NaN" [
            for backend in [ GemmKernel.Managed; GemmKernel.OpenBlas ] ->
                testCase (sprintf "%A" backend) <| fun () ->
                requireBackend backend
                let c = [| Single.NaN; Single.PositiveInfinity; 3.0f; Sentinel; -1.0f; Single.NaN; 2.0f; Sentinel |]
                let empty = ReadOnlySpan<float32>([||])
                Gemm.Sgemm(backend, false, false, 2, 3, 0, 1.0f, empty, 1, empty, 3, 0.0f, Span c, 4)
                Expect.equal (c : float32[]) ([| 0.0f; 0.0f; 0.0f; Sentinel; 0.0f; 0.0f; 0.0f; Sentinel |]) "c"
                let c = [| 1.0f; -2.0f; 3.0f; Sentinel; 4.0f |]
                Gemm.Sgemm(backend, true, true, 2, 1, 0, 1.0f, empty, 2, empty, 1, 2.0f, Span c, 4)
                Expect.equal (c : float32[]) ([| 2.0f; -2.0f; 3.0f; Sentinel; 8.0f |]) "c"
        ]

        testList "alpha = 0 does not read A or B" [
            for backend in [ GemmKernel.Managed; GemmKernel.OpenBlas ] ->
                testCase (sprintf "%A" backend) <| fun () ->
                requireBackend backend
                let a = Array.create 6 Single.NaN
                let b = Array.create 6 Single.NaN
                let c = [| 1.0f; 2.0f; 3.0f; 4.0f |]
                Gemm.Sgemm(backend, false, false, 2, 2, 3, 0.0f, ReadOnlySpan a, 3, ReadOnlySpan b, 2, 0.5f, Span c, 2)
                Expect.equal (c : float32[]) ([| 0.5f; 1.0f; 1.5f; 2.0f |]) "c"
        ]

        testList "m = 0 or n = 0 is a no-op" [
            for backend in [ GemmKernel.Managed; GemmKernel.OpenBlas ] ->
                testCase (sprintf "%A" backend) <| fun () ->
                requireBackend backend
                let a = Array.create 12 1.0f
                let c = [| Sentinel; Sentinel |]
                Gemm.Sgemm(backend, false, false, 0, 2, 3, 1.0f, ReadOnlySpan<float32>([||]), 3, ReadOnlySpan a, 2, 0.0f, Span c, 2)
                Gemm.Sgemm(backend, false, false, 2, 0, 3, 1.0f, ReadOnlySpan a, 3, ReadOnlySpan<float32>([||]), 1, 0.0f, Span<float32>([||]), 1)
                Expect.equal (c : float32[]) ([| Sentinel; Sentinel |]) "c"
        ]

        testList "bad arguments raise ArgumentException naming the argument" [
            for backend in [ GemmKernel.Managed; GemmKernel.OpenBlas ] ->
                testCase (sprintf "%A" backend) <| fun () ->
                for (what, param, ta, tb, m, n, k, aLen, lda, bLen, ldb, cLen, ldc) in badArguments do
                    let a, b, c = Array.zeroCreate<float32> aLen, Array.zeroCreate<float32> bLen, Array.zeroCreate<float32> cLen
                    let e =
                        throws<ArgumentException> (fun () ->
                            Gemm.Sgemm(backend, ta, tb, m, n, k, 1.0f, ReadOnlySpan a, lda, ReadOnlySpan b, ldb, 0.0f, Span c, ldc))
                    Expect.equal e.ParamName param what
                    Expect.stringContains e.Message (param + " ") what
        ]

        testCase "the smallest valid arguments are accepted" <| fun () ->
            // The bounds of badArguments are tight: one more element or one more ld makes each call valid.
            let a, b, c = Array.zeroCreate<float32> 12, Array.zeroCreate<float32> 8, Array.zeroCreate<float32> 6
            Gemm.Sgemm(GemmKernel.Managed, false, false, 3, 2, 4, 1.0f, ReadOnlySpan a, 4, ReadOnlySpan b, 2, 0.0f, Span c, 2)
            Gemm.Sgemm(GemmKernel.Managed, true, true, 3, 2, 4, 1.0f, ReadOnlySpan a, 3, ReadOnlySpan b, 4, 0.0f, Span c, 2)
            Gemm.Sgemm(GemmKernel.Managed, false, false, 0, 2, 0, 1.0f, ReadOnlySpan<float32>([||]), 1, ReadOnlySpan<float32>([||]), 2, 0.0f, Span<float32>([||]), 2)
            Expect.allEqual c 0.0f "c"

        testCase "an undefined backend value is rejected" <| fun () ->
            let e =
                throws<ArgumentOutOfRangeException> (fun () ->
                    Gemm.Sgemm(enum<GemmKernel> 7, false, false, 1, 1, 1, 1.0f, ReadOnlySpan [| 1.0f |], 1,
                               ReadOnlySpan [| 1.0f |], 1, 0.0f, Span [| 0.0f |], 1))
            Expect.equal e.ParamName ("backend") "e.ParamName"

        testCase "the thread setting rejects fewer than one thread" <| fun () ->
            let e = throws<ArgumentOutOfRangeException> (fun () -> Parallelism.Threads <- 0)
            Expect.equal e.ParamName ("value") "e.ParamName"

        testCase "VAE_GEMM selects the kernel; unset or empty, the calibration picks it where OpenBLAS loads" <| fun () ->
            for kernel in [ GemmKernel.Managed; GemmKernel.OpenBlas ] do
                Expect.equal (Gemm.SelectKernel(null, yes, why, calibratedTo kernel)) kernel $"unset, calibrated to {kernel}"
                Expect.equal (Gemm.SelectKernel("", yes, why, calibratedTo kernel)) kernel $"empty, calibrated to {kernel}"
            Expect.equal (Gemm.SelectKernel(null, no, why, noCalibration)) GemmKernel.Managed "unset without OpenBLAS: managed, no calibration"
            Expect.equal (Gemm.SelectKernel("managed", yes, why, noCalibration)) GemmKernel.Managed "Gemm.SelectKernel(\"managed\", yes, why, noCalibration)"
            Expect.equal (Gemm.SelectKernel(" Managed ", no, why, noCalibration)) GemmKernel.Managed "Gemm.SelectKernel(\" Managed \", no, why, noCalibration)"
            Expect.equal (Gemm.SelectKernel("openblas", yes, why, noCalibration)) GemmKernel.OpenBlas "Gemm.SelectKernel(\"openblas\", yes, why, noCalibration)"
            Expect.equal (Gemm.SelectKernel("OpenBLAS", yes, why, noCalibration)) GemmKernel.OpenBlas "Gemm.SelectKernel(\"OpenBLAS\", yes, why, noCalibration)"

        testCase "VAE_GEMM=openblas without the library names the variable and the fix" <| fun () ->
            let e = throws<VaeResearchException> (fun () -> Gemm.SelectKernel("openblas", no, why, noCalibration) |> ignore)
            Expect.stringContains e.Message ("VAE_GEMM=openblas") "e.Message"
            Expect.stringContains e.Message OpenBlas.LibraryName "the library it tried"
            Expect.stringContains e.Message ("cannot open shared object file") "e.Message"
            Expect.stringContains e.Message ("apt-get install -y libopenblas0-pthread") "e.Message"
            Expect.stringContains e.Message ("VAE_GEMM=managed") "e.Message"

        testCase "an unknown VAE_GEMM value names the variable and the valid values" <| fun () ->
            for value in [ "mkl"; "OPENBLAS2"; "1" ] do
                let e = throws<VaeResearchException> (fun () -> Gemm.SelectKernel(value, yes, why, noCalibration) |> ignore)
                Expect.stringContains e.Message ($"VAE_GEMM='{value}'") "e.Message"
                Expect.stringContains e.Message ("'managed' or 'openblas'") "e.Message"

        testCase "a bad VAE_GEMM surfaces as VaeResearchException when the backend is first needed" <| fun () ->
            // NOTE: mutates the process environment and the cached choice; the test program runs its tests
            // in sequence (TestSupport.runSuite), and both are restored below.
            let saved = Environment.GetEnvironmentVariable "VAE_GEMM"
            let one = [| 1.0f |]
            try
                Environment.SetEnvironmentVariable("VAE_GEMM", "cuda")
                Gemm.ResetKernelSelection()
                for what, action in
                    [ "Kernel", (fun () -> Gemm.Kernel |> ignore)
                      "KernelDescription", (fun () -> Gemm.KernelDescription |> ignore)
                      "Sgemm", (fun () -> Gemm.Sgemm(false, false, 1, 1, 1, 1.0f, ReadOnlySpan one, 1, ReadOnlySpan one, 1, 0.0f, Span [| 0.0f |], 1)) ] do
                    let e = throws<VaeResearchException> action
                    Expect.stringContains e.Message ("VAE_GEMM='cuda'") what
                Environment.SetEnvironmentVariable("VAE_GEMM", "managed")
                Gemm.ResetKernelSelection()
                Expect.equal Gemm.Kernel GemmKernel.Managed "Gemm.Kernel"
                Expect.stringStarts Gemm.KernelDescription ("managed ") "Gemm.KernelDescription"
            finally
                Environment.SetEnvironmentVariable("VAE_GEMM", saved)
                Gemm.ResetKernelSelection()

        testCase "OpenBLAS loads (CI installs libopenblas0-pthread)" <| fun () ->
            requireOpenBlas ()
            let description = Gemm.Describe GemmKernel.OpenBlas
            Expect.stringStarts description $"openblas ({OpenBlas.LibraryName}, " "description"
            printfn "%s" description

        testCase "the calibration keeps the faster kernel per machine key, and measures again for a new key or a broken file" <| fun () ->
            use folder = new TempFolder "vae-gemm-calibration-"
            let path = folder.File "gemm-calibration.json"
            let calls = ref 0
            let timing (managed: float) (openBlas: float) =
                Func<GemmKernel, float>(fun k -> calls.Value <- calls.Value + 1; if k = GemmKernel.Managed then managed else openBlas)
            Expect.equal (GemmCalibration.Choose(path, "machine A", timing 0.001 0.003)) GemmKernel.Managed "managed is faster"
            Expect.equal calls.Value 2 "both kernels timed once"
            let entries () =
                [ for e in Text.Json.JsonDocument.Parse(File.ReadAllText path).RootElement.GetProperty("entries").EnumerateArray() ->
                    e.GetProperty("key").GetString(), e ]
            let entry key = entries () |> List.find (fun (k, _) -> k = key) |> snd
            Expect.equal ((entry "machine A").GetProperty("choice").GetString()) "managed" "the choice is recorded under its key"
            within 1e-9 ((entry "machine A").GetProperty("managed_ms").GetDouble()) 1.0 "the managed time in ms"
            Expect.equal (GemmCalibration.Choose(path, "machine A", timing 0.003 0.001)) GemmKernel.Managed "same key: the cached choice"
            Expect.equal calls.Value 2 "same key: nothing timed"
            Expect.equal (GemmCalibration.Choose(path, "machine B", timing 0.003 0.001)) GemmKernel.OpenBlas "a new key measures again"
            Expect.equal calls.Value 4 "a new key times both"
            Expect.equal (entries () |> List.map fst) [ "machine A"; "machine B" ] "both keys are kept (say, two thread counts)"
            Expect.equal (GemmCalibration.Choose(path, "machine A", timing 0.003 0.001)) GemmKernel.Managed "the first key is still cached"
            Expect.equal calls.Value 4 "and not timed again"
            // A process that could not take the lock records its key while this one measures: both keys stay.
            let concurrent =
                Func<GemmKernel, float>(fun k ->
                    if k = GemmKernel.OpenBlas then
                        let text = File.ReadAllText path
                        File.WriteAllText(path, text.Replace("\"entries\": [", "\"entries\": [ { \"key\": \"machine E\", \"choice\": \"openblas\" },"))
                    0.002)
            GemmCalibration.Choose(path, "machine D", concurrent) |> ignore
            Expect.equal (entries () |> List.map fst) [ "machine E"; "machine A"; "machine B"; "machine D" ] "an entry written during the measurement is kept"
            File.WriteAllText(path, """{ "key": "machine C", "choice": "openblas" }""")
            Expect.equal (GemmCalibration.Choose(path, "machine C", timing 0.001 0.003)) GemmKernel.OpenBlas "a single-entry file of the earlier format is read"
            File.WriteAllText(path, "{ not json")
            Expect.equal (GemmCalibration.Choose(path, "machine B", timing 0.001 0.003)) GemmKernel.Managed "a broken file measures again"
            Expect.equal (entries () |> List.map fst) [ "machine B" ] "and is replaced"

        testCase "calibrations that start together measure once and all take that choice" <| fun () ->
            use folder = new TempFolder "vae-gemm-calibration-"
            let path = folder.File "gemm-calibration.json"
            use measuring = new Threading.ManualResetEventSlim false
            let secondTimed = ref false
            // The first prefers managed and takes 300 ms; the second, started while the first measures, would prefer OpenBLAS.
            let first =
                Threading.Tasks.Task.Run(fun () ->
                    GemmCalibration.Choose(path, "machine F", Func<GemmKernel, float>(fun k ->
                        measuring.Set()
                        Threading.Thread.Sleep 150
                        if k = GemmKernel.Managed then 0.001 else 0.003)))
            measuring.Wait()
            let second =
                GemmCalibration.Choose(path, "machine F", Func<GemmKernel, float>(fun k ->
                    secondTimed.Value <- true
                    if k = GemmKernel.Managed then 0.003 else 0.001))
            Expect.equal first.Result GemmKernel.Managed "the first measures"
            Expect.equal second GemmKernel.Managed "the second waits for the lock and takes the first one's choice"
            Expect.isFalse secondTimed.Value "the second times nothing"

        testCase "the machine key names the CPU, both kernels and the thread count" <| fun () ->
            let key = GemmCalibration.MachineKey()
            for part in [ "cpu "; ManagedGemm.Describe ManagedGemm.Best; OpenBlas.LibraryName; $"{Parallelism.Threads} threads" ] do
                Expect.stringContains key part "the key"

        testCase "the managed backend describes its kernel and threads" <| fun () ->
            let description = Gemm.Describe GemmKernel.Managed
            Expect.stringStarts description ("managed ") "description"
            Expect.stringContains description (ManagedGemm.Describe ManagedGemm.Best) "description"
            Expect.stringContains description ("thread") "description"
            printfn "%s"($"{description}; kernels tested: %A{supportedKernels}")
    ]
