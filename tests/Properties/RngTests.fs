module VaeResearch.Properties.RngTests

// Properties of the counter-based generator (src/Core.CSharp/Engine/Rng.cs):
//   1. Philox4x32-10 matches the Random123 known-answer vectors and an independent implementation;
//   2. the stream layout (seed -> key, stream -> counter high words, position -> counter low words);
//   3. fills do not depend on the thread count; positions advance as documented;
//   4. seeds, streams and Derive give reproducible, distinct, uncorrelated sequences;
//   5. the distributions are right (tolerances and failure probabilities are named constants below).
//
// Every test seeds its generators explicitly, so every run draws the same numbers: a statistical
// bound that holds once holds always. The failure probabilities state how likely a *correct*
// generator with an arbitrary seed would be to trip each bound.

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.Distributions
open VaeResearch.Engine
open VaeResearch.TestSupport

// ---------------------------------------------------------------------------------------------
// Tolerances

/// Means, variances, correlations and counts are checked to within this many standard errors.
/// Under the null hypothesis (CLT), P(|Z| > 6) = 1.97e-9 per check.
let SigmaBound = 6.0

/// Failure probability under the null for the chi-square and Kolmogorov-Smirnov critical values.
let FailureProbability = 1e-8

/// Kolmogorov-Smirnov critical value for sqrt(n) * D_n: by the Dvoretzky-Kiefer-Wolfowitz inequality
/// (Massart's constant), P(sqrt(n) D_n > x) <= 2 exp(-2 x^2) for every n; solved for FailureProbability
/// this gives x = 3.09.
let KsCritical = sqrt (log (2.0 / FailureProbability) / 2.0)

/// Chi-square critical value with the given degrees of freedom at FailureProbability (MathNet's inverse CDF).
let chiSquareCritical (dof: int) = ChiSquared.InvCDF(float dof, 1.0 - FailureProbability)

/// FillNormal computes Box-Muller in float32 (TensorPrimitives Log/Sqrt/SinCos); the double-precision
/// oracle agrees to a few float32 ulps of the angle times a radius of at most 5.77.
let NormalOracleTolerance = 2e-5

// ---------------------------------------------------------------------------------------------
// 1. Philox4x32-10

/// Philox4x32-10 written from the algorithm's description (Salmon et al., SC'11, and the structure of
/// Random123's philox.h): the key is bumped *before* rounds 2..10, where Rng bumps after every round;
/// the 32x32 -> 64 products are done in uint64. Shares no code with Rng.
let referencePhilox (c0: uint32, c1: uint32, c2: uint32, c3: uint32) (k0: uint32, k1: uint32) =
    let mutable ctr = (c0, c1, c2, c3)
    let mutable key = (k0, k1)
    for round in 1..10 do
        if round > 1 then
            let (a, b) = key
            key <- (a + 0x9E3779B9u, b + 0xBB67AE85u)
        let (x0, x1, x2, x3) = ctr
        let (a, b) = key
        let p0 = uint64 0xD2511F53u * uint64 x0
        let p1 = uint64 0xCD9E8D57u * uint64 x2
        ctr <- (uint32 (p1 >>> 32) ^^^ x1 ^^^ a, uint32 p1, uint32 (p0 >>> 32) ^^^ x3 ^^^ b, uint32 p0)
    ctr

/// The three philox4x32 10-round vectors of Random123's tests/kat_vectors (counter, key, expected),
/// as published in the Random123 distribution (D. E. Shaw Research).
let katVectors =
    [ (0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u), (0x00000000u, 0x00000000u),
      (0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)
      (0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu), (0xffffffffu, 0xffffffffu),
      (0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)
      (0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u), (0xa4093822u, 0x299f31d0u),
      (0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u) ]

let private genUInt32 =
    Gen.map2 (fun (hi: int) (lo: int) -> (uint32 hi <<< 16) ||| uint32 lo) (Gen.choose (0, 0xffff)) (Gen.choose (0, 0xffff))

let private genUInt64 = Gen.map2 (fun (a: uint32) (b: uint32) -> (uint64 a <<< 32) ||| uint64 b) genUInt32 genUInt32

// ---------------------------------------------------------------------------------------------
// 2. Stream layout

/// The block at (seed, stream, position) per the documented layout.
let private block (seed: uint64) (stream: uint64) (position: uint64) =
    referencePhilox (uint32 position, uint32 (position >>> 32), uint32 stream, uint32 (stream >>> 32)) (uint32 seed, uint32 (seed >>> 32))

