module VaeResearch.Properties.AnalysisTests

// Properties of the analysis layer (src/Analysis.FSharp):
//   1. Parzen window: equals a brute-force double-precision computation, is invariant to the order of
//      the samples, agrees with MathNet's Gaussian kernel density in one dimension, and the sigma search
//      picks the known best sigma of a constructed example (closed form);
//   2. activity: equals a naive two-pass population variance (and MathNet's), histories from activity.csv;
//   3. SVG: every chart is well-formed XML with the expected series, whatever the run names contain;
//   4. PNG: the image grids decode (with a small reader written here) to the expected size;
//   5. run store: clear errors naming the file and the field; parzen.json and eval.json round trips, the eval cell;
//      the inverse normal CDF.
// All generators are seeded (Replay), so every run draws the same cases.

open System
open System.IO
open System.IO.Compression
open System.Xml.Linq
open Expecto
open FsCheck
open FsCheck.FSharp
open MathNet.Numerics.Distributions
open MathNet.Numerics.Statistics
open VaeResearch
open VaeResearch.Analysis
open VaeResearch.Engine
open VaeResearch.Training
open VaeResearch.TestSupport

/// FsCheck (seed, gamma) every property replays.
let private Seed = (20250620UL, 104729UL)

/// The exception thrown by f (the type or a subclass).

// ---------------------------------------------------------------------------------------------
// 1. Parzen window

/// The oracle: log p(x_j) = logsumexp_i(-||x_j - s_i||^2 / (2 sigma^2)) - log m - (d/2) log(2 pi sigma^2),
/// every difference and sum in double, the log-sum-exp with the largest exponent factored out.
let private parzenOracle (samples: Points) (data: Points) (sigma: float) =
    let d = samples.Dim
    Array.init data.Count (fun j ->
        let exponents =
            Array.init samples.Count (fun i ->
                let mutable sum = 0.0
                for c in 0 .. d - 1 do
                    let diff = float data.Values[j * d + c] - float samples.Values[i * d + c]
                    sum <- sum + diff * diff
                -sum / (2.0 * sigma * sigma))
        let top = Array.max exponents
        top + log (exponents |> Array.sumBy (fun e -> exp (e - top)))
        - log (float samples.Count) - 0.5 * float d * log (2.0 * Math.PI * sigma * sigma))

/// Float32 unit roundoff.
let private Eps32 = Math.Pow(2.0, -24.0)

/// Error bound of the implementation's log-density, in nats. The squared distances come from float32
/// coordinates (centred on the samples' mean, so each is at most `spread` in size) through a float32
/// dot product of length d, whose error is at most about d * eps32 * sum |x_c s_c| <= d^2 eps32 spread^2
/// (Higham's gamma_d bound); with the -2 factor and the float32 rounding of the centred coordinates we
/// allow 8 times that, divided by 2 sigma^2 (the scale of the exponents). A correct implementation never
/// fails it (it is a worst-case bound, not a statistical one).
let private parzenTolerance (dim: int) (spread: float) (sigma: float) =
    8.0 * float dim * float dim * Eps32 * spread * spread / (2.0 * sigma * sigma) + 1e-9

type private ParzenCase =
    { Samples: Points
      Data: Points
      Sigma: float
      Spread: float
      Permutation: int[] }

let private genParzenCase =
    gen {
        let! m = Gen.choose (1, 40)
        let! n = Gen.choose (1, 12)
        let! dim = Gen.choose (1, 24)
        // A common offset far from 0 exercises the centring (without it the float32 norms would cancel).
        let! offset = Gen.elements [ 0.0; 3.0; 1000.0 ]
        let! spread = Gen.elements [ 1.0; 0.25 ]
        let! sigma = Gen.elements (Array.append Parzen.SigmaGrid [| 0.03; 2.5 |])
        let! seed = Gen.choose (0, Int32.MaxValue)
        let! permutation = Gen.shuffle [| 0 .. m - 1 |]
        let random = Random seed
        let values count = Array.init (count * dim) (fun _ -> float32 (offset + spread * random.NextDouble()))
        return
            { Samples = Parzen.points (values m) m dim
              Data = Parzen.points (values n) n dim
              Sigma = sigma
              Spread = spread
              Permutation = permutation }
    }

/// Samples in two clusters, 19 at A and 1 at B (far from A); validation and test points sit at A plus or
/// minus tau on every coordinate, so ||x - A||^2 = d tau^2 exactly and B adds less than e^-70 relative for
/// every sigma of the grid. The Parzen density is then (19/20) N(x; A, sigma^2 I), whose mean log-likelihood
/// -d tau^2/(2 sigma^2) + log(19/20) - (d/2) log(2 pi sigma^2) is maximal at sigma = tau exactly.
let private constructedCase (tau: float) =
    let d = 16
    let random = Random 11
    let a, b = 0.25, 4.25
    let samples = Array.init (20 * d) (fun i -> float32 (if i / d < 19 then a else b))
    let near count = Array.init (count * d) (fun _ -> float32 (a + (if random.Next 2 = 0 then tau else -tau)))
    Parzen.points samples 20 d, Parzen.points (near 50) 50 d, Parzen.points (near 80) 80 d

/// The float32 distances of the constructed case: centred coordinates are below 4.25 in size (B's after
/// centring on the samples' mean), see parzenTolerance.
let private ConstructedSpread = 4.25

// ---------------------------------------------------------------------------------------------
// 2. Activity

/// Naive two-pass population variance of each column, in double.
let private naiveActivity (values: float32[]) (n: int) (latent: int) =
    Array.init latent (fun u ->
        let column = Array.init n (fun i -> float values[i * latent + u])
        let mean = Array.sum column / float n
        (column |> Array.sumBy (fun v -> (v - mean) * (v - mean))) / float n)

