module VaeResearch.Regression.CliTests

// The `vae` command end to end, as a child process (`dotnet vae.dll ...`; the test project references
// the CLI, so vae.dll sits next to the test assembly): a tiny run is trained once (500 training images,
// 1 epoch, D = 5), then eval, sample, encode and reconstruct read it, and their files are checked byte
// by byte against the formats (eval.json keys, .npy header, PNG signature and IHDR). Then the clear
// errors: a missing run, --k 0, an existing --out without --resume, a changed setting on --resume; and
// --help of every command.

open System
open System.Buffers.Binary
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json
open NUnit.Framework
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Training
open VaeResearch.TestSupport

/// Worker threads of the child processes and of the in-process cross-checks.
let Threads = 2

/// The tiny run's settings (CLI options).
let TinyRun =
    [ "--train-subset"; "500"; "--test-subset"; "200"; "--epochs"; "1"; "--latent"; "5"; "--hidden"; "50"; "--seed"; "11"; "--threads"; string Threads ]

/// vae.dll beside the test assembly.
let vaeDll = Path.Combine(TestContext.CurrentContext.TestDirectory, "vae.dll")

/// The result of one `vae` invocation.
type Outcome =
    { ExitCode: int
      Stdout: string
      Stderr: string }

/// Runs `dotnet vae.dll ARGS` and waits for it.
let vae (args: string list) =
    let start = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    start.ArgumentList.Add vaeDll
    for a in args do start.ArgumentList.Add a
    use p = nonNull (Process.Start start)
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    p.WaitForExit()
    { ExitCode = p.ExitCode; Stdout = out.Result; Stderr = err.Result }

/// Asserts success and returns the outcome.
let succeeds (args: string list) =
    let o = vae args
    Assert.That(o.ExitCode, equals 0, $"""vae {String.Join(" ", args)} failed:
{o.Stderr}""")
    o

/// Asserts a clean failure: non-zero exit, one "vae COMMAND: error: ..." message, no stack trace.
let fails (args: string list) =
    let o = vae args
    Assert.That(o.ExitCode, Is.Not.EqualTo 0, $"""vae {String.Join(" ", args)} should fail""")
    Assert.That(o.Stderr, Does.Not.Contain("   at ").And.Not.Contain("Exception"), "no stack trace")
    o

/// A parsed .npy file: the header dictionary text, the shape and the float32 values.
let readNpy (path: string) =
    let bytes = File.ReadAllBytes path
    Assert.That(bytes[.. 5], equals [| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Y' |], "magic")
    Assert.That((bytes[6], bytes[7]), equals ((1uy, 0uy)), "format version 1.0")
    let headerLength = int (BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(bytes, 8, 2)))
    Assert.That((10 + headerLength) % 64, equals 0, "the data starts 64-byte aligned")
    let header = Encoding.ASCII.GetString(bytes, 10, headerLength)
    Assert.That(header, Does.EndWith "\n")
    Assert.That(header, Does.Contain("'descr': '<f4'").And.Contain("'fortran_order': False"))
    let shapeText = header.Substring(header.IndexOf "'shape': (" + 10)
    let shape =
        shapeText.Substring(0, shapeText.IndexOf ')').Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
        |> Array.map int
    let count = Array.fold (*) 1 shape
    Assert.That(bytes.Length, equals (10 + headerLength + 4 * count), "file size = header + 4 bytes per value")
    let values = Array.init count (fun i -> BinaryPrimitives.ReadSingleLittleEndian(ReadOnlySpan(bytes, 10 + headerLength + 4 * i, 4)))
    header, shape, values

/// The PNG's signature is checked; returns (width, height, bit depth, colour type) from IHDR.
let readPngHeader (path: string) =
    let bytes = File.ReadAllBytes path
    Assert.That(bytes[.. 7], equals [| 137uy; 80uy; 78uy; 71uy; 13uy; 10uy; 26uy; 10uy |], "PNG signature")
    Assert.That(BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, 8, 4)), equals 13u, "IHDR length")
    Assert.That(Encoding.ASCII.GetString(bytes, 12, 4), equals "IHDR")
    Assert.That(Encoding.ASCII.GetString(bytes, bytes.Length - 8, 4), equals "IEND", "ends with IEND")
    int (BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, 16, 4))),
    int (BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, 20, 4))),
    int bytes[24],
    int bytes[25]