/// 24-bit uniforms in [0, 1) and (0, 1], as Rng documents them.
let private unit (x: uint32) = float (x >>> 8) / 16777216.0
let private unitOpenZero (x: uint32) = float ((x >>> 8) + 1u) / 16777216.0

let private genStart =
    Gen.oneof [ Gen.choose (0, 1000) |> Gen.map uint64; genUInt64; Gen.constant 0xFFFFFFF0UL ] // the last crosses into the counter's second word

let private arbLayout = Arb.fromGen (Gen.zip3 genUInt64 (Gen.oneof [ Gen.constant 0UL; genUInt64 ]) genStart)

// ---------------------------------------------------------------------------------------------
// 3. Thread-count independence and positions

let private check (ok: bool) (what: string) = if not ok then failwith what

let private withThreads (n: int) (f: unit -> 'a) : 'a =
    let saved = Parallelism.Threads
    try
        Parallelism.Threads <- n
        f ()
    finally
        Parallelism.Threads <- saved

/// Above the parallel threshold (65536 values) and not a whole number of groups, so the tail path runs too.
let ParallelFillLength = 3 * 65536 + 1000

let private fills: (string * (Rng -> float32[] -> unit)) list =
    let probabilities (n: int) = Array.init n (fun i -> float32 (i % 101) / 100.0f)
    [ "FillUniform", (fun rng a -> rng.FillUniform(Span a))
      "FillNormal", (fun rng a -> rng.FillNormal(Span a))
      "FillBernoulli(p)", (fun rng a -> rng.FillBernoulli(Span a, 0.3f))
      "FillBernoulli(probabilities)", (fun rng a -> rng.FillBernoulli(Span a, ReadOnlySpan(probabilities a.Length))) ]

let private blocksFor (n: int) = uint64 ((n + Rng.GroupSize - 1) / Rng.GroupSize) * 64UL

let private arbLength =
    Arb.fromGen (Gen.frequency [ 4, Gen.choose (0, 3000); 1, Gen.elements [ 255; 256; 257; 65535; 65536; 70000 ] ])

// ---------------------------------------------------------------------------------------------
// 4. Seeds, streams, Derive

let private draws (rng: Rng) (n: int) = Array.init n (fun _ -> rng.NextUInt64())

/// Pearson correlation of two samples.
let private correlation (x: float[]) (y: float[]) =
    let mx, my = Array.average x, Array.average y
    let mutable sxy, sxx, syy = 0.0, 0.0, 0.0
    for i in 0 .. x.Length - 1 do
        let dx, dy = x[i] - mx, y[i] - my
        sxy <- sxy + dx * dy
        sxx <- sxx + dx * dx
        syy <- syy + dy * dy
    sxy / sqrt (sxx * syy)

let private uniforms (rng: Rng) (n: int) =
    let a = Array.zeroCreate<float32> n
    rng.FillUniform(Span a)
    Array.map float a

// ---------------------------------------------------------------------------------------------
// 5. Distributions

let StatisticalSampleSize = 1_000_000

let private mean (x: float[]) = Array.average x
let private variance (x: float[]) =
    let m = mean x
    (x |> Array.sumBy (fun v -> (v - m) * (v - m))) / float (x.Length - 1)

/// FsCheck (seed, gamma) every property of this module replays.
let private Seed = (20261201UL, 7919UL)

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Rng" [

        testCase "Philox matches the Random123 known-answer vectors" <| fun () ->
            for ((c0, c1, c2, c3), (k0, k1), expected) in katVectors do
                let struct (r0, r1, r2, r3) = Rng.Philox(c0, c1, c2, c3, k0, k1)
                Expect.equal ((r0, r1, r2, r3)) expected ($"counter {c0:x8} {c1:x8} {c2:x8} {c3:x8}")
                Expect.equal (referencePhilox (c0, c1, c2, c3) (k0, k1)) expected ("the reference implementation")

        property Seed 500 "Philox agrees with the independent implementation on random counters and keys" <| fun () ->
            Prop.forAll (Arb.fromGen (Gen.arrayOfLength 6 genUInt32)) (fun w ->
                let struct (r0, r1, r2, r3) = Rng.Philox(w[0], w[1], w[2], w[3], w[4], w[5])
                (r0, r1, r2, r3) = referencePhilox (w[0], w[1], w[2], w[3]) (w[4], w[5]))

        property Seed 100 "NextUInt64 and FillUniform read the documented blocks" <| fun () ->
            Prop.forAll arbLayout (fun (seed, stream, start) ->
                let rng = Rng(seed, stream, Position = start)
                let (x0, x1, _, _) = block seed stream start
                let first = rng.NextUInt64()
                let values = Array.zeroCreate<float32> 300
                rng.FillUniform(Span values)
                let expected =
                    [| for b in 0UL .. 127UL do
                         let (y0, y1, y2, y3) = block seed stream (start + 1UL + b)
                         yield! [| unit y0; unit y1; unit y2; unit y3 |] |]
                first = (uint64 x0 ||| (uint64 x1 <<< 32))
                && Array.forall2 (fun (v: float32) e -> float v = e) values expected[..299])

        property Seed 40 "FillNormal is Box-Muller over each group of 256 as documented" <| fun () ->
            Prop.forAll arbLayout (fun (seed, stream, start) ->
                let rng = Rng(seed, stream, Position = start)
                let values = Array.zeroCreate<float32> 600
                rng.FillNormal(Span values)
                let expected =
                    [| for g in 0UL .. 2UL do
                         let radius = Array.zeroCreate<float> 128
                         let angle = Array.zeroCreate<float> 128
                         for b in 0 .. 63 do
                             let (x0, x1, x2, x3) = block seed stream (start + 64UL * g + uint64 b)
                             radius[2 * b] <- sqrt (-2.0 * log (unitOpenZero x0))
                             radius[2 * b + 1] <- sqrt (-2.0 * log (unitOpenZero x1))
                             angle[2 * b] <- 2.0 * Math.PI * unit x2
                             angle[2 * b + 1] <- 2.0 * Math.PI * unit x3
                         yield! Array.map2 (fun r a -> r * cos a) radius angle
                         yield! Array.map2 (fun r a -> r * sin a) radius angle |]
                let worst = Seq.map2 (fun (v: float32) e -> abs (float v - e)) values expected |> Seq.max
                worst <= NormalOracleTolerance |> Prop.label $"largest deviation {worst}")

        testCase "fills are identical for 1, 2 and 3 threads" <| fun () ->
            for (name, fill) in fills do
                let run threads =
                    withThreads threads (fun () ->
                        let rng = Rng(20240611UL, 5UL)
                        let a = Array.zeroCreate<float32> ParallelFillLength
                        fill rng a
                        fill rng a // a second fill starts from the advanced position
                        a, rng.Position)
                let (one, p1) = run 1
                for threads in [ 2; 3 ] do
                    let (many, pn) = run threads
                    Expect.equal pn p1 ($"{name}: position with {threads} threads")
                    let mismatch = Array.tryFindIndex id (Array.map2 (fun (a: float32) b -> BitConverter.SingleToUInt32Bits a <> BitConverter.SingleToUInt32Bits b) one many)
                    Expect.isTrue mismatch.IsNone ($"{name}: first differing index with {threads} threads: {mismatch}")

        property Seed 60 "a fill of n values advances Position by ceil(n/256)*64 blocks" <| fun () ->
            Prop.forAll arbLength (fun n ->
                fills
                |> List.forall (fun (_, fill) ->
                    let rng = Rng(7UL, 3UL, Position = 11UL)
                    fill rng (Array.zeroCreate n)
                    rng.Position = 11UL + blocksFor n))

        property Seed 60 "a fill of n values is the prefix of a fill of whole groups; whole-group fills concatenate" <| fun () ->
            Prop.forAll arbLength (fun n ->
                fills
                |> List.forall (fun (name, fill) ->
                    let short = Array.zeroCreate n
                    fill (Rng(9UL)) short
                    let whole = Array.zeroCreate (int (blocksFor n) * 4)
                    fill (Rng(9UL)) whole
                    // Two consecutive fills of whole groups equal one fill of their total length.
                    let split = Rng(9UL)
                    let first = Array.zeroCreate 256
                    let second = Array.zeroCreate (whole.Length)
                    fill split first
                    fill split second
                    let joined = Array.zeroCreate (256 + whole.Length)
                    fill (Rng(9UL)) joined
                    let same (a: float32[]) (b: float32[]) =
                        Array.forall2 (fun (x: float32) y -> BitConverter.SingleToUInt32Bits x = BitConverter.SingleToUInt32Bits y) a b
                    check (same short whole[.. n - 1]) $"{name}: a fill of {n} is not a prefix of a fill of {whole.Length}"
                    // (Per-element probabilities restart at index 0 in each call, so that fill is not concatenable.)
                    if name <> "FillBernoulli(probabilities)" then
                        check (same (Array.append first second) joined) $"{name}: fills of 256 and {second.Length} differ from one of {joined.Length}"
                    true))

        testCase "scalar draws advance Position by one block each and replay after resetting it" <| fun () ->
            let rng = Rng(42UL, 1UL)
            let a = rng.NextUInt64()
            let d = rng.NextDouble()
            Expect.equal rng.Position 2UL "rng.Position"
            rng.Position <- 0UL
            Expect.equal (rng.NextUInt64()) a "rng.NextUInt64()"
            Expect.equal (rng.NextDouble()) d "rng.NextDouble()"
            rng.Position <- 1000UL
            let k = rng.NextInt 1000
            Expect.isGreaterThanOrEqual rng.Position 1001UL "rng.Position"
            rng.Position <- 1000UL
            Expect.equal (rng.NextInt 1000) k "rng.NextInt 1000"

        property Seed 100 "the same seed and stream give the same values" <| fun () ->
            Prop.forAll (Arb.fromGen (Gen.zip genUInt64 genUInt64)) (fun (seed, stream) ->
                let a, b = Rng(seed, stream), Rng(seed, stream)
                let xa, xb = Array.zeroCreate 1000, Array.zeroCreate 1000
                a.FillNormal(Span xa)
                b.FillNormal(Span xb)
                draws a 16 = draws b 16 && xa = xb && a.Seed = seed && a.Stream = stream)

        // Distinct (seed, stream) pairs: no position of 64 draws may agree (each agreement has probability
        // 2^-64 for distinct keys; for the same key Philox is a bijection of the counter, so whole blocks differ).
        property Seed 200 "different seeds or streams give different values" <| fun () ->
            let genPair = Gen.zip genUInt64 (Gen.oneof [ Gen.choose (0, 3) |> Gen.map uint64; genUInt64 ])
            Prop.forAll (Arb.fromGen (Gen.zip genPair genPair |> Gen.filter (fun (a, b) -> a <> b))) (fun ((s1, t1), (s2, t2)) ->
                Array.forall2 (<>) (draws (Rng(s1, t1)) 64) (draws (Rng(s2, t2)) 64))

        testCase "Derive gives reproducible, distinct, uncorrelated streams" <| fun () ->
            let parent = Rng(123UL, 2UL)
            parent.NextUInt64() |> ignore
            let child = parent.Derive 5UL
            Expect.equal child.Seed 123UL "child.Seed"
            Expect.notEqual child.Stream parent.Stream ("a derived stream differs from its parent's")
            // The mixed stream id does not land on small explicit ids (an additive scheme made Derive 0 of stream 0 equal stream 1).
            Expect.isGreaterThan (Rng(123UL, 0UL).Derive(0UL).Stream) 1_000_000UL ("Derive 0 of stream 0 is not a small explicit stream id")
            Expect.equal child.Position 0UL "child.Position"
            Expect.equal (draws (parent.Derive 5UL) 8) (draws (Rng(123UL, 2UL).Derive 5UL) 8) ("Derive ignores the parent's position")
            let n = 200_000
            let streams = [ Rng(123UL, 2UL); parent.Derive 0UL; parent.Derive 1UL; parent.Derive 5UL; parent.Derive(0UL).Derive(0UL) ]
            let samples = streams |> List.map (fun r -> uniforms r n)
            // Under independence the sample correlation has standard error 1/sqrt(n).
            let bound = SigmaBound / sqrt (float n)
            for i in 0 .. samples.Length - 1 do
                for j in i + 1 .. samples.Length - 1 do
                    let r = correlation samples[i] samples[j]
                    Expect.isLessThan (abs r) bound ($"streams {i} and {j}: correlation {r}")
                    // Also lagged by one value: a shifted copy of a stream would show up here.
                    let lagged = correlation (samples[i][1..]) (samples[j][.. n - 2])
                    Expect.isLessThan (abs lagged) bound ($"streams {i} and {j} lagged: correlation {lagged}")

        testCase "FillUniform: values in [0, 1), mean 1/2, variance 1/12" <| fun () ->
            let n = StatisticalSampleSize
            let x = uniforms (Rng(1001UL)) n
            Expect.isTrue (x |> Array.forall (fun v -> v >= 0.0 && v < 1.0)) ("range")
            // Var(U) = 1/12; Var(sample variance) ~ (mu4 - sigma^4)/n = (1/80 - 1/144)/n = 1/(180 n).
            within (float (SigmaBound * sqrt (1.0 / 12.0 / float n))) (float (mean x)) (float (0.5)) ("mean")
            within (float (SigmaBound * sqrt (1.0 / 180.0 / float n))) (float (variance x)) (float (1.0 / 12.0)) ("variance")
            // Chi-square over 1000 equal bins.
            let bins = 1000
            let counts = Array.zeroCreate<int> bins
            for v in x do
                counts[int (v * float bins)] <- counts[int (v * float bins)] + 1
            let e = float n / float bins
            let chi2 = counts |> Array.sumBy (fun c -> (float c - e) ** 2.0 / e)
            Expect.isLessThan chi2 (chiSquareCritical (bins - 1)) ("chi-square over 1000 bins")

        testCase "NextDouble: values in [0, 1) with mean 1/2" <| fun () ->
            let rng = Rng(1002UL)
            let n = 200_000
            let x = Array.init n (fun _ -> rng.NextDouble())
            Expect.isTrue (x |> Array.forall (fun v -> v >= 0.0 && v < 1.0)) ("range")
            within (float (SigmaBound * sqrt (1.0 / 12.0 / float n))) (float (mean x)) (float (0.5)) "mean x"

        testCase "FillNormal: mean 0, variance 1, Kolmogorov-Smirnov against MathNet's normal CDF" <| fun () ->
            let n = StatisticalSampleSize
            let z32 = Array.zeroCreate<float32> n
            Rng(1003UL).FillNormal(Span z32)
            let z = Array.map float z32
            Expect.isTrue (z |> Array.forall Double.IsFinite) ("finite")
            // Var(sample mean) = 1/n; Var(sample variance) ~ (mu4 - sigma^4)/n = 2/n.
            within (float (SigmaBound / sqrt (float n))) (float (mean z)) (float (0.0)) ("mean")
            within (float (SigmaBound * sqrt (2.0 / float n))) (float (variance z)) (float (1.0)) ("variance")
            let sorted = Array.sort z
            let mutable d = 0.0
            for i in 0 .. n - 1 do
                let f = Normal.CDF(0.0, 1.0, sorted[i])
                d <- max d (max (float (i + 1) / float n - f) (f - float i / float n))
            Expect.isLessThan (sqrt (float n) * d) KsCritical ($"KS statistic D = {d}")
            // Tails: P(|Z| > 4) = 6.33e-5, a binomial count.
            let p4 = 2.0 * Normal.CDF(0.0, 1.0, -4.0)
            let tail = z |> Array.sumBy (fun v -> if abs v > 4.0 then 1.0 else 0.0)
            within (float (SigmaBound * sqrt (float n * p4 * (1.0 - p4)))) (float (tail)) (float (p4 * float n)) ("count beyond 4 sigma")

        testCase "FillNormal: the two outputs of each Box-Muller pair are uncorrelated, as are their squares" <| fun () ->
            let groups = StatisticalSampleSize / 256
            let z = Array.zeroCreate<float32> (groups * 256)
            Rng(1004UL).FillNormal(Span z)
            // Pair i of a group is (z[i], z[i + 128]): r cos(theta), r sin(theta).
            let cosines = [| for g in 0 .. groups - 1 do for i in 0 .. 127 -> float z[256 * g + i] |]
            let sines = [| for g in 0 .. groups - 1 do for i in 0 .. 127 -> float z[256 * g + 128 + i] |]
            let bound = SigmaBound / sqrt (float cosines.Length)
            Expect.isLessThan (abs (correlation cosines sines)) bound ("correlation")
            Expect.isLessThan (abs (correlation (Array.map (fun v -> v * v) cosines) (Array.map (fun v -> v * v) sines))) bound ("correlation of squares")

        testCase "FillBernoulli: 0/1 values with mean p" <| fun () ->
            let n = StatisticalSampleSize
            for (seed, p) in [ 1005UL, 0.1f; 1006UL, 0.5f; 1007UL, 0.93f ] do
                let x = Array.zeroCreate<float32> n
                Rng(seed).FillBernoulli(Span x, p)
                Expect.isTrue (x |> Array.forall (fun v -> v = 0.0f || v = 1.0f)) ($"p = {p}: values")
                let p = float p
                within (float (SigmaBound * sqrt (p * (1.0 - p) / float n))) (float (x |> Array.averageBy float)) (float (p)) ($"p = {p}: mean")
            for p in [ 0.0f; 1.0f ] do
                let x = Array.zeroCreate<float32> 1000
                Rng(1008UL).FillBernoulli(Span x, p)
                Expect.isTrue (x |> Array.forall ((=) p)) ($"p = {p} is deterministic")
            for p in [ -0.1f; 1.1f; Single.NaN ] do
                throws<ArgumentOutOfRangeException> (fun () -> Rng(1UL).FillBernoulli(Span(Array.zeroCreate 4), p)) |> ignore

        testCase "FillBernoulli with per-element probabilities has mean p_i" <| fun () ->
            let n = StatisticalSampleSize
            let p = Array.init n (fun i -> float32 ((int64 i * 7919L) % 1000L) / 999.0f)
            let x = Array.zeroCreate<float32> n
            Rng(1009UL).FillBernoulli(Span x, ReadOnlySpan p)
            // sum(x - p) has variance sum p(1 - p).
            let excess = Array.fold2 (fun acc (xi: float32) (pi: float32) -> acc + float xi - float pi) 0.0 x p
            let sd = sqrt (p |> Array.sumBy (fun pi -> float pi * (1.0 - float pi)))
            within (float (SigmaBound * sd)) (float (excess)) (float (0.0)) "excess"
            Expect.isTrue (Array.forall2 (fun (xi: float32) (pi: float32) -> (pi <> 0.0f || xi = 0.0f) && (pi <> 1.0f || xi = 1.0f)) x p) ("p = 0 and p = 1 are deterministic")
            throws<ArgumentException> (fun () -> Rng(1UL).FillBernoulli(Span(Array.zeroCreate 3), ReadOnlySpan(Array.zeroCreate 4))) |> ignore

        testCase "NextInt(n) covers [0, n) uniformly (chi-square)" <| fun () ->
            for (seed, n) in [ 1010UL, 2; 1011UL, 7; 1012UL, 10; 1013UL, 1000 ] do
                let rng = Rng(seed)
                let draws = max 200_000 (200 * n)
                let counts = Array.zeroCreate<int> n
                for _ in 1..draws do
                    let k = rng.NextInt n
                    Expect.isTrue (k >= 0 && k < n) ($"NextInt {n} gave {k}")
                    counts[k] <- counts[k] + 1
                let e = float draws / float n
                let chi2 = counts |> Array.sumBy (fun c -> (float c - e) ** 2.0 / e)
                Expect.isLessThan chi2 (chiSquareCritical (n - 1)) ($"n = {n}")
            // n = 3 * 2^29: 2^32 mod n = 2^30, so a quarter of raw draws must be rejected. Binned into 16 equal
            // ranges the counts are uniform; a modulo-biased generator would put 3/2 of the mass in the low range.
            let n = 3 <<< 29
            let rng = Rng(1014UL)
            let draws = 200_000
            let counts = Array.zeroCreate<int> 16
            for _ in 1..draws do
                let k = rng.NextInt n
                Expect.isTrue (k >= 0 && k < n) "k >= 0 && k < n"
                counts[k / (n / 16)] <- counts[k / (n / 16)] + 1
            let e = float draws / 16.0
            let chi2 = counts |> Array.sumBy (fun c -> (float c - e) ** 2.0 / e)
            Expect.isLessThan chi2 (chiSquareCritical 15) ("n = 3 * 2^29")
            Expect.equal (Rng(1UL).NextInt 1) 0 "Rng(1UL).NextInt 1"
            for bad in [ 0; -1; Int32.MinValue ] do
                throws<ArgumentOutOfRangeException> (fun () -> Rng(1UL).NextInt bad |> ignore) |> ignore

        property Seed 200 "Shuffle gives a permutation" <| fun () ->
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (0, 300)) genUInt64)) (fun (n, seed) ->
                let items = Array.init n id
                Rng(seed).Shuffle(Span items)
                Array.sort items = Array.init n id)

        testCase "Shuffle of 4 items gives all 24 orders equally often (chi-square)" <| fun () ->
            let rng = Rng(1015UL)
            let shuffles = 240_000
            let counts = Collections.Generic.Dictionary<string, int>()
            let items = Array.zeroCreate<int> 4
            for _ in 1..shuffles do
                for i in 0..3 do
                    items[i] <- i
                rng.Shuffle(Span items)
                let key = String.Join(",", items)
                counts[key] <- (match counts.TryGetValue key with
                                | true, c -> c + 1
                                | _ -> 1)
            Expect.equal counts.Count 24 "counts.Count"
            let e = float shuffles / 24.0
            let chi2 = counts.Values |> Seq.sumBy (fun c -> (float c - e) ** 2.0 / e)
            Expect.isLessThan chi2 (chiSquareCritical 23) "chi2"
    ]