/// A run record with the given activity rows (no files behind it; history only reads the rows).
let private runWith (latent: int) (metrics: MetricsRow[]) (activity: ActivityRow[]) (name: string) =
    { Path = Path.Combine(Path.GetTempPath(), "not-a-run")
      Name = name
      Config = TrainConfig(Latent = latent)
      Metrics = metrics
      Activity = activity
      Eval = None
      Parzen = None
      HasCheckpoint = false }

let private activityRows (epochs: int) (latent: int) (seed: int) =
    let random = Random seed
    [| for e in 1 .. epochs do
           for u in 0 .. latent - 1 -> ActivityRow(e, u, Math.Pow(10.0, -5.0 + 5.5 * random.NextDouble()), 3.0 * random.NextDouble()) |]

// ---------------------------------------------------------------------------------------------
// 3. SVG

let private svgNamespace = XNamespace.Get "http://www.w3.org/2000/svg"

/// Parses the rendered SVG (fails on malformed XML) and checks the root and that no attribute holds NaN.
let private parseSvg (node: SvgNode) =
    let doc = XDocument.Parse(Svg.render node)
    let root = nonNull doc.Root
    Expect.equal root.Name (svgNamespace + "svg") "root.Name"
    for e in root.DescendantsAndSelf() do
        for a in e.Attributes() do
            notContains a.Value ("NaN") ($"attribute {a.Name} of <{e.Name.LocalName}>")
    root

let private withClass (cls: string) (root: XElement) =
    root.Descendants(svgNamespace + "g") |> Seq.filter (fun g -> (match g.Attribute(XName.Get "class") with null -> "" | a -> a.Value) = cls) |> Seq.toList

let private titleOf (g: XElement) = match g.Element(svgNamespace + "title") with null -> "" | t -> t.Value

let private pointCount (g: XElement) =
    match g.Element(svgNamespace + "polyline") with
    | null -> 0
    | p -> (nonNull (p.Attribute(XName.Get "points"))).Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length

/// Run names with characters XML must escape.
let private awkwardNames = [ "vae"; "a<b & c>"; "quote \"q\" 'apostrophe'"; "ünïcödé λ=0.5"; "tab\there" ]

let private genRuns =
    gen {
        let! count = Gen.choose (1, 4)
        let! names = Gen.arrayOfLength count (Gen.elements awkwardNames)
        let! lengths = Gen.arrayOfLength count (Gen.choose (1, 30))
        let! latent = Gen.choose (1, 12)
        let! seed = Gen.choose (0, Int32.MaxValue)
        let random = Random seed
        return
            [ for i in 0 .. count - 1 ->
                  let metrics =
                      [| for e in 1 .. lengths[i] ->
                             let b = -200.0 + 10.0 * float e + random.NextDouble()
                             MetricsRow(e, 1e-3, 1.0, b - 5.0, b, 20.0 * random.NextDouble(), random.Next(latent + 1), 0.5) |]
                  runWith latent metrics (activityRows lengths[i] latent (seed + i)) $"{names[i]}" ]
    }

// ---------------------------------------------------------------------------------------------
// 4. PNG

/// CRC-32 (ISO 3309, as PNG uses it) bit by bit: an oracle independent of the writer's table.
let private crc32 (bytes: byte seq) =
    let mutable crc = 0xFFFFFFFFu
    for b in bytes do
        crc <- crc ^^^ uint32 b
        for _ in 1 .. 8 do
            crc <- if crc &&& 1u <> 0u then 0xEDB88320u ^^^ (crc >>> 1) else crc >>> 1
    crc ^^^ 0xFFFFFFFFu

/// A decoded 8-bit PNG: size, channels and the raw scanlines without their filter bytes.
type private Decoded = { Width: int; Height: int; Channels: int; Pixels: byte[] }

/// A small PNG reader for the tests: checks the signature, every chunk's CRC, IHDR, inflates IDAT and
/// undoes filter type 0 (the writer uses no other).
let private readPng (path: string) =
    let bytes = File.ReadAllBytes path
    Expect.equal (bytes[.. 7]) ([| 137uy; 80uy; 78uy; 71uy; 13uy; 10uy; 26uy; 10uy |]) ("PNG signature")
    let be (i: int) = (int bytes[i] <<< 24) ||| (int bytes[i + 1] <<< 16) ||| (int bytes[i + 2] <<< 8) ||| int bytes[i + 3]
    let mutable position = 8
    let chunks = ResizeArray<string * byte[]>()
    while position < bytes.Length do
        let length = be position
        let kind = Text.Encoding.ASCII.GetString(bytes, position + 4, 4)
        let data = bytes[position + 8 .. position + 8 + length - 1]
        let stored = uint32 (be (position + 8 + length))
        Expect.equal stored (crc32 bytes[position + 4 .. position + 8 + length - 1]) ($"CRC of {kind}")
        chunks.Add((kind, data))
        position <- position + 12 + length
    Expect.equal (chunks |> Seq.map fst |> Seq.toList) ([ "IHDR"; "IDAT"; "IEND" ]) "chunks |> Seq.map fst |> Seq.toList"
    let header = snd chunks[0]
    let width = (int header[0] <<< 24) ||| (int header[1] <<< 16) ||| (int header[2] <<< 8) ||| int header[3]
    let height = (int header[4] <<< 24) ||| (int header[5] <<< 16) ||| (int header[6] <<< 8) ||| int header[7]
    Expect.equal (header[8]) 8uy ("bit depth")
    let channels = match header[9] with 0uy -> 1 | 2uy -> 3 | c -> failwith $"colour type {c}"
    use inflated = new MemoryStream()
    do
        use z = new ZLibStream(new MemoryStream(snd chunks[1]), CompressionMode.Decompress)
        z.CopyTo inflated
    let raw = inflated.ToArray()
    let stride = width * channels
    Expect.equal raw.Length (height * (1 + stride)) ("scanline bytes")
    let pixels = Array.zeroCreate<byte> (height * stride)
    for y in 0 .. height - 1 do
        Expect.equal (raw[y * (1 + stride)]) 0uy ("filter type")
        Array.blit raw (y * (1 + stride) + 1) pixels (y * stride) stride
    { Width = width; Height = height; Channels = channels; Pixels = pixels }

