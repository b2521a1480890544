module VaeResearch.Properties.DataTests

// Properties of the data layer: the IDX reader's robustness, batching coverage and balance,
// binarization means and purity, and the synthetic generator's determinism.

open System
open System.IO
open System.IO.Compression
open System.Security.Cryptography
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open VaeResearch
open VaeResearch.Data
open VaeResearch.TestSupport


// ---------------------------------------------------------------------------------------------
// IDX reader
// ---------------------------------------------------------------------------------------------

/// The independent oracle: an IDX file of unsigned bytes written byte by byte.
let idxFile (shape: int[]) (data: byte[]) =
    let header =
        [| yield! [| 0uy; 0uy; 0x08uy; byte shape.Length |]
           for size in shape do
               yield! [| byte (size >>> 24); byte (size >>> 16); byte (size >>> 8); byte size |] |]
    Array.append header data

let gzip (bytes: byte[]) =
    use output = new MemoryStream()
    do
        use zip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen = true)
        zip.Write(bytes, 0, bytes.Length)
    output.ToArray()

/// How a valid file is damaged.
type Damage =
    | Intact
    | Truncate of keep: int
    | FlipPayload of position: int * mask: byte
    | FlipMagic of position: int * mask: byte
    | FlipHeader of position: int * mask: byte
    | Append of extra: byte[]
    | GzipIntact
    | GzipDamaged of position: int * mask: byte * keep: int
    | Garbage of bytes: byte[]

type IdxCase = { Rank: int; Shape: int[]; Data: byte[]; Damage: Damage }

let nonZeroMask = Gen.choose (1, 255) |> Gen.map byte

let genIdxCase =
    gen {
        let! rank = Gen.elements [ 1; 3 ]
        let! shape =
            if rank = 1 then Gen.choose (0, 40) |> Gen.map (fun n -> [| n |])
            else Gen.map3 (fun n r c -> [| n; r; c |]) (Gen.choose (0, 4)) (Gen.choose (1, 5)) (Gen.choose (1, 5))
        let count = Array.fold (*) 1 shape
        let! data = Gen.arrayOfLength count (Gen.choose (0, 255) |> Gen.map byte)
        let length = 4 + 4 * rank + count
        let headerLength = 4 + 4 * rank
        let! damage =
            Gen.oneof
                [ Gen.constant Intact
                  Gen.choose (0, length - 1) |> Gen.map Truncate
                  (if count = 0 then Gen.constant Intact
                   else Gen.map2 (fun p m -> FlipPayload(p, m)) (Gen.choose (headerLength, length - 1)) nonZeroMask)
                  Gen.map2 (fun p m -> FlipMagic(p, m)) (Gen.choose (0, 3)) nonZeroMask
                  Gen.map2 (fun p m -> FlipHeader(p, m)) (Gen.choose (4, headerLength - 1)) nonZeroMask
                  Gen.choose (1, 30) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 255) |> Gen.map byte)) |> Gen.map Append
                  Gen.constant GzipIntact
                  Gen.map3 (fun p m k -> GzipDamaged(p, m, k)) (Gen.choose (0, 10_000)) (Gen.choose (0, 255) |> Gen.map byte) (Gen.choose (0, 10_000))
                  Gen.choose (0, 64) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 255) |> Gen.map byte)) |> Gen.map Garbage ]
        return { Rank = rank; Shape = shape; Data = data; Damage = damage }
    }

let damaged (case: IdxCase) =
    let file = idxFile case.Shape case.Data
    let flip (bytes: byte[]) position (mask: byte) =
        let copy = Array.copy bytes
        copy[position] <- copy[position] ^^^ mask
        copy
    match case.Damage with
    | Intact -> file
    | Truncate keep -> file[.. keep - 1]
    | FlipPayload(p, m) | FlipMagic(p, m) | FlipHeader(p, m) -> flip file p m
    | Append extra -> Array.append file extra
    | GzipIntact -> gzip file
    | GzipDamaged(p, m, k) ->
        let zipped = gzip file
        let flipped = flip zipped (p % zipped.Length) m
        flipped[.. (k % (zipped.Length + 1)) - 1]
    | Garbage bytes -> bytes

/// The reader's outcome: data or the typed error; anything else (another exception, a hang) fails.
type Outcome =
    | Read of IdxArray
    | Rejected of FileFormatException

/// How long one read of a tiny file may take before we call it a hang.
let ReadTimeout = TimeSpan.FromSeconds 10.0

let CasePath = "generated/case-idx"

