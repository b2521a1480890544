using System.CommandLine;
using System.Text.Json;
using VaeResearch.Bench;
using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae bench [--json FILE]</c>: sgemm throughput and training-step times in one run.</summary>
static class BenchCommand
{
    public static Command Create()
    {
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures as JSON to FILE." };
        var ks = new Option<int[]>("--k")
        {
            Description = "Importance-sample counts to time (repeat or comma-separate).",
            DefaultValueFactory = _ => [1, 5, 50],
            AllowMultipleArgumentsPerToken = true,
            CustomParser = r => r.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries)).Select(int.Parse).ToArray(),
        };
        var seconds = new Option<double>("--seconds") { Description = "Measuring time per case, in seconds.", DefaultValueFactory = _ => 2.0 };
        var threads = CliOptions.Threads();
        var peer = CliOptions.OptionalChoice("--peer",
            "Also time the same training step on a peer, side by side: torch (libtorch through TorchSharp, CPU, 1 and 2 threads), " +
            "and print the peer's best time over the native one per k.", ComputeBackends.Torch);
        var command = new Command("bench",
            "Benchmark, in one run: the training step (forward, backward, Adam) of the 784-200-200-50 VAE at batch 100 " +
            "for each k, the eVAE step (D = 50, K = 25, s = 25) and its assignment pass over 60,000 examples, and sgemm " +
            "GFLOP/s on their GEMM shapes. Prints ms/step, samples/s and the time as a multiple of the same GEMMs alone. " +
            "The GEMM kernel is OpenBLAS when libopenblas.so.0 loads, else the managed SIMD kernel; " +
            "VAE_GEMM=managed|openblas forces one.")
        {
            json, ks, seconds, threads, peer,
        };
        command.SetAction(parse => CliRunner.Run("bench", () =>
        {
            var kList = parse.GetValue(ks)!;
            if (kList.Length == 0 || kList.Any(k => k < 1)) throw new VaeResearchException($"--k: every k must be >= 1, got {string.Join(",", kList)}");
            double secs = parse.GetValue(seconds);
            if (!(secs > 0)) throw new VaeResearchException($"--seconds must be positive, got {secs}");
            if (parse.GetValue(threads) is int t) Parallelism.Threads = t;
            Console.WriteLine($"gemm kernel: {Gemm.KernelDescription}; threads: {Parallelism.Threads}");
            var (gemm, steps) = TrainingBenchmark.Run(kList, secs);
            Console.WriteLine($"sgemm on the step's shapes: {gemm.Gflops:F1} GFLOP/s");
            Console.WriteLine($"{"case",-18} {"k",4} {"ms/step",9} {"samples/s",10} {"x gemm-bound",13} {"gen0/100 steps",15}");
            Console.WriteLine("(evae_assignment: ms per pass over 60,000 examples; eval_l5000: ms per 1,000 test images, samples/s in images)");
            foreach (var s in steps)
                Console.WriteLine($"{s.Name,-18} {s.Samples,4} {s.MsPerStep,9:F2} {s.SamplesPerSecond,10:F0} {s.GemmBoundRatio,13:F2} {s.Gen0PerHundredSteps,15:F1}");
            var peers = parse.GetValue(peer) is { } peerName ? PeerTimings(peerName, kList, secs, steps) : [];
            if (parse.GetValue(json) is { } file)
            {
                var entries = new List<object> { new Dictionary<string, object> { ["name"] = "sgemm", ["gflops"] = gemm.Gflops, ["backend"] = gemm.Backend } };
                entries.AddRange(peers.Select(p => new Dictionary<string, object>
                {
                    ["name"] = "peer_step", ["peer"] = p.Peer, ["threads"] = p.Threads, ["k"] = p.K, ["ms_per_step"] = p.Ms,
                }));
                entries.AddRange(steps.Select(s => new Dictionary<string, object>
                {
                    ["name"] = s.Name, ["k"] = s.Samples, ["ms_per_step"] = s.MsPerStep, ["samples_per_s"] = s.SamplesPerSecond,
                    ["gemm_bound_ratio"] = s.GemmBoundRatio, ["gen0_per_100_steps"] = s.Gen0PerHundredSteps,
                }));
                AtomicFile.WriteAllText(file.FullName, JsonSerializer.Serialize(entries, new JsonSerializerOptions { WriteIndented = true }));
                Console.WriteLine($"wrote {file.FullName}");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Times the seed step on <paramref name="peerName"/> at 1 and 2 threads for every k and prints it beside the native step
    /// just measured, with the ratio of the peer's best time to the native one.
    /// </summary>
    static List<(string Peer, int Threads, int K, double Ms)> PeerTimings(string peerName, int[] ks, double seconds, List<StepTiming> native)
    {
        int nativeThreads = Parallelism.Threads;
        var timings = new List<(string Peer, int Threads, int K, double Ms)>();
        int[] threadCounts = [1, 2];
        try
        {
            foreach (int t in threadCounts)
            {
                var context = ComputeBackends.Create(peerName, "cpu", t);
                foreach (int k in ks) timings.Add((peerName, t, k, TrainingBenchmark.StepMilliseconds(context, k, seconds)));
            }
        }
        finally
        {
            Parallelism.Threads = nativeThreads;
        }
        Console.WriteLine();
        Console.WriteLine($"the seed step beside {peerName} (CPU; native: {Gemm.KernelDescription}, {nativeThreads} threads)");
        Console.WriteLine($"{"k",4} {"native ms",10} " + string.Join(" ", threadCounts.Select(t => $"{peerName + " " + t + "t ms",12}")) +
            $" {"best " + peerName + " / native",20} {"native x gemm",14}");
        foreach (int k in ks)
        {
            var step = native.First(s => s.Name == "vae_step" && s.Samples == k);
            var mine = timings.Where(p => p.K == k).ToList();
            double best = mine.Min(p => p.Ms);
            Console.WriteLine($"{k,4} {step.MsPerStep,10:F2} " + string.Join(" ", mine.Select(p => $"{p.Ms,12:F2}")) +
                $" {best / step.MsPerStep,20:F2} {step.GemmBoundRatio,14:F2}");
        }
        return timings;
    }
}