/// Grid side for k images in a row: k 28-pixel images with 1-pixel borders.
let private side (k: int) = k * 29 + 1

/// A small untrained model (weights from a fixed seed) for image tests.
let private smallModel (configure: TrainConfig) = ModelFactory.Build(configure, 784, Rng(5UL))

/// A run folder with a valid config.json and the given metrics.csv text.
let private runFolderWith (folder: TempFolder) (metricsText: string) =
    let run = RunFolder.Create(folder.File "run")
    run.WriteConfig(TrainConfig(Latent = 3))
    File.WriteAllText(run.MetricsPath, metricsText)
    run

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Analysis" [

        property Seed 150 "Parzen log-density equals the brute-force double computation" <| fun () ->
            Prop.forAll (Arb.fromGen genParzenCase) (fun case ->
                let actual = Parzen.logDensity case.Samples case.Data case.Sigma
                let expected = parzenOracle case.Samples case.Data case.Sigma
                let tolerance = parzenTolerance case.Samples.Dim case.Spread case.Sigma
                for j in 0 .. expected.Length - 1 do
                    Expect.isLessThanOrEqual (abs (actual[j] - expected[j])) (tolerance + 1e-12 * abs expected[j]) ($"point {j}: {actual[j]} vs oracle {expected[j]} (m = {case.Samples.Count}, d = {case.Samples.Dim}, sigma = {case.Sigma})")
                true)

        property Seed 100 "Parzen log-density does not depend on the order of the samples" <| fun () ->
            Prop.forAll (Arb.fromGen genParzenCase) (fun case ->
                let d = case.Samples.Dim
                let permuted =
                    Parzen.points (case.Permutation |> Array.collect (fun i -> case.Samples.Values[i * d .. i * d + d - 1])) case.Samples.Count d
                let a = Parzen.logDensity case.Samples case.Data case.Sigma
                let b = Parzen.logDensity permuted case.Data case.Sigma
                // Both are within the oracle's bound of the exact value, so they differ by at most twice that.
                let tolerance = 2.0 * parzenTolerance d case.Spread case.Sigma
                Array.forall2 (fun (x: float) y -> abs (x - y) <= tolerance + 1e-12 * abs x) a b)

        property Seed 100 "Parzen agrees with MathNet's Gaussian kernel density in one dimension" <| fun () ->
            Prop.forAll (Arb.fromGen genParzenCase) (fun case ->
                // Keep the first coordinate of every point: a one-dimensional case with the same values.
                let column (p: Points) = Parzen.points (Array.init p.Count (fun i -> p.Values[i * p.Dim])) p.Count 1
                let samples, data = column case.Samples, column case.Data
                let sigma = max 0.1 case.Sigma
                let actual = Parzen.logDensity samples data sigma
                let values = samples.Values |> Array.map float
                for j in 0 .. data.Count - 1 do
                    let density = KernelDensity.EstimateGaussian(float data.Values[j], sigma, values)
                    Expect.isLessThanOrEqual (abs (actual[j] - log density)) (parzenTolerance 1 case.Spread sigma + 1e-12) ($"x = {data.Values[j]}, sigma = {sigma}")
                true)

        testCase "the sigma search picks the known best sigma of a constructed example, and the test estimate its closed form" <| fun () ->
            for k, tau in Array.indexed Parzen.SigmaGrid do
                let samples, validation, test = constructedCase tau
                let result = Parzen.evaluate samples validation test None
                Expect.equal result.Sigma tau ($"grid point {k}")
                let d = 16.0
                let closedForm = -d / 2.0 + log (19.0 / 20.0) - d / 2.0 * log (2.0 * Math.PI * tau * tau)
                let tolerance = parzenTolerance 16 ConstructedSpread tau
                within (float (tolerance)) (float (result.LogLikelihood)) (float (closedForm)) ($"grid point {k}")
                Expect.isLessThanOrEqual result.StandardError tolerance ("every test point has the same density")
                Expect.equal (result.SigmaSearch |> Array.map fst) Parzen.SigmaGrid "result.SigmaSearch |> Array.map fst"
                Expect.equal ((result.NSamples, result.NValidation, result.NTest)) ((20, 50, 80)) "(result.NSamples, result.NValidation, result.NTest)"

        testCase "the sigma grid is logspace(-1, 0, 10) and a given sigma skips the search" <| fun () ->
            Expect.equal Parzen.SigmaGrid.Length 10 "Parzen.SigmaGrid.Length"
            within (float (1e-15)) (float (Parzen.SigmaGrid[0])) (float (0.1)) "Parzen.SigmaGrid[0]"
            within (float (1e-15)) (float (Parzen.SigmaGrid[9])) (float (1.0)) "Parzen.SigmaGrid[9]"
            for i in 1 .. 9 do
                within (float (1e-12)) (float (Parzen.SigmaGrid[i] / Parzen.SigmaGrid[i - 1])) (float (Math.Pow(10.0, 1.0 / 9.0))) "Parzen.SigmaGrid[i] / Parzen.SigmaGrid[i - 1]"
            let samples, validation, test = constructedCase 0.3
            let result = Parzen.evaluate samples validation test (Some 0.5)
            Expect.equal result.Sigma 0.5 "result.Sigma"
            Expect.hasLength result.SigmaSearch 1 "result.SigmaSearch"

        testCase "Parzen rejects a bad sigma and mismatched dimensions with clear errors" <| fun () ->
            let p = Parzen.points [| 0.0f; 1.0f |] 1 2
            let q = Parzen.points [| 0.0f; 1.0f; 2.0f |] 1 3
            Expect.stringContains ((catches<VaeResearchException> (fun () -> Parzen.logDensity p p 0.0 |> ignore)).Message) ("sigma") "(catches<VaeResearchException> (fun () -> Parzen.logDensity p p 0.0 |> ignore)).Message"
            Expect.stringContains ((catches<VaeResearchException> (fun () -> Parzen.logDensity p q 0.1 |> ignore)).Message) ("dimension") "(catches<VaeResearchException> (fun () -> Parzen.logDensity p q 0.1 |> ignore)).Message"
            Expect.equal (Parzen.bestSigma [| 0.1, nan; 0.2, -5.0; 0.3, -5.0 |]) ((0.2, -5.0)) ("NaN loses, ties go to the smaller sigma")

        testCase "Parzen log-density stays finite far from every sample, where exp underflows" <| fun () ->
            let samples = Parzen.points [| 0.0f; 0.0f; 1.0f; 1.0f |] 2 2
            let far = Parzen.points [| 50.0f; 50.0f |] 1 2
            let actual = Parzen.logDensity samples far 0.1
            let expected = parzenOracle samples far 0.1
            Expect.isTrue (Double.IsFinite actual[0]) ($"got {actual[0]}")
            within (float (1e-6 * abs expected[0])) (float (actual[0])) (float (expected[0])) "actual[0]"

        property Seed 200 "activity equals a naive two-pass population variance and MathNet's" <| fun () ->
            let genCase =
                gen {
                    let! n = Gen.choose (1, 60)
                    let! latent = Gen.choose (1, 8)
                    let! scale = Gen.elements [ 1e-3; 1.0; 30.0 ]
                    let! offset = Gen.elements [ 0.0; 5.0; -100.0 ]
                    let! seed = Gen.choose (0, Int32.MaxValue)
                    let random = Random seed
                    return n, latent, Array.init (n * latent) (fun _ -> float32 (offset + scale * (random.NextDouble() - 0.5)))
                }
            Prop.forAll (Arb.fromGen genCase) (fun (n, latent, values) ->
                let actual = Activity.ofMeans values n latent
                let naive = naiveActivity values n latent
                for u in 0 .. latent - 1 do
                    let column = Array.init n (fun i -> float values[i * latent + u])
                    let mathNet = Statistics.PopulationVariance column
                    // Same two-pass formula in double: equal to rounding; MathNet's one-pass algorithm differs in the last digits.
                    within (float (1e-12 * max naive[u] 1e-300)) (float (actual[u])) (float (naive[u])) ($"unit {u}")
                    within (float (1e-9 * max mathNet 1e-12)) (float (actual[u])) (float (mathNet)) ($"unit {u} vs MathNet")
                let threshold = 1e-4
                Activity.activeCount threshold actual = (actual |> Array.filter (fun a -> a > threshold) |> Array.length))

        testCase "sorted units go from most to least active, ties by index" <| fun () ->
            Expect.equal (Activity.sortedUnits [| 0.5; 2.0; 0.5; 0.0; 3.0 |]) ([| 4; 1; 0; 2; 3 |]) "Activity.sortedUnits [| 0.5; 2.0; 0.5; 0.0; 3.0 |]"
            Expect.equal Activity.PaperThresholds ([| 0.01; 0.02; 0.1 |]) "Activity.PaperThresholds"

        property Seed 100 "activity histories hold every row of activity.csv in any order, and per-epoch counts match" <| fun () ->
            let genCase =
                gen {
                    let! epochs = Gen.choose (1, 12)
                    let! latent = Gen.choose (1, 10)
                    let! seed = Gen.choose (0, Int32.MaxValue)
                    let rows = activityRows epochs latent seed
                    let! order = Gen.shuffle rows
                    return epochs, latent, rows, order
                }
            Prop.forAll (Arb.fromGen genCase) (fun (epochs, latent, rows, order) ->
                let history = Activity.history (runWith latent [||] order "run")
                Expect.equal history.Epochs ([| 1 .. epochs |]) "history.Epochs"
                for r in rows do
                    Expect.equal (history.Activity[r.Epoch - 1][r.Unit]) r.Activity "history.Activity[r.Epoch - 1][r.Unit]"
                    Expect.equal (history.Kl[r.Epoch - 1][r.Unit]) r.Kl "history.Kl[r.Epoch - 1][r.Unit]"
                let counts = Activity.activeCounts 0.02 history
                counts
                |> Array.forall (fun (e, c) -> c = (rows |> Array.filter (fun r -> r.Epoch = e && r.Activity > 0.02) |> Array.length)))

        testCase "an activity history with a missing or repeated unit is an error naming activity.csv" <| fun () ->
            let rows = activityRows 2 3 1
            let missing = catches<FileFormatException> (fun () -> Activity.history (runWith 3 [||] rows[.. rows.Length - 2] "r") |> ignore)
            Expect.stringContains missing.Message ("activity.csv") "missing.Message"
            Expect.stringContains missing.Field ("epoch 2, unit 2") "missing.Field"
            let repeated = catches<FileFormatException> (fun () -> Activity.history (runWith 3 [||] (Array.append rows [| rows[0] |]) "r") |> ignore)
            Expect.stringContains repeated.Field ("epoch 1, unit 0") "repeated.Field"
            let outside = catches<FileFormatException> (fun () -> Activity.history (runWith 2 [||] rows "r") |> ignore)
            Expect.stringContains outside.Message ("latent = 2") "outside.Message"

        property Seed 60 "bound and active-unit charts are well-formed SVG with one series per line" <| fun () ->
            Prop.forAll (Arb.fromGen genRuns) (fun runs ->
                let bound = parseSvg (Charts.bound runs)
                let series = withClass "series" bound
                Expect.equal (series |> List.map titleOf) ([ for r in runs do yield r.Name + " test"; yield r.Name + " train" ]) "series |> List.map titleOf"
                Expect.equal (series |> List.map pointCount) ([ for r in runs do yield r.Metrics.Length; yield r.Metrics.Length ]) "series |> List.map pointCount"
                let active = parseSvg (Charts.activeUnits runs 0.01)
                let activeSeries = withClass "series" active
                Expect.equal (activeSeries |> List.map titleOf) ([ for r in runs -> r.Name ]) "activeSeries |> List.map titleOf"
                Expect.equal (activeSeries |> List.map pointCount) ([ for r in runs -> r.Metrics.Length ]) "activeSeries |> List.map pointCount"
                Expect.hasLength (withClass "legend" bound) 1 "withClass \"legend\" bound"
                true)

        testCase "a long run's active units per epoch are on a log(1 + epoch) axis; a short run's on a linear one" <| fun () ->
            let chart epochs = parseSvg (Charts.activeUnits [ runWith 3 [||] (activityRows epochs 3 7) "r" ] 0.01)
            let texts (root: XElement) = [ for t in (withClass "x-axis" root |> List.exactlyOne).Elements(svgNamespace + "text") -> t.Value ]
            let xOf (s: string) = float (s.Split(',')[0])
            let long = chart Charts.LogEpochsFrom
            Expect.equal (texts long) [ "0"; "1"; "2"; "5"; "10"; "20"; "50"; "100"; "200"; "500"; "1000"; "epoch (log scale: log(1 + epoch))" ] "ticks and label"
            // Every point lies where the axis puts its epoch: the tick lines at 0 and 1000 fix the map x = a + b log10(1 + e).
            let ticks = [ for l in (withClass "x-axis" long |> List.exactlyOne).Elements(svgNamespace + "line") -> float (nonNull (l.Attribute(XName.Get "x1"))).Value ]
            let at e = ticks[0] + (List.last ticks - ticks[0]) * log10 (1.0 + e) / log10 (1.0 + float Charts.LogEpochsFrom)
            let line = nonNull ((withClass "series" long |> List.exactlyOne).Element(svgNamespace + "polyline"))
            let points = (nonNull (line.Attribute(XName.Get "points"))).Value.Split(' ')
            Expect.hasLength points Charts.LogEpochsFrom "one point per epoch"
            for e, point in Array.indexed points |> Array.map (fun (i, p) -> float (i + 1), p) do
                within 0.01 (xOf point) (at e) $"epoch {e}"
            Expect.equal (texts (chart 40) |> List.last) "epoch" "40 epochs: a linear axis"
            Expect.contains (texts (chart 40)) "40" "ticks at linear steps"

        testCase "a title longer than the chart is shrunk to fit its width" <| fun () ->
            let size (title: string) =
                let units = [| for u in 0 .. 9 -> { Unit = u; Activity = 0.1 * float u; Kl = 0.1 } |]
                let root = parseSvg (Charts.sortedActivity title units 0.02)
                let heading = root.Descendants(svgNamespace + "text") |> Seq.find (fun t -> t.Value.StartsWith title)
                float (nonNull (heading.Attribute(XName.Get "font-size"))).Value, float (nonNull (heading.Attribute(XName.Get "x"))).Value
            Expect.equal (size "short") (15.0, Charts.Width / 2.0) "a short title: 15 px, centred on the chart"
            let long = String.replicate 120 "m"
            let fontSize, _ = size long
            // The title is "TITLE: n of N units active (...)": its estimated width at 0.62 em per character fits 780 px.
            Expect.isLessThan fontSize 15.0 "shrunk"
            Expect.isLessThanOrEqual (0.62 * fontSize * float (long.Length + ": 9 of 10 units active (A_u > 0.02)".Length)) (Charts.Width - 16.0 + 1e-6) "fits"

        property Seed 30 "the shade plot has one row per unit in initial-activity order, binning long runs" <| fun () ->
            let genCase =
                gen {
                    let! epochs = Gen.elements [ 1; 2; 7; 40; Charts.MaxShadeColumns + 57 ]
                    let! latent = Gen.choose (1, 25)
                    let! seed = Gen.choose (0, Int32.MaxValue)
                    return epochs, latent, seed
                }
            Prop.forAll (Arb.fromGen genCase) (fun (epochs, latent, seed) ->
                let run = runWith latent [||] (activityRows epochs latent seed) "shade"
                let root = parseSvg (Charts.shade run 0.01)
                let rows = withClass "unit" root
                let order = Activity.initialOrder (Activity.history run)
                Expect.equal (rows |> List.map titleOf) ([ for rank, u in Array.indexed order -> $"unit {u} (rank {rank + 1})" ]) "rows |> List.map titleOf"
                // Each row covers the same width: merged cells never exceed the column count.
                for row in rows do
                    let cells = row.Elements(svgNamespace + "rect") |> Seq.length
                    inRange 1 (min epochs Charts.MaxShadeColumns) cells "cells"
                Expect.hasLength (withClass "colour-bar" root) 1 "withClass \"colour-bar\" root"
                true)

        property Seed 60 "sorted activity has one bar per unit and the KL line; the scatter one series per label" <| fun () ->
            let genCase =
                gen {
                    let! latent = Gen.choose (1, 60)
                    let! points = Gen.choose (1, 300)
                    let! seed = Gen.choose (0, Int32.MaxValue)
                    return latent, points, seed
                }
            Prop.forAll (Arb.fromGen genCase) (fun (latent, n, seed) ->
                let random = Random seed
                let units = Array.init latent (fun u -> { Unit = u; Activity = Math.Pow(10.0, -4.0 + 4.5 * random.NextDouble()); Kl = 2.0 * random.NextDouble() })
                let root = parseSvg (Charts.sortedActivity "a<b>" units 0.02)
                match withClass "series" root with
                | [ bars; kl ] ->
                    Expect.equal (titleOf bars) ("activity") "titleOf bars"
                    Expect.equal (bars.Elements(svgNamespace + "rect") |> Seq.length) latent "bars.Elements(svgNamespace + \"rect\") |> Seq.length"
                    Expect.equal (pointCount kl) latent "pointCount kl"
                | other -> failtest $"expected two series, got {other.Length}"
                let points = Array.init n (fun _ -> 4.0 * random.NextDouble() - 2.0, 6.0 * random.NextDouble() - 3.0)
                let labels = Array.init n (fun _ -> random.Next 10)
                let scatter = parseSvg (Charts.scatter "z" points labels)
                let groups = withClass "series" scatter
                Expect.equal (groups |> List.map titleOf) ([ for c in Array.distinct labels |> Array.sort -> $"label {c}" ]) "groups |> List.map titleOf"
                Expect.equal (groups |> List.sumBy (fun g -> g.Elements(svgNamespace + "circle") |> Seq.length)) n "groups |> List.sumBy (fun g -> g.Elements(svgNamespace + \"circle\") |> Seq.length)"
                true)

        property Seed 300 "SVG text and attributes round-trip any string through XML, control characters dropped" <| fun (s: string) ->
            let s = if isNull (box s) then "" else s
            let root = parseSvg (Svg.document 10.0 10.0 [ Svg.text 1.0 2.0 "start" s [ "data-x", s ] ])
            let text = root.Descendants(svgNamespace + "text") |> Seq.exactlyOne
            let kept = String(s |> Seq.filter (fun c -> c >= ' ' || c = '\n' || c = '\t' || c = '\r') |> Seq.toArray)
            let attribute = (nonNull (text.Attribute(XName.Get "data-x"))).Value
            // XML normalizes line breaks in text and white space in attributes; compare without them.
            let squash (v: string) = v.Replace("\r", "").Replace("\n", "").Replace("\t", "")
            squash text.Value = squash kept && squash attribute = squash (kept.Replace("\r\n", " ").Replace('\n', ' ').Replace('\r', ' ').Replace('\t', ' '))

        property Seed 300 "axis ticks are evenly spaced, inside the data range or covering it when padded" <| fun () ->
            let genCase =
                gen {
                    let! lo = Gen.choose (-100000, 100000) |> Gen.map (fun i -> float i / 100.0)
                    let! width = Gen.elements [ 0.0; 1e-3; 0.7; 3.0; 55.0; 1234.0 ]
                    let! target = Gen.choose (3, 10)
                    let! integer = Gen.elements [ false; true ]
                    return lo, lo + width, target, integer
                }
            Prop.forAll (Arb.fromGen genCase) (fun (lo, hi, target, integer) ->
                let a0, a1, padded, step = Charts.ticks lo hi target integer true
                Expect.isLessThanOrEqual a0 lo "a0"
                Expect.isGreaterThanOrEqual a1 hi "a1"
                inRange 2 (3 * target + 3) padded.Length "padded.Length"
                for i in 1 .. padded.Length - 1 do
                    within (float (1e-9 * max 1.0 (abs padded[i]))) (float (padded[i] - padded[i - 1])) (float (step)) "padded[i] - padded[i - 1]"
                let b0, b1, inside, _ = Charts.ticks lo hi target integer false
                inside |> Array.forall (fun t -> t >= b0 - 1e-9 * max 1.0 (abs t) && t <= b1 + 1e-9 * max 1.0 (abs t)))

        testCase "image grids decode to the expected size" <| fun () ->
            use folder = new TempFolder("vae-analysis-test-")
            let vae = smallModel (TrainConfig(Latent = 2, Hidden = [| 8 |]))
            let images = Array.init (7 * 784) (fun i -> float32 ((i * 37) % 101) / 100.0f)
            Images.reconstructions vae images 7 3 (folder.File "recon.png")
            let recon = readPng (folder.File "recon.png")
            // 7 inputs fill 3 rows of 3, then 7 reconstructions another 3 rows.
            Expect.equal ((recon.Width, recon.Height, recon.Channels)) ((side 3, side 6, 1)) "(recon.Width, recon.Height, recon.Channels)"
            Images.samples vae 10 0UL (folder.File "samples.png")
            let samples = readPng (folder.File "samples.png")
            Expect.equal ((samples.Width, samples.Height)) ((side 4, side 3)) ("10 samples in a near-square grid of 4 columns")
            Images.manifold vae 6 (folder.File "lattice.png")
            Expect.equal ((let p = readPng (folder.File "lattice.png") in p.Width, p.Height)) ((side 6, side 6)) "(let p = readPng (folder.File \"lattice.png\") in p.Width, p.Height)"
            let evae = smallModel (TrainConfig(Model = ModelKind.Evae, Latent = 6, EpitomeSize = Nullable 2, Hidden = [| 8 |]))
            Images.epitomeSamples evae 5 0UL (folder.File "epitomes.png")
            Expect.equal ((let p = readPng (folder.File "epitomes.png") in p.Width, p.Height)) ((side 5, side 3)) ("3 epitomes, 5 samples each")
            Expect.stringContains ((catches<VaeResearchException> (fun () -> Images.epitomeSamples vae 5 0UL (folder.File "x.png"))).Message) ("epitomes") "(catches<VaeResearchException> (fun () -> Images.epitomeSamples vae 5 0UL (folder.File \"x.png\"))).Message"
            Expect.stringContains ((catches<VaeResearchException> (fun () -> Images.manifold evae 5 (folder.File "x.png"))).Message) ("2-D") "(catches<VaeResearchException> (fun () -> Images.manifold evae 5 (folder.File \"x.png\"))).Message"

        testCase "the reconstruction grid shows the inputs in the top half" <| fun () ->
            use folder = new TempFolder("vae-analysis-test-")
            let vae = smallModel (TrainConfig(Latent = 2, Hidden = [| 8 |]))
            let images = Array.init (2 * 784) (fun i -> if i < 784 then 1.0f else 0.0f)
            Images.reconstructions vae images 2 2 (folder.File "r.png")
            let png = readPng (folder.File "r.png")
            // First image (all white) at the top left, inside its border; second (all black) beside it.
            Expect.equal (png.Pixels[1 * png.Width + 1]) 255uy "png.Pixels[1 * png.Width + 1]"
            Expect.equal (png.Pixels[1 * png.Width + 30]) 0uy "png.Pixels[1 * png.Width + 30]"

        property Seed 40 "the latent scatter is a square RGB image with each point in its label's colour" <| fun () ->
            let genCase =
                gen {
                    let! n = Gen.choose (1, 50)
                    let! size = Gen.choose (40, 200)
                    let! seed = Gen.choose (0, Int32.MaxValue)
                    return n, size, seed
                }
            Prop.forAll (Arb.fromGen genCase) (fun (n, size, seed) ->
                use folder = new TempFolder("vae-analysis-test-")
                let random = Random seed
                let means = Array.init (2 * n) (fun _ -> float32 (6.0 * random.NextDouble() - 3.0))
                let labels = Array.init n (fun _ -> random.Next 10)
                Images.latentScatter means labels n size (folder.File "s.png")
                let png = readPng (folder.File "s.png")
                Expect.equal ((png.Width, png.Height, png.Channels)) ((size, size, 3)) "(png.Width, png.Height, png.Channels)"
                // The last point drawn keeps its centre pixel.
                let extent = Images.scatterExtent (Array.init n (fun i -> float means[2 * i], float means[2 * i + 1]))
                let toPixel (v: float32) = int (round ((float v + extent) / (2.0 * extent) * float (size - 1)))
                let x, y = toPixel means[2 * n - 2], size - 1 - toPixel means[2 * n - 1]
                let i = 3 * (y * size + x)
                let r, g, b = Svg.palette[labels[n - 1]]
                (png.Pixels[i], png.Pixels[i + 1], png.Pixels[i + 2]) = (r, g, b))

        // ---------------------------------------------------------------------------------------------
        // 5. Run store, inverse normal CDF
        property Seed 300 "the inverse normal CDF agrees with MathNet to 1e-8 relative" <| fun () ->
            let genP = Gen.choose (-300, 300) |> Gen.map (fun i -> if i = 0 then 0.5 else (if i < 0 then Math.Pow(10.0, float i / 30.0) else 1.0 - Math.Pow(10.0, -float i / 30.0)))
            Prop.forAll (Arb.fromGen genP) (fun p ->
                let p = Math.Clamp(p, 1e-12, 1.0 - 1e-12)
                let expected = Normal.InvCDF(0.0, 1.0, p)
                abs (Images.inverseNormalCdf p - expected) <= 1e-8 * max 1.0 (abs expected))

        testCase "loading a folder that is not a run names config.json" <| fun () ->
            use folder = new TempFolder("vae-analysis-test-")
            let e = catches<VaeResearchException> (fun () -> RunStore.load folder.Path |> ignore)
            Expect.stringContains e.Message ("config.json") "e.Message"
            Expect.stringContains ((catches<VaeResearchException> (fun () -> RunStore.load (folder.File "missing") |> ignore)).Message) ("does not exist") "(catches<VaeResearchException> (fun () -> RunStore.load (folder.File \"missing\") |> ignore)).Message"

        testCase "a metrics.csv with a missing or an extra column is an error naming the file and the column" <| fun () ->
            use folder = new TempFolder("vae-analysis-test-")
            let run = runFolderWith folder "epoch,lr,beta,train_bound,test_bound,active_units,seconds\n1,0.001,1,-100,-99,3,0.5\n"
            let missing = catches<FileFormatException> (fun () -> RunStore.load run.Path |> ignore)
            Expect.stringEnds missing.Path ("metrics.csv") "missing.Path"
            Expect.stringContains missing.Field ("'kl'") "missing.Field"
            File.WriteAllText(run.MetricsPath, "epoch,lr,beta,train_bound,test_bound,kl,active_units,seconds,extra\n")
            let extra = catches<FileFormatException> (fun () -> RunStore.load run.Path |> ignore)
            Expect.stringContains extra.Field ("'extra'") "extra.Field"
            File.WriteAllText(run.MetricsPath, "epoch,lr,beta,train_bound,test_bound,kl,active_units,seconds\n1,0.001,1,-100,-99,2.5,3,0.5\n")
            File.WriteAllText(run.ActivityPath, "epoch,unit,activity\n")
            let activity = catches<FileFormatException> (fun () -> RunStore.load run.Path |> ignore)
            Expect.stringEnds activity.Path ("activity.csv") "activity.Path"
            Expect.stringContains activity.Field ("'kl'") "activity.Field"

        testCase "eval.json and parzen.json: missing keys name the file and key, and parzen.json round-trips" <| fun () ->
            use folder = new TempFolder("vae-analysis-test-")
            let run = runFolderWith folder "epoch,lr,beta,train_bound,test_bound,kl,active_units,seconds\n1,0.001,1,-100,-99,2.5,3,0.5\n"
            File.WriteAllText(run.EvalPath, """{ "standard_error": 0.1, "k": 5000, "n": 10000, "binarize": "dynamic" }""")
            let e = catches<FileFormatException> (fun () -> RunStore.load run.Path |> ignore)
            Expect.equal ((Path.GetFileName e.Path, e.Field)) (("eval.json", "nll")) "(Path.GetFileName e.Path, e.Field)"
            File.WriteAllText(run.EvalPath, """{ "nll": "ninety", "standard_error": 0.1, "k": 5000, "n": 10000, "binarize": "dynamic" }""")
            Expect.equal ((catches<FileFormatException> (fun () -> RunStore.load run.Path |> ignore)).Expected) ("a number") "(catches<FileFormatException> (fun () -> RunStore.load run.Path |> ignore)).Expected"
            File.WriteAllText(run.EvalPath, """{ "nll": 86.76, "standard_error": 0.1, "k": 5000, "n": 10000, "binarize": "dynamic", "epoch": 3 }""")
            let parzen =
                { Sigma = 0.2154; LogLikelihood = 325.5; StandardError = 2.1; ValidationLogLikelihood = 330.25; NSamples = 10000
                  NTest = 10000; NValidation = 1000; SigmaSearch = [| 0.1, -3.5; 0.2154, 330.25 |]; ValidationInTraining = false }
            RunStore.writeParzen (Path.Combine(run.Path, RunStore.ParzenFile)) parzen
            let loaded = RunStore.load run.Path
            Expect.equal loaded.Parzen (Some parzen) "loaded.Parzen"
            Expect.equal (loaded.Eval |> Option.map (fun v -> v.Nll, v.Samples, v.Epoch)) (Some(86.76, 5000, Some 3)) "loaded.Eval |> Option.map (fun v -> v.Nll, v.Samples, v.Epoch)"
            Expect.hasLength loaded.Metrics 1 "loaded.Metrics"
            // The five keys of the contract (docs/contracts.md, "parzen.json") suffice.
            File.WriteAllText(Path.Combine(run.Path, RunStore.ParzenFile),
                              """{ "sigma": 0.2, "log_likelihood": 300, "standard_error": 2, "validation_log_likelihood": 301, "n_samples": 10000 }""")
            Expect.equal ((RunStore.load run.Path).Parzen |> Option.map (fun p -> p.LogLikelihood, p.NTest)) (Some(300.0, 0)) "(RunStore.load run.Path).Parzen |> Option.map (fun p -> p.LogLikelihood, p.NTest)"

        testCase "eval.json round-trips binarize_seed, and a table cell says how the estimate was made" <| fun () ->
            use folder = new TempFolder("vae-analysis-eval-")
            let path = Path.Combine(folder.Path, "eval.json")
            let plain = { Nll = 86.764; StandardError = 0.231; Samples = 5000; N = 10000; Binarize = "dynamic"; Epoch = Some 3280
                          Budget = Some "per_epitome"; SamplesDrawn = Some 5000; BinarizeSeed = None }
            for e in [ plain; { plain with BinarizeSeed = Some 18446744073709551615UL } ] do
                RunStore.writeEval path e 1.5
                Expect.equal (RunStore.readEval path) e "round trip"
                Expect.equal (File.ReadAllText(path).Contains "binarize_seed") e.BinarizeSeed.IsSome "the key is written only when given"
            Expect.equal (Tables.formatEval plain) "86.76 ± 0.23 (k=5000, n=10000)" "the run's draw, k per image"
            Expect.equal (Tables.formatEval { plain with Budget = Some "total"; N = 1000 }) "86.76 ± 0.23 (k=5000 total, 5000 drawn, n=1000)" "a budget"
            Expect.equal (Tables.formatEval { plain with Budget = Some "per_epitome"; SamplesDrawn = Some 20000; BinarizeSeed = Some 3UL })
                "86.76 ± 0.23 (k=5000 per_epitome, 20000 drawn, n=10000, test binarization seed 3)" "per epitome on another draw"
            File.WriteAllText(path, """{ "nll": 1, "standard_error": 0.1, "k": 5, "n": 10, "binarize": "dynamic", "binarize_seed": -2 }""")
            let e = catches<FileFormatException> (fun () -> RunStore.readEval path |> ignore)
            Expect.equal e.Field "binarize_seed" "a negative seed names its key"

        testCase "results tables have one CSV cell per header column, quoting awkward names" <| fun () ->
            let rows =
                [ for name in awkwardNames ->
                      let run = runWith 2 [| MetricsRow(3, 1e-3, 1.0, -100.0, -99.0, 1.0, 2, 0.5) |] [||] name
                      { RunStore.summarize 0.01 (name + ",x") run with Description = name + " \"q\"" } ]
            let lines = (Tables.csv rows).TrimEnd('\n').Split('\n')
            let header = lines[0].Split(',').Length
            // Count cells with a small CSV splitter that honours quotes.
            let cells (line: string) =
                let mutable quoted = false
                let mutable count = 1
                for c in line do
                    if c = '"' then quoted <- not quoted
                    elif c = ',' && not quoted then count <- count + 1
                count
            Expect.equal lines.Length (rows.Length + 1) "lines.Length"
            for line in lines[1..] do
                Expect.equal (cells line) header line
            let markdown = Tables.markdown 0.01 rows []
            Expect.stringContains markdown ("| run | model |") "markdown"
            Expect.equal (markdown.Split('\n') |> Array.filter (fun l -> l.StartsWith "| ") |> Array.length) (rows.Length + 1) "markdown.Split('\\n') |> Array.filter (fun l -> l.StartsWith \"| \") |> Array.length"
    ]
