using System.Diagnostics;
using VaeResearch.Engine;

namespace VaeResearch.Bench;

/// <summary>One benchmark figure: a training step at k importance samples.</summary>
/// <param name="Name">What was timed.</param>
/// <param name="K">Importance samples.</param>
/// <param name="MsPerStep">Median milliseconds per step (forward, backward, Adam).</param>
/// <param name="SamplesPerSecond">Training examples per second (batch / step time).</param>
/// <param name="GemmBoundRatio">Step time divided by the time of the step's GEMMs alone.</param>
/// <param name="Gen0PerHundredSteps">Gen-0 garbage collections per 100 steps.</param>
public sealed record StepTiming(string Name, int K, double MsPerStep, double SamplesPerSecond, double GemmBoundRatio, double Gen0PerHundredSteps);

/// <summary>The sgemm throughput measured on a step's GEMM shapes.</summary>
/// <param name="Gflops">Billions of floating-point operations per second.</param>
/// <param name="Backend">Which GEMM ran.</param>
public sealed record GemmTiming(double Gflops, string Backend);

/// <summary>A GEMM call's shape: C[m, n] += op(A)[m, k] op(B)[k, n].</summary>
public readonly record struct GemmShape(bool TransA, bool TransB, int M, int N, int K)
{
    /// <summary>Multiply-adds times two.</summary>
    public double Flops => 2.0 * M * N * K;
}

/// <summary>
/// Times the training step of a model and the GEMMs it performs, in one run, so that the step's
/// cost can be reported as a multiple of the GEMM-bound time on this machine.
/// </summary>
public static class TrainingBenchmark
{
    /// <summary>
    /// The GEMM calls of one training step of a stack of linear layers (in, out) applied to
    /// <paramref name="rows"/> rows: forward y = x W^T, backward dW = dy^T x and (unless the layer
    /// reads the data) dx = dy W.
    /// </summary>
    public static IEnumerable<GemmShape> LinearStepShapes(int rows, IEnumerable<(int In, int Out, bool InputNeedsGrad)> layers)
    {
        foreach (var (inDim, outDim, needsGrad) in layers)
        {
            yield return new GemmShape(false, true, rows, outDim, inDim);
            yield return new GemmShape(true, false, outDim, inDim, rows);
            if (needsGrad) yield return new GemmShape(false, false, rows, inDim, outDim);
        }
    }

    /// <summary>The GEMM calls of one training step of <see cref="SeedModel"/> (784-200-200-50) at batch and k.</summary>
    public static List<GemmShape> SeedModelShapes(int batch, int k, int input = 784, int hidden = 200, int latent = 50) =>
    [
        .. LinearStepShapes(batch, [(input, hidden, false), (hidden, hidden, true), (hidden, latent, true), (hidden, latent, true)]),
        .. LinearStepShapes(batch * k, [(latent, hidden, true), (hidden, hidden, true), (hidden, input, true)]),
    ];

    /// <summary>Median seconds of one pass over <paramref name="shapes"/>, on buffers large enough for all of them.</summary>
    public static double TimeGemms(IReadOnlyList<GemmShape> shapes, double seconds = 1.0)
    {
        int size = shapes.Max(s => Math.Max(s.M * s.K, Math.Max(s.K * s.N, s.M * s.N)));
        var a = new float[size];
        var b = new float[size];
        var c = new float[size];
        var rng = new Rng(1);
        rng.FillNormal(a);
        rng.FillNormal(b);
        return Median(seconds, () =>
        {
            foreach (var s in shapes)
                Gemm.Sgemm(s.TransA, s.TransB, s.M, s.N, s.K, 1f,
                    a, s.TransA ? s.M : s.K, b, s.TransB ? s.K : s.N, 1f, c, s.N);
        });
    }

    /// <summary>Median seconds per call of <paramref name="action"/>, after a warm-up, over about <paramref name="seconds"/>.</summary>
    public static double Median(double seconds, Action action)
    {
        var warm = Stopwatch.StartNew();
        int warmups = 0;
        while (warmups < 3 || (warm.Elapsed.TotalSeconds < seconds * 0.2 && warmups < 50))
        {
            action();
            warmups++;
        }
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < 5 || (total.Elapsed.TotalSeconds < seconds && times.Count < 10_000))
        {
            long t0 = Stopwatch.GetTimestamp();
            action();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    /// <summary>
    /// Times training steps of the seed model (batch 100, Adam) on random binary data at each k, and the
    /// sgemm throughput on the same shapes.
    /// </summary>
    public static (GemmTiming Gemm, List<StepTiming> Steps) RunSeedModel(IReadOnlyList<int> ks, double secondsPerCase = 2.0, int batch = 100)
    {
        var rng = new Rng(42);
        var model = new SeedModel(rng.Derive(1));
        var adam = new Adam(model.Parameters(), 1e-3f, 0.9f, 0.999f, 1e-4f);
        var pixels = new float[batch * 784];
        rng.Derive(2).FillUniform(pixels);
        for (int i = 0; i < pixels.Length; i++) pixels[i] = pixels[i] < 0.13f ? 1f : 0f;
        var x = Tensor.FromArray(pixels, batch, 784);
        var noise = rng.Derive(3);

        var steps = new List<StepTiming>();
        double totalFlops = 0, totalGemmSeconds = 0;
        foreach (int k in ks)
        {
            var shapes = SeedModelShapes(batch, k);
            double gemmSeconds = TimeGemms(shapes, secondsPerCase / 2);
            totalFlops += shapes.Sum(s => s.Flops);
            totalGemmSeconds += gemmSeconds;

            void Step()
            {
                using (Workspace.Begin())
                {
                    var loss = model.Loss(x, k, noise);
                    loss.Backward();
                    if (!float.IsFinite(loss.Item())) throw new InvalidOperationException("benchmark loss is not finite");
                }
                adam.Step();
                adam.ZeroGrad();
            }
            Step();
            int gc0 = GC.CollectionCount(0);
            int counted = 0;
            double stepSeconds = Median(secondsPerCase, () => { Step(); counted++; });
            double gcPer100 = 100.0 * (GC.CollectionCount(0) - gc0) / Math.Max(1, counted);
            steps.Add(new StepTiming("seed_model_step", k, stepSeconds * 1e3, batch / stepSeconds, stepSeconds / gemmSeconds, gcPer100));
        }
        return (new GemmTiming(totalFlops / totalGemmSeconds / 1e9, Gemm.BackendDescription), steps);
    }
}