let readCase (case: IdxCase) =
    let bytes = damaged case
    let task =
        Task.Run(fun () ->
            use stream = new MemoryStream(bytes)
            try Read(Idx.Read(stream, CasePath, case.Rank))
            with :? FileFormatException as e -> Rejected e)
    if not (task.Wait ReadTimeout) then failwithf "the IDX reader hung on %A" case.Damage
    task.Result

// ---------------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------------

let batchesOf (order: int[]) size =
    [ for b in 0 .. Batches.Count(order.Length, size) - 1 -> (Batches.Batch(ReadOnlySpan order, size, b)).ToArray() ]

/// The stratification guarantee: a group's count in a batch is within one of its share.
let ShareTolerance = 1.0

// ---------------------------------------------------------------------------------------------
// Binarization
// ---------------------------------------------------------------------------------------------

let Pixels = 784

/// A data set of `count` height x width images whose pixels cycle through `levels`.
let levelImages split count height width (levels: float32[]) =
    let images = Array.init (count * height * width) (fun i -> levels[(i * 7919) % levels.Length])
    Dataset("levels", split, images, Array.zeroCreate count, height, width, 1)

/// A data set of `count` 28 x 28 images whose pixels cycle through `levels`.
let levelData split count levels = levelImages split count 28 28 levels

/// Mean of Bernoulli samples: the sum of N independent draws has variance <= N/4, so the mean's
/// standard deviation is at most 1 / (2 sqrt N). SigmaMultiple standard deviations bound a
/// two-sided failure probability of about 2e-9 per check (normal tail); the seeds are fixed, so
/// the tests are deterministic.
let SigmaMultiple = 6.0

/// The sampler compares 16 random bits with round(65536 g), so P(x = 1) is within 2^-17 of g.
let QuantizationBias = 1.0 / 131072.0

let meanTolerance (n: int) = SigmaMultiple / (2.0 * sqrt (float n)) + QuantizationBias

let Levels = [| 0.0f; 0.1f; 0.25f; 0.5f; 0.75f; 0.9f; 1.0f |]

let levelMeans (data: Dataset) (pixels: float32[]) =
    let sums = Collections.Generic.Dictionary<float32, float * int>()
    for i in 0 .. pixels.Length - 1 do
        let level = data.Images[i]
        let s, c = match sums.TryGetValue level with | true, v -> v | _ -> (0.0, 0)
        sums[level] <- (s + float pixels[i], c + 1)
    [ for KeyValue(level, (s, c)) in sums -> level, s / float c, c ]

/// Every latent coordinate must move the pixels: the Bernoulli means change by more than this
/// (mean absolute change over pixels) when one z_i moves from -1 to +1 with the others at 0.
let MinimumSensitivity = 0.01

