module VaeResearch.Regression.BackendTrainingTests

// The backends end to end from the CLI, on MNIST: a resumed native run keeps the GEMM kernel it trained with; and the
// torch backend: `vae train --backend torch` against the same native run,
// a resumed torch run against an uninterrupted one, the torch checkpoint evaluated by both backends, and the clear
// error of a CUDA request on a machine without a CUDA build of libtorch. Optional-native tests: where libtorch cannot
// load they are skipped with the reason (and required under CI).

open System
open System.IO
open Expecto
open VaeResearch.Engine
open VaeResearch.Training
open VaeResearch.Regression.CliTests
open VaeResearch.TestSupport

/// The settings both backends train with: 2 epochs of 20 minibatches, 2 threads.
let private settings =
    [ "--train-subset"; "2000"; "--test-subset"; "500"; "--latent"; "10"; "--hidden"; "64,64"; "--seed"; "3"; "--threads"; string Threads ]

let private requireTorch () =
    requireNative "libtorch (TorchSharp)" (Option.ofObj VaeResearch.Torch.TorchBackend.LoadError)
        "dotnet build restores libtorch-cpu-linux-x64 2.10.0 from NuGet and patches libLibTorchSharp.so under bin/ (build/Torch.targets)"

let private metrics (run: string) = RunCsv.ReadMetrics(Path.Combine(run, "metrics.csv"))

let private checkpointTensors (run: string) =
    let content = VaeResearch.Engine.Safetensors.Load(Path.Combine(run, "checkpoint.safetensors"))
    content.Tensors |> Seq.map (fun t -> t.Name, t.Data) |> Seq.sortBy fst |> List.ofSeq

let private evalNll (run: string) (backend: string) (json: string) =
    succeeds [ "eval"; run; "--k"; "50"; "--subset"; "500"; "--backend"; backend; "--json"; json; "--threads"; string Threads ] |> ignore
    let doc = Text.Json.JsonDocument.Parse(File.ReadAllText json)
    doc.RootElement.GetProperty("nll").GetDouble(), doc.RootElement.GetProperty("standard_error").GetDouble()

/// `dotnet vae.dll ARGS` with VAE_GEMM set to <paramref name="gemm"/> (None: unset).
let private vaeWithGemm (gemm: string option) (args: string list) =
    let start = Diagnostics.ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    start.ArgumentList.Add vaeDll
    for a in args do start.ArgumentList.Add a
    start.Environment.Remove "VAE_GEMM" |> ignore
    gemm |> Option.iter (fun g -> start.Environment["VAE_GEMM"] <- g)
    use p = nonNull (Diagnostics.Process.Start start)
    let err = p.StandardError.ReadToEndAsync()
    p.StandardOutput.ReadToEnd() |> ignore
    p.WaitForExit()
    Expect.equal p.ExitCode 0 $"vae {String.Join(' ', args)} (VAE_GEMM {gemm}) failed:\n{err.Result}"
    err.Result

