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
open Expecto
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.Training
open VaeResearch.TestSupport

/// Worker threads of the child processes and of the in-process cross-checks.
let Threads = 2

/// Relative tolerance of an in-process recomputation of a number a `vae` process computed from the same run, images
/// and noise stream. The two processes may multiply on different GEMM kernels: a process keeps the kernel it chose at
/// its first GEMM call, and the calibration chooses per thread count, so this program (which starts at its default
/// thread count) and a child at --threads 2 differ where the kernels are close. Measured: VAE_GEMM=managed vs openblas
/// moves `vae eval --k 10 --subset 50`'s NLL by 3.9e-9 relative (CI saw 2.4e-9, and 1.8e-9 for a test bound), while
/// another noise seed moves it by 4.4e-4: 1e-7 tells the two apart.
let CrossProcessRelTol = 1e-7

/// The tiny run's settings (CLI options).
let TinyRun =
    [ "--train-subset"; "500"; "--test-subset"; "200"; "--epochs"; "1"; "--latent"; "5"; "--hidden"; "50"; "--seed"; "11"; "--threads"; string Threads ]

/// vae.dll beside the test assembly.
let vaeDll = Path.Combine(AppContext.BaseDirectory, "vae.dll")

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
    Expect.equal o.ExitCode 0 ($"""vae {String.Join(" ", args)} failed:
{o.Stderr}""")
    o

/// Asserts a clean failure: non-zero exit, one "vae COMMAND: error: ..." message, no stack trace.
let fails (args: string list) =
    let o = vae args
    Expect.notEqual o.ExitCode 0 ($"""vae {String.Join(" ", args)} should fail""")
    (notContains o.Stderr ("   at ") ("no stack trace"); notContains o.Stderr ("Exception") ("no stack trace"))
    o

/// A parsed .npy file: the header dictionary text, the shape and the float32 values.
let readNpy (path: string) =
    let bytes = File.ReadAllBytes path
    Expect.equal (bytes[.. 5]) ([| 0x93uy; byte 'N'; byte 'U'; byte 'M'; byte 'P'; byte 'Y' |]) ("magic")
    Expect.equal ((bytes[6], bytes[7])) ((1uy, 0uy)) ("format version 1.0")
    let headerLength = int (BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(bytes, 8, 2)))
    Expect.equal ((10 + headerLength) % 64) 0 ("the data starts 64-byte aligned")
    let header = Encoding.ASCII.GetString(bytes, 10, headerLength)
    Expect.stringEnds header ("\n") "header"
    (Expect.stringContains header ("'descr': '<f4'") ("header"); Expect.stringContains header ("'fortran_order': False") ("header"))
    let shapeText = header.Substring(header.IndexOf "'shape': (" + 10)
    let shape =
        shapeText.Substring(0, shapeText.IndexOf ')').Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
        |> Array.map int
    let count = Array.fold (*) 1 shape
    Expect.equal bytes.Length (10 + headerLength + 4 * count) ("file size = header + 4 bytes per value")
    let values = Array.init count (fun i -> BinaryPrimitives.ReadSingleLittleEndian(ReadOnlySpan(bytes, 10 + headerLength + 4 * i, 4)))
    header, shape, values

/// The PNG's signature is checked; returns (width, height, bit depth, colour type) from IHDR.
let readPngHeader (path: string) =
    let bytes = File.ReadAllBytes path
    Expect.equal (bytes[.. 7]) ([| 137uy; 80uy; 78uy; 71uy; 13uy; 10uy; 26uy; 10uy |]) ("PNG signature")
    Expect.equal (BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, 8, 4))) 13u ("IHDR length")
    Expect.equal (Encoding.ASCII.GetString(bytes, 12, 4)) ("IHDR") "Encoding.ASCII.GetString(bytes, 12, 4)"
    Expect.equal (Encoding.ASCII.GetString(bytes, bytes.Length - 8, 4)) ("IEND") ("ends with IEND")
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

/// The tiny run the end-to-end tests share: trained once, on first use, in a temporary folder that
/// Expecto deletes after the run (afterRunTests).
let private endToEnd =
    lazy
        (let folder = Directory.CreateTempSubdirectory "vae-cli-test-"
         afterRunTests (fun () -> try folder.Delete true with :? IOException -> ())
         let run = Path.Combine(folder.FullName, "tiny")
         let o = succeeds ([ "train"; "--out"; run ] @ TinyRun)
         Expect.stringContains o.Stdout "epoch 1: train bound" "train's output"
         for name in [ "config.json"; "metrics.csv"; "activity.csv"; "checkpoint.safetensors" ] do
             Expect.isTrue (File.Exists(Path.Combine(run, name))) name
         folder)