/// Grid side in pixels for c cells of 28 pixels with 1 pixel of padding between and around them.
let gridSide cells = cells * 29 + 1

/// Runs body with the engine at Threads workers, restoring the previous setting.
let withThreads (body: unit -> unit) =
    let saved = Parallelism.Threads
    Parallelism.Threads <- Threads
    try body () finally Parallelism.Threads <- saved

[<TestFixture>]
type EndToEnd() =
    let folder = Directory.CreateTempSubdirectory "vae-cli-test-"
    let run = Path.Combine(folder.FullName, "tiny")
    let file name = Path.Combine(folder.FullName, name)

    [<OneTimeSetUp>]
    member _.Train() =
        let o = succeeds ([ "train"; "--out"; run ] @ TinyRun)
        Assert.That(o.Stdout, Does.Contain "epoch 1: train bound")
        for name in [ "config.json"; "metrics.csv"; "activity.csv"; "checkpoint.safetensors" ] do
            Assert.That(File.Exists(Path.Combine(run, name)), name)

    [<OneTimeTearDown>]
    member _.Clean() = try folder.Delete true with :? IOException -> ()

    [<Test>]
    member _.``train writes one metrics row and the settings it was given to config.json``() =
        let metrics = RunCsv.ReadMetrics(Path.Combine(run, "metrics.csv"))
        Assert.That(metrics.Count, equals 1)
        Assert.That(Double.IsFinite metrics[0].TestBound)
        let config = RunFolder.Open(run).ReadConfig()
        Assert.That((config.Latent, config.Hidden, config.Epochs, config.TrainSubset, config.TestSubset, config.Seed),
            equals ((5, [| 50 |], 1, Nullable 500, Nullable 200, 11UL)))
        use json = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json")))
        Assert.That(json.RootElement.GetProperty("threads").GetInt32(), equals Threads)

    [<Test>]
    member _.``eval writes eval.json with nll, standard_error, k, n and binarize``() =
        let o = succeeds [ "eval"; run; "--k"; "10"; "--subset"; "50"; "--threads"; string Threads ]
        Assert.That(o.Stdout, Does.Contain "NLL = ")
        use json = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "eval.json")))
        let root = json.RootElement
        for key in [ "nll"; "standard_error"; "k"; "n"; "binarize" ] do
            let mutable value = Unchecked.defaultof<JsonElement>
            Assert.That(root.TryGetProperty(key, &value), $"eval.json has '{key}'")
        let nll = root.GetProperty("nll").GetDouble()
        let se = root.GetProperty("standard_error").GetDouble()
        Assert.That(root.GetProperty("nll").ValueKind, equals JsonValueKind.Number)
        Assert.That((root.GetProperty("k").GetInt32(), root.GetProperty("n").GetInt32(), root.GetProperty("binarize").GetString()),
            equals ((10, 50, "dynamic")))
        // Between a perfect model and the uniform Bernoulli model (784 ln 2 = 543 nats); a real error bar.
        Assert.That(nll, Is.InRange(50.0, 784.0 * log 2.0))
        Assert.That(se, Is.GreaterThan(0.0).And.LessThan(nll / 10.0))
        // The same estimate in process, from the same run, images and noise stream (seed 0, tool stream 1).
        withThreads (fun () ->
            let trained = TrainedRun.Load run
            let test = Trainer.LoadData(trained.Config, null, null).Test.Take 50
            let bounds = Evaluation.LogLikelihoodBounds(trained.Model, trained.Images test, 50, 10, Rng(0UL, TrainStreams.Tool 1u))
            let estimate = Estimate.Of(bounds |> Array.map (fun b -> -b))
            Assert.That(nll, (equals (estimate.Mean)).Within(1e-9 * nll), "nll")
            Assert.That(se, (equals (estimate.StandardError)).Within(1e-9 * se), "standard error"))
        // --json writes elsewhere.
        succeeds [ "eval"; run; "--k"; "2"; "--subset"; "20"; "--json"; file "other.json" ] |> ignore
        use other = JsonDocument.Parse(File.ReadAllText(file "other.json"))
        Assert.That((other.RootElement.GetProperty("k").GetInt32(), other.RootElement.GetProperty("n").GetInt32()), equals ((2, 20)))

    [<Test>]
    member _.``sample writes a float32 [16, 784] npy and a 4 x 4 PNG grid``() =
        succeeds [ "sample"; run; "--n"; "16"; "--npy"; file "samples.npy"; "--png"; file "samples.png" ] |> ignore
        let header, shape, values = readNpy (file "samples.npy")
        Assert.That(shape, equals [| 16; 784 |], header)
        Assert.That(values |> Array.forall (fun v -> v >= 0.0f && v <= 1.0f), "pixel probabilities in [0, 1]")
        Assert.That(values |> Array.distinct |> Array.length, Is.GreaterThan 100, "not a constant image")
        Assert.That(readPngHeader (file "samples.png"), equals ((gridSide 4, gridSide 4, 8, 0)), "4 x 4 grid, 8-bit greyscale")
        // Seeded: the same command gives the same samples.
        succeeds [ "sample"; run; "--n"; "16"; "--npy"; file "again.npy" ] |> ignore
        Assert.That(File.ReadAllBytes(file "again.npy"), equals (File.ReadAllBytes(file "samples.npy")))

    [<Test>]
    member _.``encode writes the posterior means as float32 [n, 5]``() =
        succeeds [ "encode"; run; "--npy"; file "z.npy"; "--subset"; "100" ] |> ignore
        let _, shape, values = readNpy (file "z.npy")
        Assert.That(shape, equals [| 100; 5 |])
        Assert.That(values |> Array.forall Single.IsFinite)
        // The in-process posterior means of the same images.
        withThreads (fun () ->
            let trained = TrainedRun.Load run
            let test = Trainer.LoadData(trained.Config, null, null).Test.Take 100
            let means = Evaluation.PosteriorMeans(trained.Model, trained.Images test, 100)
            Assert.That(values, (equals (means)).Within(1e-5f)))
        succeeds [ "encode"; run; "--npy"; file "ztrain.npy"; "--split"; "train"; "--subset"; "30" ] |> ignore
        let _, shape, _ = readNpy (file "ztrain.npy")
        Assert.That(shape, equals [| 30; 5 |])

    [<Test>]
    member _.``reconstruct writes inputs above reconstructions as a PNG grid``() =
        succeeds [ "reconstruct"; run; "--png"; file "recon.png" ] |> ignore
        // Default: 50 images in 10 columns = 5 rows of inputs and 5 of reconstructions.
        Assert.That(readPngHeader (file "recon.png"), equals ((gridSide 10, gridSide 10, 8, 0)))
        succeeds [ "reconstruct"; run; "--png"; file "recon8.png"; "--n"; "8"; "--columns"; "4" ] |> ignore
        Assert.That(readPngHeader (file "recon8.png"), equals ((gridSide 4, gridSide 4, 8, 0)))

    [<Test>]
    member _.``train --out on an existing run without --resume fails and leaves the run as it was``() =
        let checkpoint = Path.Combine(run, "checkpoint.safetensors")
        let before = File.ReadAllBytes checkpoint
        let o = fails ([ "train"; "--out"; run ] @ TinyRun)
        Assert.That(o.Stderr, Does.Contain("vae train: error:").And.Contain(run).And.Contain("already holds a trained run").And.Contain("--resume"))
        Assert.That(File.ReadAllBytes checkpoint, equals before)

    [<Test>]
    member _.``train --resume continues a run, and refuses a changed setting``() =
        let path = file "resumed"
        succeeds ([ "train"; "--out"; path ] @ TinyRun) |> ignore
        let o = fails [ "train"; "--out"; path; "--resume"; "--epochs"; "2"; "--lr"; "0.5" ]
        Assert.That(o.Stderr, Does.Contain("--lr").And.Contain("differs from the run's saved setting"))
        succeeds [ "train"; "--out"; path; "--resume"; "--epochs"; "2"; "--threads"; string Threads ] |> ignore
        let metrics = RunCsv.ReadMetrics(Path.Combine(path, "metrics.csv"))
        Assert.That(metrics |> Seq.map (fun r -> r.Epoch), equals [ 1; 2 ])

