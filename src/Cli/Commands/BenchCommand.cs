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
        var batch = new Option<int>("--batch")
        {
            Description = "Batch size of the training-step cases (Burda et al. and the campaign's Table 1 and 2 runs train at 20).",
            DefaultValueFactory = _ => TrainingBenchmark.DefaultBatch,
        };
        var peer = CliOptions.OptionalChoice("--peer",
            "Also time the same training step on a peer, side by side: torch (libtorch through TorchSharp, CPU, 1 and 2 threads), " +
            "in 3 rounds that each time the native step and the peer's, and print the peer's best time over the native one per k.",
            ComputeBackends.Torch);
        var command = new Command("bench",
            "Benchmark, in one run: the training step (forward, backward, Adam) of the 784-200-200-50 VAE at batch 100 (--batch) " +
            "for each k, L_5000 per 1,000 test images, the eVAE step (D = 50, K = 25, s = 25) and its assignment pass over 60,000 examples, and sgemm " +
            "GFLOP/s on their GEMM shapes. Prints ms/step, samples/s and the time as a multiple of the same GEMMs alone (timed in " +
            "turns with the step). The GEMM kernel is the faster of OpenBLAS and the managed SIMD kernel on this machine (measured " +
            "once and cached in ~/.cache/vaeresearch/gemm-calibration.json; managed where libopenblas.so.0 does not load); " +
            "VAE_GEMM=managed|openblas forces one.")
        {
            json, ks, seconds, threads, batch, peer,
        };
        command.SetAction(parse => CliRunner.Run("bench", () =>
        {
            var kList = parse.GetValue(ks)!;
            if (kList.Length == 0 || kList.Any(k => k < 1)) throw new VaeResearchException($"--k: every k must be >= 1, got {string.Join(",", kList)}");
            double secs = parse.GetValue(seconds);
            if (!(secs > 0)) throw new VaeResearchException($"--seconds must be positive, got {secs}");
            int batchSize = parse.GetValue(batch);
            if (batchSize < 1) throw new VaeResearchException($"--batch must be >= 1, got {batchSize}");
            if (parse.GetValue(threads) is int t) Parallelism.Threads = t;
            Console.WriteLine($"gemm kernel: {Gemm.KernelDescription}; threads: {Parallelism.Threads}; batch: {batchSize}");
            var (gemm, steps) = TrainingBenchmark.Run(kList, secs, batch: batchSize);
            Console.WriteLine($"sgemm on the step's shapes: {gemm.Gflops:F1} GFLOP/s");
            Console.WriteLine($"{"case",-18} {"k",4} {"ms/step",9} {"samples/s",10} {"x gemm-bound",13} {"gen0/100 steps",15}");
            Console.WriteLine("(evae_assignment: ms per pass over 60,000 examples; eval_l5000: ms per 1,000 test images, samples/s in images)");
            foreach (var s in steps)
                Console.WriteLine($"{s.Name,-18} {s.Samples,4} {s.MsPerStep,9:F2} {s.SamplesPerSecond,10:F0} {s.GemmBoundRatio,13:F2} {s.Gen0PerHundredSteps,15:F1}");
            var (peers, ratios) = parse.GetValue(peer) is { } peerName ? PeerTimings(peerName, kList, secs, batchSize, steps) : ([], []);
            if (parse.GetValue(json) is { } file)
            {
                var entries = new List<object> { new Dictionary<string, object> { ["name"] = "sgemm", ["gflops"] = gemm.Gflops, ["backend"] = gemm.Backend } };
                entries.AddRange(peers.Select(p => new Dictionary<string, object>
                {
                    ["name"] = "peer_step", ["peer"] = p.Peer, ["threads"] = p.Threads, ["k"] = p.K, ["ms_per_step"] = p.Ms,
                }));
                entries.AddRange(ratios.Select(r => new Dictionary<string, object>
                {
                    ["name"] = "peer_ratio", ["k"] = r.K, ["native_ms_per_step"] = r.NativeMs, ["best_peer_over_native"] = r.BestPeerOverNative,
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

    /// <summary>Rounds of <see cref="PeerTimings"/>: each times the native step and the peer's at every thread count once.</summary>
    const int PeerRounds = 3;

    /// <summary>
    /// Times the seed step natively and on <paramref name="peerName"/> at 1 and 2 threads for every k, in
    /// <see cref="PeerRounds"/> rounds, and prints the medians over the rounds with the median over the rounds of the
    /// peer's best time over the native one.
    /// </summary>
    // NOTE: the rounds spread every runner over the same minutes, so a drift in the machine's speed (another tenant, the
    // clock) touches native and peer alike instead of whichever ran last.
    static (List<(string Peer, int Threads, int K, double Ms)> Peer, List<PeerRatio> Ratios) PeerTimings(
        string peerName, int[] ks, double seconds, int batch, List<StepTiming> native)
    {
        int nativeThreads = Parallelism.Threads;
        var rounds = new List<(string Peer, int Threads, int K, double Ms)>[PeerRounds];
        int[] threadCounts = [1, 2];
        try
        {
            for (int round = 0; round < PeerRounds; round++)
            {
                var times = rounds[round] = [];
                var self = ComputeBackends.Create(ComputeBackends.Native, "cpu", nativeThreads);
                foreach (int k in ks) times.Add((ComputeBackends.Native, nativeThreads, k, TrainingBenchmark.StepMilliseconds(self, k, seconds / PeerRounds, batch)));
                foreach (int t in threadCounts)
                {
                    var context = ComputeBackends.Create(peerName, "cpu", t);
                    foreach (int k in ks) times.Add((peerName, t, k, TrainingBenchmark.StepMilliseconds(context, k, seconds / PeerRounds, batch)));
                }
            }
        }
        finally
        {
            Parallelism.Threads = nativeThreads;
        }
        double Ms(string who, int threads, int k) => TrainingBenchmark.MedianOf(rounds.Select(r => r.Single(p => p.Peer == who && p.Threads == threads && p.K == k).Ms));
        Console.WriteLine();
        Console.WriteLine($"the seed step at batch {batch} beside {peerName} (CPU; native: {Gemm.KernelDescription}, {nativeThreads} threads; " +
            $"medians over {PeerRounds} rounds, each timing every column once)");
        Console.WriteLine($"{"k",4} {"native ms",10} " + string.Join(" ", threadCounts.Select(t => $"{peerName + " " + t + "t ms",12}")) +
            $" {"best " + peerName + " / native",20} {"native x gemm",14}");
        var ratios = new List<PeerRatio>();
        foreach (int k in ks)
        {
            var step = native.First(s => s.Name == "vae_step" && s.Samples == k);
            double ratio = TrainingBenchmark.MedianOf(rounds.Select(r =>
                r.Where(p => p.Peer == peerName && p.K == k).Min(p => p.Ms) / r.Single(p => p.Peer == ComputeBackends.Native && p.K == k).Ms));
            double nativeMs = Ms(ComputeBackends.Native, nativeThreads, k);
            Console.WriteLine($"{k,4} {nativeMs,10:F2} " +
                string.Join(" ", threadCounts.Select(t => $"{Ms(peerName, t, k),12:F2}")) + $" {ratio,20:F2} {step.GemmBoundRatio,14:F2}");
            ratios.Add(new PeerRatio(k, nativeMs, ratio));
        }
        var peerTimes = threadCounts.SelectMany(t => ks.Select(k => (peerName, t, k, Ms(peerName, t, k)))).ToList();
        return (peerTimes, ratios);
    }

    /// <summary>One k of the side-by-side table: the native step's median over the rounds and the peer's best over it.</summary>
    sealed record PeerRatio(int K, double NativeMs, double BestPeerOverNative);
}