/// The end-to-end tests on the shared run (`run`: its folder; `file name`: a path beside it).
let private endToEndTests =
    let run = lazy Path.Combine(endToEnd.Value.FullName, "tiny")
    let file name = Path.Combine(endToEnd.Value.FullName, name)
    testList "end to end" [
        testCase "train writes one metrics row and the settings it was given to config.json" <| fun () ->
            let metrics = RunCsv.ReadMetrics(Path.Combine(run.Value, "metrics.csv"))
            Expect.equal metrics.Count 1 "metrics.Count"
            Expect.isTrue (Double.IsFinite metrics[0].TestBound) "Double.IsFinite metrics[0].TestBound"
            let config = RunFolder.Open(run.Value).ReadConfig()
            Expect.equal ((config.Latent, config.Hidden, config.Epochs, config.TrainSubset, config.TestSubset, config.Seed)) ((5, [| 50 |], 1, Nullable 500, Nullable 200, 11UL)) "(config.Latent, config.Hidden, config.Epochs, config.TrainSubset, config.TestSubset, config.Seed)"
            use json = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.Value, "config.json")))
            Expect.equal (json.RootElement.GetProperty("threads").GetInt32()) Threads "json.RootElement.GetProperty(\"threads\").GetInt32()"

        testCase "eval writes eval.json with nll, standard_error, k, n and binarize" <| fun () ->
            let o = succeeds [ "eval"; run.Value; "--k"; "10"; "--subset"; "50"; "--threads"; string Threads ]
            Expect.stringContains o.Stdout ("NLL = ") "o.Stdout"
            use json = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.Value, "eval.json")))
            let root = json.RootElement
            for key in [ "nll"; "standard_error"; "k"; "n"; "binarize" ] do
                let mutable value = Unchecked.defaultof<JsonElement>
                Expect.isTrue (root.TryGetProperty(key, &value)) ($"eval.json has '{key}'")
            let nll = root.GetProperty("nll").GetDouble()
            let se = root.GetProperty("standard_error").GetDouble()
            Expect.equal (root.GetProperty("nll").ValueKind) JsonValueKind.Number "root.GetProperty(\"nll\").ValueKind"
            Expect.equal ((root.GetProperty("k").GetInt32(), root.GetProperty("n").GetInt32(), root.GetProperty("binarize").GetString())) ((10, 50, "dynamic")) "(root.GetProperty(\"k\").GetInt32(), root.GetProperty(\"n\").GetInt32(), root.GetProperty(\"binarize\").GetString())"
            // Between a perfect model and the uniform Bernoulli model (784 ln 2 = 543 nats); a real error bar.
            inRange 50.0 (784.0 * log 2.0) nll "nll"
            (Expect.isGreaterThan se 0.0 ("se"); Expect.isLessThan se (nll / 10.0) ("se"))
            // The same estimate in process, from the same run, images and noise stream (seed 0, tool stream 1).
            withThreads (fun () ->
                let trained = TrainedRun.Load run.Value
                let test = Trainer.LoadData(trained.Config, null, null).Test.Take 50
                let bounds = Evaluation.LogLikelihoodBounds(trained.Model, trained.Images test, 50, 10, Rng(0UL, TrainStreams.Tool 1u))
                let estimate = Estimate.Of(bounds |> Array.map (fun b -> -b))
                within (CrossProcessRelTol * nll) nll estimate.Mean "nll"
                within (CrossProcessRelTol * se) se estimate.StandardError "se")
            // --json writes elsewhere.
            succeeds [ "eval"; run.Value; "--k"; "2"; "--subset"; "20"; "--json"; file "other.json" ] |> ignore
            use other = JsonDocument.Parse(File.ReadAllText(file "other.json"))
            Expect.equal ((other.RootElement.GetProperty("k").GetInt32(), other.RootElement.GetProperty("n").GetInt32())) ((2, 20)) "(other.RootElement.GetProperty(\"k\").GetInt32(), other.RootElement.GetProperty(\"n\").GetInt32())"

        testCase "eval --binarize-seed: the run's own seed is the default sample; another draws other images and is recorded" <| fun () ->
            let eval (extra: string list) name =
                succeeds ([ "eval"; run.Value; "--k"; "5"; "--subset"; "50"; "--threads"; string Threads; "--json"; file name ] @ extra) |> ignore
                VaeResearch.Analysis.RunStore.readEval (file name)
            let plain = eval [] "plain.json"
            let own = eval [ "--binarize-seed"; "11" ] "own.json"     // TinyRun's seed
            let other = eval [ "--binarize-seed"; "12" ] "other-seed.json"
            Expect.equal plain.BinarizeSeed None "not written unless given"
            Expect.equal own.BinarizeSeed (Some 11UL) "recorded"
            Expect.equal other.BinarizeSeed (Some 12UL) "recorded"
            Expect.equal own.Nll plain.Nll "the run's seed gives the default sample, and the same importance samples"
            Expect.notEqual other.Nll plain.Nll "another sample of the test images"
            // The images themselves: the same grey levels, another draw of the same Bernoulli pixels.
            let trained = TrainedRun.Load run.Value
            let test = Trainer.LoadData(trained.Config, null, null).Test.Take 50
            let a, b = trained.Images test, trained.Images(test, Nullable(), Nullable 12UL)
            Expect.notEqual a b "different draws"
            Expect.sequenceEqual (trained.Images(test, Nullable(), Nullable 11UL)) a "seed 11 is the default"
            Expect.isTrue (Array.forall2 (fun (x: float32) (y: float32) -> (x = 0.0f || x = 1.0f) && (y = 0.0f || y = 1.0f)) a b) "binary"
            let fails' = fails [ "eval"; run.Value; "--binarize-seed"; "-1" ]
            Expect.stringContains (fails'.Stderr + fails'.Stdout) "binarize-seed" "a negative seed is rejected by name"

        testCase "sample writes a float32 [16, 784] npy and a 4 x 4 PNG grid" <| fun () ->
            succeeds [ "sample"; run.Value; "--n"; "16"; "--npy"; file "samples.npy"; "--png"; file "samples.png" ] |> ignore
            let header, shape, values = readNpy (file "samples.npy")
            Expect.equal shape ([| 16; 784 |]) header
            Expect.isTrue (values |> Array.forall (fun v -> v >= 0.0f && v <= 1.0f)) ("pixel probabilities in [0, 1]")
            Expect.isGreaterThan (values |> Array.distinct |> Array.length) 100 ("not a constant image")
            Expect.equal (readPngHeader (file "samples.png")) ((gridSide 4, gridSide 4, 8, 0)) ("4 x 4 grid, 8-bit greyscale")
            // Seeded: the same command gives the same samples.
            succeeds [ "sample"; run.Value; "--n"; "16"; "--npy"; file "again.npy" ] |> ignore
            Expect.equal (File.ReadAllBytes(file "again.npy")) (File.ReadAllBytes(file "samples.npy")) "File.ReadAllBytes(file \"again.npy\")"

        testCase "encode writes the posterior means as float32 [n, 5]" <| fun () ->
            succeeds [ "encode"; run.Value; "--npy"; file "z.npy"; "--subset"; "100" ] |> ignore
            let _, shape, values = readNpy (file "z.npy")
            Expect.equal shape ([| 100; 5 |]) "shape"
            Expect.isTrue (values |> Array.forall Single.IsFinite) "values |> Array.forall Single.IsFinite"
            // The in-process posterior means of the same images.
            withThreads (fun () ->
                let trained = TrainedRun.Load run.Value
                let test = Trainer.LoadData(trained.Config, null, null).Test.Take 100
                let means = Evaluation.PosteriorMeans(trained.Model, trained.Images test, 100)
                withinEach (float (1e-5f)) values (means) "values")
            succeeds [ "encode"; run.Value; "--npy"; file "ztrain.npy"; "--split"; "train"; "--subset"; "30" ] |> ignore
            let _, shape, _ = readNpy (file "ztrain.npy")
            Expect.equal shape ([| 30; 5 |]) "shape"

        testCase "reconstruct writes inputs above reconstructions as a PNG grid" <| fun () ->
            succeeds [ "reconstruct"; run.Value; "--png"; file "recon.png" ] |> ignore
            // Default: 50 images in 10 columns = 5 rows of inputs and 5 of reconstructions.
            Expect.equal (readPngHeader (file "recon.png")) ((gridSide 10, gridSide 10, 8, 0)) "readPngHeader (file \"recon.png\")"
            succeeds [ "reconstruct"; run.Value; "--png"; file "recon8.png"; "--n"; "8"; "--columns"; "4" ] |> ignore
            Expect.equal (readPngHeader (file "recon8.png")) ((gridSide 4, gridSide 4, 8, 0)) "readPngHeader (file \"recon8.png\")"

        testCase "train --out on an existing run without --resume fails and leaves the run as it was" <| fun () ->
            let checkpoint = Path.Combine(run.Value, "checkpoint.safetensors")
            let before = File.ReadAllBytes checkpoint
            let o = fails ([ "train"; "--out"; run.Value ] @ TinyRun)
            (Expect.stringContains o.Stderr ("vae train: error:") ("o.Stderr"); Expect.stringContains o.Stderr run.Value ("o.Stderr"); Expect.stringContains o.Stderr ("already holds a trained run") ("o.Stderr"); Expect.stringContains o.Stderr ("--resume") ("o.Stderr"))
            Expect.equal (File.ReadAllBytes checkpoint) before "File.ReadAllBytes checkpoint"

        testCase "train --resume continues a run, and refuses a changed setting" <| fun () ->
            let path = file "resumed"
            succeeds ([ "train"; "--out"; path ] @ TinyRun) |> ignore
            let o = fails [ "train"; "--out"; path; "--resume"; "--epochs"; "2"; "--lr"; "0.5" ]
            (Expect.stringContains o.Stderr ("--lr") ("o.Stderr"); Expect.stringContains o.Stderr ("differs from the run's saved setting") ("o.Stderr"))
            succeeds [ "train"; "--out"; path; "--resume"; "--epochs"; "2"; "--threads"; string Threads ] |> ignore
            let metrics = RunCsv.ReadMetrics(Path.Combine(path, "metrics.csv"))
            Expect.equal (metrics |> Seq.map (fun r -> r.Epoch) |> List.ofSeq) [ 1; 2 ] "metrics |> Seq.map (fun r -> r.Epoch)"
    ]