/// The tests of this module.
let tests =
    testList "BackendTraining" [
        // The run trains on OpenBLAS (forced), then resumes with VAE_GEMM unset: the trainer must take the kernel from
        // config.json, not the calibrated default (on this machine type the managed kernel, 1.4-4x faster than Debian's
        // OpenBLAS). The two kernels' float32 sums differ in order, so another kernel would break bit-identity.
        testCase "a resumed run keeps the GEMM kernel it was trained with (bit-identical), whatever the default" <| fun () ->
            requireNative "OpenBLAS" (if Gemm.OpenBlasAvailable then None else Some "libopenblas.so.0 does not load") "apt-get install -y libopenblas0-pthread"
            use folder = new TempFolder "vae-gemm-resume-"
            let straight, resumed = folder.Sub "straight", folder.Sub "resumed"
            vaeWithGemm (Some "openblas") ([ "train"; "--out"; straight; "--epochs"; "2" ] @ settings) |> ignore
            vaeWithGemm (Some "openblas") ([ "train"; "--out"; resumed; "--epochs"; "1" ] @ settings) |> ignore
            let err = vaeWithGemm None ([ "train"; "--out"; resumed; "--epochs"; "2"; "--resume" ] @ settings)
            notContains err "not bit-identical" "no kernel note"
            Expect.stringContains err "gemm openblas" "the log names the kernel it resumes on"
            notContains err "gemm managed" "and no other"
            Expect.sequenceEqual (checkpointTensors resumed) (checkpointTensors straight) "every tensor of the checkpoint, bit for bit"
            let gemm (run: string) = Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement.GetProperty("versions").GetProperty("gemm").GetString()
            Expect.stringStarts (nonNull (gemm resumed)) "openblas" "config.json still records OpenBLAS"

        // Both backends start from the same weights and draw the same noise and batches; they differ only in float32
        // summation order (libtorch's GEMM and reductions), which 40 Adam steps carry into the weights. Measured here:
        // the test bounds differ by 2e-6 nats (epoch 1) and 2e-7 nats (epoch 2); 0.05 nats leaves four orders of magnitude
        // for other CPUs, while a semantic difference (a wrong KL sign, a missing term) moves the bound by tens of nats.
        testCase "a torch run of 2 epochs matches the native run's test bound within 0.05 nats, and config.json records the backend" <| fun () ->
            requireTorch ()
            use folder = new TempFolder "vae-torch-train-"
            let native, torch = folder.Sub "native", folder.Sub "torch"
            succeeds ([ "train"; "--out"; native; "--epochs"; "2" ] @ settings) |> ignore
            succeeds ([ "train"; "--out"; torch; "--epochs"; "2"; "--backend"; "torch" ] @ settings) |> ignore
            let n, t = metrics native, metrics torch
            Expect.equal t.Count 2 "two epochs"
            for i in 0 .. 1 do within 0.05 t[i].TestBound n[i].TestBound $"epoch {i + 1}: test bound, torch against native"
            let config = Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(torch, "config.json"))).RootElement
            Expect.equal (config.GetProperty("backend").GetString()) "torch" "backend"
            Expect.equal (config.GetProperty("device").GetString()) "cpu" "device"
            let versions = config.GetProperty "versions"
            Expect.stringStarts (nonNull (versions.GetProperty("libtorch").GetString())) "2.10.0" "libtorch version"
            Expect.stringStarts (nonNull (versions.GetProperty("torchsharp").GetString())) "0.107" "TorchSharp version"

        testCase "a resumed torch run ends bit-identical to an uninterrupted one" <| fun () ->
            requireTorch ()
            use folder = new TempFolder "vae-torch-resume-"
            let straight, resumed = folder.Sub "straight", folder.Sub "resumed"
            succeeds ([ "train"; "--out"; straight; "--epochs"; "2"; "--backend"; "torch" ] @ settings) |> ignore
            succeeds ([ "train"; "--out"; resumed; "--epochs"; "1"; "--backend"; "torch" ] @ settings) |> ignore
            succeeds ([ "train"; "--out"; resumed; "--epochs"; "2"; "--backend"; "torch"; "--resume" ] @ settings) |> ignore
            Expect.sequenceEqual (checkpointTensors resumed) (checkpointTensors straight) "every tensor of the checkpoint, bit for bit"
            Expect.sequenceEqual ((metrics resumed) |> Seq.map (fun r -> r.TestBound)) ((metrics straight) |> Seq.map (fun r -> r.TestBound)) "test bounds"

        // The same importance samples (seeded, drawn on the CPU) on both backends: the two estimates differ only by
        // float32 rounding, far below the standard error of the mean over 500 images (the full test set's was 0.33 nats
        // at 3 epochs, so 500 images give more).
        testCase "a torch checkpoint evaluates to the same NLL on both backends (within a tenth of its standard error)" <| fun () ->
            requireTorch ()
            use folder = new TempFolder "vae-torch-eval-"
            let run = folder.Sub "run"
            succeeds ([ "train"; "--out"; run; "--epochs"; "1"; "--backend"; "torch" ] @ settings) |> ignore
            let nllNative, se = evalNll run "native" (folder.File "native.json")
            let nllTorch, _ = evalNll run "torch" (folder.File "torch.json")
            within (0.1 * se) nllTorch nllNative "NLL: torch against native"

        // What is timed is not checked (benchmarks are separate from tests): only that one run times both backends per k
        // (the native step again in the peer's rounds, with the ratio) and says so.
        testCase "vae bench --peer torch times the step on libtorch at 1 and 2 threads beside the native one, per k" <| fun () ->
            requireTorch ()
            use folder = new TempFolder "vae-bench-peer-"
            let json = folder.File "bench.json"
            let o = succeeds [ "bench"; "--k"; "1,2"; "--seconds"; "0.05"; "--threads"; string Threads; "--batch"; "20"; "--peer"; "torch"; "--json"; json ]
            Expect.stringContains o.Stdout "the seed step at batch 20 beside torch" "the side-by-side table, at the batch asked for"
            Expect.stringContains o.Stdout "eval_l5000" "the L_5000 case"
            let entries = Text.Json.JsonDocument.Parse(File.ReadAllText json).RootElement.EnumerateArray() |> List.ofSeq
            for e in entries do
                if e.GetProperty("name").GetString() = "vae_step" then
                    let examples = e.GetProperty("samples_per_s").GetDouble() * e.GetProperty("ms_per_step").GetDouble() / 1000.0
                    within 1e-6 examples 20.0 "a step trains 20 examples (samples/s x s/step)"
            Expect.stringContains (fails [ "bench"; "--batch"; "0" ]).Stderr "--batch" "a batch of 0 is refused, naming the option"
            let peers =
                [ for e in entries do
                      if e.GetProperty("name").GetString() = "peer_step" then
                          e.GetProperty("threads").GetInt32(), e.GetProperty("k").GetInt32(), e.GetProperty("ms_per_step").GetDouble() ]
            Expect.sequenceEqual (peers |> List.map (fun (t, k, _) -> t, k)) [ 1, 1; 1, 2; 2, 1; 2, 2 ] "threads 1 and 2 for each k"
            for _, _, ms in peers do Expect.isGreaterThan ms 0.0 "a positive time"
            let ratios =
                [ for e in entries do
                      if e.GetProperty("name").GetString() = "peer_ratio" then
                          e.GetProperty("k").GetInt32(), e.GetProperty("native_ms_per_step").GetDouble(), e.GetProperty("best_peer_over_native").GetDouble() ]
            Expect.sequenceEqual (ratios |> List.map (fun (k, _, _) -> k)) [ 1; 2 ] "the native step and the ratio for each k"
            for _, ms, ratio in ratios do
                Expect.isGreaterThan ms 0.0 "a positive native time"
                Expect.isGreaterThan ratio 0.0 "a positive ratio"

        testCase "asking for CUDA without a CUDA build of libtorch names the package to install" <| fun () ->
            requireTorch ()
            use folder = new TempFolder "vae-torch-cuda-"
            let o = fails ([ "train"; "--out"; folder.Sub "run"; "--epochs"; "1"; "--backend"; "torch"; "--device"; "cuda" ] @ settings)
            Expect.stringContains o.Stderr "--device" "names the option"
            Expect.stringContains o.Stderr "TorchSharp-cuda-linux" "names the package"
            let native = fails [ "eval"; folder.Sub "run"; "--device"; "cuda:0" ]
            Expect.stringContains native.Stderr "--device" "the native backend refuses CUDA, naming the option"
    ]