[<Test>]
let ``vae eval on a folder that is not a run exits non-zero naming the folder`` () =
    let missing = Path.Combine(Path.GetTempPath(), $"NOT_A_RUN-{Guid.NewGuid():N}")
    let o = fails [ "eval"; missing; "--k"; "5" ]
    Assert.That(o.Stderr, Does.Contain("vae eval: error:").And.Contain(missing))
    // An existing folder without config.json is named too.
    let empty = Directory.CreateTempSubdirectory "vae-cli-empty-"
    try
        let o = fails [ "eval"; empty.FullName ]
        Assert.That(o.Stderr, Does.Contain(empty.FullName).And.Contain("config.json"))
    finally
        empty.Delete true

[<Test>]
let ``vae train --k 0 exits non-zero naming --k and creates nothing`` () =
    let out = Path.Combine(Path.GetTempPath(), $"vae-cli-k0-{Guid.NewGuid():N}")
    let o = fails [ "train"; "--out"; out; "--k"; "0"; "--train-subset"; "100"; "--epochs"; "1" ]
    Assert.That(o.Stderr, Does.Contain("vae train: error:").And.Contain("--k"))
    Assert.That(Directory.Exists out, Is.False, "no run folder for an invalid configuration")

[<Test>]
let ``vae train rejects other bad settings naming the option`` () =
    let out = Path.Combine(Path.GetTempPath(), $"vae-cli-bad-{Guid.NewGuid():N}")
    for args, option in
        [ [ "--latent"; "0" ], "--latent"
          [ "--model"; "evae"; "--latent"; "10"; "--epitome-size"; "4" ], "do not tile"
          [ "--model"; "evae" ], "--epitome-size"
          [ "--dropout-z"; "1" ], "--dropout-z"
          [ "--hidden"; "200,x" ], "--hidden" ] do
        let o = fails ([ "train"; "--out"; out ] @ args)
        Assert.That(o.Stderr, Does.Contain option, String.Join(" ", args))
    Assert.That(Directory.Exists out, Is.False)

/// Every command and subcommand the catalog lists.
let Commands =
    [ []; [ "data" ]; [ "data"; "fetch" ]; [ "data"; "info" ]; [ "train" ]; [ "eval" ]; [ "encode" ]; [ "sample" ]
      [ "reconstruct" ]; [ "activity" ]; [ "parzen" ]; [ "report" ]; [ "tables" ]; [ "bench" ] ]

[<Test>]
let ``--help of every command exits 0 and prints its usage`` () =
    for command in Commands do
        let o = vae (command @ [ "--help" ])
        let name = String.Join(" ", command)
        Assert.That(o.ExitCode, equals 0, $"vae {name} --help: {o.Stderr}")
        Assert.That(o.Stdout, Does.Contain "Usage:", $"vae {name} --help")
        Assert.That(o.Stderr, Is.Empty, $"vae {name} --help writes nothing to stderr")