/// Every command and subcommand the catalog lists.
let Commands =
    [ []; [ "data" ]; [ "data"; "fetch" ]; [ "data"; "info" ]; [ "train" ]; [ "eval" ]; [ "encode" ]; [ "sample" ]
      [ "reconstruct" ]; [ "activity" ]; [ "parzen" ]; [ "report" ]; [ "tables" ]; [ "bench" ] ]

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Cli" [
        endToEndTests

        testCase "vae eval on a folder that is not a run exits non-zero naming the folder" <| fun () ->
            let missing = Path.Combine(Path.GetTempPath(), $"NOT_A_RUN-{Guid.NewGuid():N}")
            let o = fails [ "eval"; missing; "--k"; "5" ]
            (Expect.stringContains o.Stderr ("vae eval: error:") ("o.Stderr"); Expect.stringContains o.Stderr missing ("o.Stderr"))
            // An existing folder without config.json is named too.
            let empty = Directory.CreateTempSubdirectory "vae-cli-empty-"
            try
                let o = fails [ "eval"; empty.FullName ]
                (Expect.stringContains o.Stderr empty.FullName ("o.Stderr"); Expect.stringContains o.Stderr ("config.json") ("o.Stderr"))
            finally
                empty.Delete true

        testCase "vae train --k 0 exits non-zero naming --k and creates nothing" <| fun () ->
            let out = Path.Combine(Path.GetTempPath(), $"vae-cli-k0-{Guid.NewGuid():N}")
            let o = fails [ "train"; "--out"; out; "--k"; "0"; "--train-subset"; "100"; "--epochs"; "1" ]
            (Expect.stringContains o.Stderr ("vae train: error:") ("o.Stderr"); Expect.stringContains o.Stderr ("--k") ("o.Stderr"))
            Expect.isFalse (Directory.Exists out) ("no run folder for an invalid configuration")

        testCase "vae train rejects other bad settings naming the option" <| fun () ->
            let out = Path.Combine(Path.GetTempPath(), $"vae-cli-bad-{Guid.NewGuid():N}")
            for args, option in
                [ [ "--latent"; "0" ], "--latent"
                  [ "--model"; "evae"; "--latent"; "10"; "--epitome-size"; "4" ], "do not tile"
                  [ "--model"; "evae" ], "--epitome-size"
                  [ "--dropout-z"; "1" ], "--dropout-z"
                  [ "--hidden"; "200,x" ], "--hidden" ] do
                let o = fails ([ "train"; "--out"; out ] @ args)
                Expect.stringContains o.Stderr option (String.Join(" ", args))
            Expect.isFalse (Directory.Exists out) "Directory.Exists out"

        testCase "--help of every command exits 0 and prints its usage" <| fun () ->
            for command in Commands do
                let o = vae (command @ [ "--help" ])
                let name = String.Join(" ", command)
                Expect.equal o.ExitCode 0 ($"vae {name} --help: {o.Stderr}")
                Expect.stringContains o.Stdout ("Usage:") ($"vae {name} --help")
                Expect.isEmpty o.Stderr ($"vae {name} --help writes nothing to stderr")
    ]