/// FsCheck (seed, gamma) every property of this module replays.
let private Seed = (20261203UL, 104729UL)

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Data" [

        property Seed 300 "IDX reader returns the data or a FileFormatException naming the file for any damage" <| fun () ->
            Prop.forAll (Arb.fromGen genIdxCase) (fun case ->
                let originalSha = Convert.ToHexStringLower(SHA256.HashData(idxFile case.Shape case.Data))
                match readCase case, case.Damage with
                | Read array, (Intact | GzipIntact) ->
                    array.Shape = case.Shape && array.Data = case.Data && array.Sha256 = originalSha
                | Rejected e, (Intact | GzipIntact) -> failwithf "rejected a valid file: %s" e.Message
                | Rejected e, Truncate _ -> e.Field = "header" || e.Field = "length"
                | Read _, Truncate _ -> false
                | Read array, FlipPayload(p, m) ->
                    let expected = Array.copy case.Data
                    let at = p - (4 + 4 * case.Rank)
                    expected[at] <- expected[at] ^^^ m
                    array.Shape = case.Shape && array.Data = expected && array.Sha256 <> originalSha
                | Rejected e, FlipPayload _ -> failwithf "rejected a file with a changed pixel: %s" e.Message
                | Rejected e, FlipMagic _ -> e.Field = "magic number" && e.Message.StartsWith CasePath
                | Read _, FlipMagic _ -> false
                | Rejected e, Append _ -> e.Field = "length" && e.Message.Contains "trailing data"
                | Read _, Append _ -> false
                | Read array, (FlipHeader _ | GzipDamaged _ | Garbage _) ->
                    // Whatever was accepted is self-consistent.
                    array.Data.Length = Array.fold (*) 1 array.Shape && array.Shape.Length = case.Rank
                | Rejected e, (FlipHeader _ | GzipDamaged _ | Garbage _) -> e.Message.StartsWith CasePath)

        testCase "IDX reader names file, field and expectation for a mislabeled file" <| fun () ->
            let labels = idxFile [| 3 |] [| 1uy; 2uy; 3uy |]
            use stream = new MemoryStream(labels)
            let e = throws<FileFormatException>(fun () -> Idx.Read(stream, "train-images-idx3-ubyte", 3) |> ignore)
            Expect.equal e.Field ("magic number") "e.Field"
            Expect.stringStarts e.Message ("train-images-idx3-ubyte: magic number: expected 0x00000803") "e.Message"
            Expect.stringContains e.Found ("0x00000801") "e.Found"

        testCase "IDX reader refuses a header announcing a huge array without allocating it" <| fun () ->
            let header = idxFile [| Int32.MaxValue; 28; 28 |] [| 1uy; 2uy |]
            use stream = new MemoryStream(header)
            let e = throws<FileFormatException>(fun () -> Idx.Read(stream, "huge", 3) |> ignore)
            Expect.equal e.Field ("dimensions") "e.Field"
            let header = idxFile [| 1_000_000; 28; 28 |] [| 1uy; 2uy |]
            use stream = new MemoryStream(header)
            let e = throws<FileFormatException>(fun () -> Idx.Read(stream, "short", 3) |> ignore)
            Expect.equal e.Field ("length") "e.Field"
            Expect.stringStarts e.Expected ("784000016 bytes") "e.Expected"

        testCase "IDX reader reads raw and gzip files from disk alike" <| fun () ->
            let dir = Directory.CreateTempSubdirectory "vae-idx-"
            try
                let data = Array.init (2 * 3 * 4) byte
                let raw = Path.Combine(dir.FullName, "images")
                let zipped = Path.Combine(dir.FullName, "images.gz")
                File.WriteAllBytes(raw, idxFile [| 2; 3; 4 |] data)
                File.WriteAllBytes(zipped, gzip (idxFile [| 2; 3; 4 |] data))
                let a = Idx.ReadImages raw
                let b = Idx.ReadImages zipped
                Expect.equal a.Shape ([| 2; 3; 4 |]) "a.Shape"
                Expect.equal b.Data data "b.Data"
                Expect.equal b.Sha256 a.Sha256 "b.Sha256"
                let e = throws<FileFormatException>(fun () -> Idx.ReadLabels zipped |> ignore)
                Expect.equal e.Path zipped "e.Path"
            finally
                dir.Delete true

        property Seed 200 "shuffled batches cover every example exactly once per epoch, the last batch partial" <| fun (seed: uint64) ->
            let gen = Gen.map3 (fun n b e -> n, b, e) (Gen.choose (0, 500)) (Gen.choose (1, 64)) (Gen.choose (0, 1000))
            Prop.forAll (Arb.fromGen gen) (fun (n, size, epoch) ->
                let order = Batches.Shuffled(seed, epoch, n)
                let batches = batchesOf order size
                let sizes = batches |> List.map Array.length
                (Array.sort (Array.concat batches)) = Array.init n id
                && sizes |> List.forall (fun s -> s >= 1 && s <= size)
                && sizes |> List.truncate (max 0 (sizes.Length - 1)) |> List.forall ((=) size)
                && sizes.Length = (n + size - 1) / size
                && Batches.Shuffled(seed, epoch, n) = order)

        testCase "shuffle order is a pure function of seed and epoch" <| fun () ->
            let a = Batches.Shuffled(7UL, 3, 1000)
            Expect.equal (Batches.Shuffled(7UL, 3, 1000)) a ("same seed and epoch")
            Expect.notEqual (Batches.Shuffled(7UL, 4, 1000)) (a) "differs"
            Expect.notEqual (Batches.Shuffled(8UL, 3, 1000)) (a) "differs"

        property Seed 300 "stratified batches cover every example once and keep each group's share within one example" <| fun (seed: uint64) ->
            let gen =
                gen {
                    let! groupCount = Gen.choose (1, 8)
                    let! sizes = Gen.arrayOfLength groupCount (Gen.oneof [ Gen.choose (0, 5); Gen.choose (0, 60); Gen.choose (0, 300) ])
                    let n = Array.sum sizes
                    let! batch = Gen.choose (1, max 1 n)
                    let! epoch = Gen.choose (0, 50)
                    let groups = [| for g in 0 .. groupCount - 1 do for _ in 1 .. sizes[g] -> g |]
                    let! shuffled = Gen.shuffle groups
                    return shuffled, batch, epoch
                }
            Prop.forAll (Arb.fromGen gen) (fun (groups, size, epoch) ->
                let n = groups.Length
                let order = Batches.Stratified(ReadOnlySpan groups, size, seed, epoch)
                let groupCount = if n = 0 then 0 else Array.max groups + 1
                let groupSize = Array.init groupCount (fun g -> groups |> Array.filter ((=) g) |> Array.length)
                let balanced (batch: int[]) =
                    [ 0 .. groupCount - 1 ]
                    |> List.forall (fun g ->
                        let count = batch |> Array.filter (fun i -> groups[i] = g) |> Array.length
                        let share = float batch.Length * float groupSize[g] / float n
                        abs (float count - share) < ShareTolerance + 1e-9)
                let batches = batchesOf order size
                Array.sort (Array.copy order) = Array.init n id
                && batches |> List.forall balanced
                && Batches.Stratified(ReadOnlySpan groups, size, seed, epoch) = order)

        testCase "dynamic and fixed binarization have the grey levels as means" <| fun () ->
            let data = levelData SplitKind.Train 300 Levels
            for mode in [ Binarization.Dynamic; Binarization.Fixed ] do
                let binarizer = Binarizer(data, mode, 11UL)
                for epoch in [ 0; 1; 5 ] do
                    let x = binarizer.Epoch epoch
                    Expect.isTrue (x |> Array.forall (fun v -> v = 0.0f || v = 1.0f)) ($"{mode}: values are 0 or 1")
                    for level, mean, count in levelMeans data x do
                        if level = 0.0f || level = 1.0f then
                            Expect.equal mean (float level) ($"{mode}: grey level {level} is deterministic")
                        else
                            within (float (meanTolerance count)) (float (mean)) (float (float level)) ($"{mode} epoch {epoch}: mean at grey level {level}")

        testCase "threshold and none binarization are exact" <| fun () ->
            let data = levelData SplitKind.Train 20 Levels
            let threshold = Binarizer(data, Binarization.Threshold, 0UL).Epoch 3
            Expect.equal threshold (data.Images |> Array.map (fun v -> if v > 0.5f then 1.0f else 0.0f)) "threshold"
            let none = Binarizer(data, Binarization.None, 0UL).Epoch 3
            Expect.equal none data.Images "none"
            let meanThreshold = threshold |> Array.averageBy float
            let expected = data.Images |> Array.averageBy (fun v -> if v > 0.5f then 1.0 else 0.0)
            Expect.equal meanThreshold expected "meanThreshold"

        testCase "dynamic binarization resamples train every epoch, test keeps one sample, and both are pure" <| fun () ->
            let train = Binarizer(levelData SplitKind.Train 50 Levels, Binarization.Dynamic, 5UL)
            let test = Binarizer(levelData SplitKind.Test 50 Levels, Binarization.Dynamic, 5UL)
            let fixedTrain = Binarizer(levelData SplitKind.Train 50 Levels, Binarization.Fixed, 5UL)
            Expect.notEqual (train.Epoch 1) (train.Epoch 0) "differs"
            Expect.equal (Binarizer(train.Data, Binarization.Dynamic, 5UL).Epoch 1) (train.Epoch 1) ("train: epoch sample is a pure function of (seed, epoch)")
            Expect.equal (test.Epoch 7) (test.Epoch 0) ("test: one fixed sample")
            Expect.equal (fixedTrain.Epoch 9) (fixedTrain.Epoch 0) ("fixed: reused")
            Expect.notEqual (Binarizer(train.Data, Binarization.Dynamic, 6UL).Epoch 1) (train.Epoch 1) "differs"

        property Seed 100 "a batch's binarized rows equal the same rows of the whole epoch, in any order and for any image size" <| fun (seed: uint64) ->
            let gen =
                gen {
                    let! height = Gen.choose (1, 6)
                    let! width = Gen.choose (1, 9)
                    let! indices = Gen.arrayOf (Gen.choose (0, 39))
                    let! epoch = Gen.choose (0, 20)
                    return height, width, indices, epoch
                }
            Prop.forAll (Arb.fromGen gen) (fun (height, width, indices, epoch) ->
                let data = levelImages SplitKind.Train 40 height width Levels
                let dim = data.Dim
                [ Binarization.Dynamic; Binarization.Fixed; Binarization.Threshold; Binarization.None ]
                |> List.forall (fun mode ->
                    let binarizer = Binarizer(data, mode, seed)
                    let whole = binarizer.Epoch epoch
                    let batch = Array.zeroCreate (indices.Length * dim)
                    binarizer.Fill(ReadOnlySpan indices, epoch, Span batch)
                    let range = Array.zeroCreate (10 * dim)
                    binarizer.FillRange(30, 10, epoch, Span range)
                    range = whole[30 * dim ..]
                    && (indices |> Array.mapi (fun r i -> batch[r * dim .. (r + 1) * dim - 1] = whole[i * dim .. (i + 1) * dim - 1]) |> Array.forall id)))

        testCase "sampled pixels have the grey levels as means for image sizes that are not a multiple of 8" <| fun () ->
            let data = levelImages SplitKind.Train 4000 3 5 Levels
            let x = Binarizer(data, Binarization.Dynamic, 2UL).Epoch 4
            for level, mean, count in levelMeans data x do
                within (float (meanTolerance count)) (float (mean)) (float (float level)) ($"grey level {level}")

        testCase "binarization names parse and print back, and a bad name is a clear error" <| fun () ->
            for name in BinarizationNames.All do
                Expect.equal ((BinarizationNames.Parse name).ToName()) name "(BinarizationNames.Parse name).ToName()"
            let e = throws<ConfigException>(fun () -> BinarizationNames.Parse "stochastic" |> ignore)
            Expect.equal e.Key "binarize" "the key"
            Expect.stringContains e.Message ("dynamic, fixed, threshold, none") "e.Message"

        // ---------------------------------------------------------------------------------------------
        // Synthetic data
        // ---------------------------------------------------------------------------------------------
        testCase "synthetic data is deterministic from its seed and records d and the seed" <| fun () ->
            let a = SyntheticData.Generate(seed = 3UL, latentDimension = 4, trainCount = 300, testCount = 100, validation = 50)
            let b = SyntheticData.Generate(seed = 3UL, latentDimension = 4, trainCount = 300, testCount = 100, validation = 50)
            let c = SyntheticData.Generate(seed = 4UL, latentDimension = 4, trainCount = 300, testCount = 100)
            Expect.equal a.Train.Images b.Train.Images "a.Train.Images"
            Expect.equal a.Test.Latents b.Test.Latents "a.Test.Latents"
            Expect.notEqual c.Train.Images (a.Train.Images) "differs"
            Expect.equal ((a.Train.Count, (nonNull a.Validation).Count, a.Test.Count)) ((250, 50, 100)) "(a.Train.Count, (nonNull a.Validation).Count, a.Test.Count)"
            Expect.equal a.Train.Name ("synthetic-d4-seed3") "a.Train.Name"
            Expect.equal a.Train.TrueLatentDimension 4 "a.Train.TrueLatentDimension"
            Expect.equal a.Train.Dim 784 "a.Train.Dim"
            Expect.isTrue (a.Train.Labels |> Array.forall (fun l -> l >= 0 && l < 4)) "a.Train.Labels |> Array.forall (fun l -> l >= 0 && l < 4)"
            Expect.isTrue (a.Train.Images |> Array.forall (fun p -> p >= 0.0f && p <= 1.0f)) "a.Train.Images |> Array.forall (fun p -> p >= 0.0f && p <= 1.0f)"
            // The validation split is the end of the same generated train set.
            Expect.equal ((nonNull a.Validation).Latents) (SyntheticData.Generate(3UL, 4, 300, 100).Train.Slice(250, 50).Latents) "(nonNull a.Validation).Latents"

        testCase "synthetic images depend on every one of the d latent coordinates" <| fun () ->
            let d = 5
            for i in 0 .. d - 1 do
                let z sign = Array.init d (fun j -> if j = i then sign else 0.0f)
                let minus = SyntheticData.Decode(0UL, d, ReadOnlySpan(z -1.0f))
                let plus = SyntheticData.Decode(0UL, d, ReadOnlySpan(z 1.0f))
                let change = Array.map2 (fun (a: float32) b -> abs (float a - float b)) minus plus |> Array.average
                Expect.isGreaterThan change MinimumSensitivity ($"coordinate {i}")

        testCase "synthetic decode reproduces the stored grey levels from the stored latents" <| fun () ->
            let data = SyntheticData.Generate(seed = 9UL, latentDimension = 3, trainCount = 20, testCount = 5)
            let decoded = SyntheticData.Decode(9UL, 3, ReadOnlySpan data.Test.Latents)
            Expect.equal decoded data.Test.Images "decoded"
    ]
