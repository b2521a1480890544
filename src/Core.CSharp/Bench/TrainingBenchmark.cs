using System.Diagnostics;
using VaeResearch.Compute;
using VaeResearch.Engine;
using VaeResearch.Models;
using VaeResearch.Training;

namespace VaeResearch.Bench;

/// <summary>One timed case of <c>vae bench</c>.</summary>
/// <param name="Name">What was timed: <c>vae_step</c>, <c>evae_step</c> or <c>evae_assignment</c>.</param>
/// <param name="Samples">Importance samples k.</param>
/// <param name="MsPerStep">
/// Median milliseconds per step (forward, backward, Adam); per pass over 60,000 examples for the assignment; per 1,000 test
/// images for L_5000 (timed on 20 and scaled).
/// </param>
/// <param name="SamplesPerSecond">Training examples per second.</param>
/// <param name="GemmBoundRatio">Time divided by the time of the same GEMM calls alone.</param>
/// <param name="Gen0PerHundredSteps">Gen-0 garbage collections per 100 steps.</param>
public sealed record StepTiming(string Name, int Samples, double MsPerStep, double SamplesPerSecond, double GemmBoundRatio, double Gen0PerHundredSteps);

/// <summary>The sgemm throughput measured on the benchmark's GEMM shapes.</summary>
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
/// Times training steps of the real model classes and the GEMMs they perform, in one run, so that each
/// step's cost can be reported as a multiple of its GEMM-bound time on this machine.
/// </summary>
public static class TrainingBenchmark
{
    /// <summary>Batch size of the training-step cases by default (the activity paper's; Burda et al. train at 20).</summary>
    public const int DefaultBatch = 100;

    /// <summary>Training examples in the assignment pass (the MNIST training set).</summary>
    public const int AssignmentExamples = 60_000;

    /// <summary>Distinct batches a timed training step cycles through.</summary>
    // NOTE: on a single repeated batch the model memorizes it within a few hundred steps; its logits then pass
    // +-87, where exp(-|l|) and the IWAE weights give denormal floats, and the step ran 2-2.4x slower (k = 5) than on
    // fresh data. 50 batches of random images (5,000 examples) cannot be memorized in a benchmark's length.
    public const int Batches = 50;

    /// <summary>The seed model: 784-200-200-50, Bernoulli decoder, softplus (Burda et al. 2015), at <paramref name="batch"/>.</summary>
    public static TrainConfig SeedConfig(int k, int batch = DefaultBatch) => new() { Latent = 50, Hidden = [200, 200], Samples = k, Batch = batch };

    /// <summary>The benchmark's eVAE: the seed model with D = 50, K = 25, s = 25.</summary>
    public static TrainConfig EpitomicConfig => SeedConfig(1) with { Model = ModelKind.Evae, EpitomeSize = 25, EpitomeStride = 25 };

    /// <summary>The GEMM calls of a linear layer on <paramref name="rows"/> rows: forward, dW and (if its input needs it) dX.</summary>
    static IEnumerable<GemmShape> LinearShapes(int rows, int inDim, int outDim, bool backward, bool inputGrad)
    {
        yield return new GemmShape(false, true, rows, outDim, inDim);
        if (!backward) yield break;
        yield return new GemmShape(true, false, outDim, inDim, rows);
        if (inputGrad) yield return new GemmShape(false, false, rows, inDim, outDim);
    }

    /// <summary>
    /// The GEMM calls of a VAE training step (or, without <paramref name="backward"/>, a forward pass with
    /// <paramref name="decodes"/> decoder passes): encoder on the batch, decoder on batch * k rows.
    /// </summary>
    public static List<GemmShape> VaeShapes(int input, IReadOnlyList<int> hidden, int latent, int batch, int k, bool backward, int decodes = 1)
    {
        var shapes = new List<GemmShape>();
        // NOTE: the layer on x needs no input gradient (the engine skips it); every other layer's input does.
        foreach (var (layer, i) in VaeShape.Encoder(input, latent, hidden).Select((l, i) => (l, i)))
            shapes.AddRange(LinearShapes(batch, layer.In, layer.Out, backward, i > 0));
        for (int pass = 0; pass < decodes; pass++)
            foreach (var layer in VaeShape.Decoder(input, latent, hidden, DecoderKind.Bernoulli))
                shapes.AddRange(LinearShapes(batch * k, layer.In, layer.Out, backward, true));
        return shapes;
    }

    /// <summary>Median seconds of one pass over <paramref name="shapes"/> on the active kernel, on buffers large enough for all of them.</summary>
    public static double TimeGemms(IReadOnlyList<GemmShape> shapes, double seconds) => Median(seconds, GemmPass(shapes, Gemm.Kernel));

    /// <summary>Median seconds of one pass over <paramref name="shapes"/> on <paramref name="kernel"/>, over about <paramref name="seconds"/>.</summary>
    public static double TimeGemms(IReadOnlyList<GemmShape> shapes, double seconds, GemmKernel kernel) => Median(seconds, GemmPass(shapes, kernel));

    /// <summary>One pass over <paramref name="shapes"/> on <paramref name="kernel"/>, on buffers large enough for all of them.</summary>
    static Action GemmPass(IReadOnlyList<GemmShape> shapes, GemmKernel kernel)
    {
        int size = shapes.Max(s => Math.Max(s.M * s.K, Math.Max(s.K * s.N, s.M * s.N)));
        var a = new float[size];
        var b = new float[size];
        var c = new float[size];
        var rng = new Rng(1);
        rng.FillNormal(a);
        rng.FillNormal(b);
        return () =>
        {
            foreach (var s in shapes)
                Gemm.Sgemm(kernel, s.TransA, s.TransB, s.M, s.N, s.K, 1f, a, s.TransA ? s.M : s.K, b, s.TransB ? s.K : s.N, 1f, c, s.N);
        };
    }

    /// <summary>Median seconds per call of <paramref name="action"/> after a warm-up, over about <paramref name="seconds"/>.</summary>
    public static double Median(double seconds, Action action) => Turns(seconds, [action]).Medians[0];

    /// <summary>
    /// Median seconds per call of each action, timed in turns (a, b, ..., a, b, ...) after a warm-up of each, over about
    /// <paramref name="seconds"/> in all; and, for each action, the median over the turns of its time divided by the first
    /// action's time in the same turn.
    /// </summary>
    // NOTE: on a shared machine the speed drifts by tens of percent within minutes (another tenant, the clock). Times
    // taken in turns see the same drift, so their ratios hold where two medians taken a minute apart do not.
    public static (double[] Medians, double[] Ratios) Turns(double seconds, IReadOnlyList<Action> actions)
    {
        var warm = Stopwatch.StartNew();
        for (int warmups = 0; warmups < 3 || (warm.Elapsed.TotalSeconds < seconds * 0.2 && warmups < 1000); warmups++)
            foreach (var action in actions) action();
        var times = actions.Select(_ => new List<double>()).ToArray();
        var total = Stopwatch.StartNew();
        while (times[0].Count < 5 || (total.Elapsed.TotalSeconds < seconds && times[0].Count < 10_000))
            for (int i = 0; i < actions.Count; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                actions[i]();
                times[i].Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
        var ratios = times.Select(t => MedianOf(t.Select((v, turn) => v / times[0][turn]))).ToArray();
        return (times.Select(MedianOf).ToArray(), ratios);
    }

    /// <summary>The median (the upper one of an even count).</summary>
    public static double MedianOf(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>Random binary images [n, 784] with about 13% ones (MNIST's mean).</summary>
    static float[] BinaryPixels(int n, Rng rng)
    {
        var pixels = new float[n * 784];
        rng.FillUniform(pixels);
        for (int i = 0; i < pixels.Length; i++) pixels[i] = pixels[i] < 0.13f ? 1f : 0f;
        return pixels;
    }

    /// <summary>Random binary images [n, 784] with about 13% ones (MNIST's mean), as a constant tensor.</summary>
    static Tensor BinaryImages(int n, Rng rng) => Tensor.FromArray(BinaryPixels(n, rng), n, 784);

    /// <summary>
    /// Median milliseconds of the seed model's training step at <paramref name="k"/> (forward, backward, Adam; at <paramref name="batch"/>) in
    /// <paramref name="context"/>, over about <paramref name="seconds"/>: the same step on any backend, for side-by-side timings.
    /// </summary>
    public static double StepMilliseconds(IComputeContext context, int k, double seconds, int batch = DefaultBatch) =>
        context.Apply(new TimedStep(k, seconds, batch));

    sealed record TimedStep(int K, double Seconds, int Batch) : IContextFunction<double>
    {
        public double Invoke<T>(ComputeContext<T> context) where T : class, ITensor<T>
        {
            var rng = new Rng(42);
            var batches = BatchesOf(rng.Derive(1), Batch).Select(pixels => context.Upload(pixels, Batch, 784)).ToArray();
            var model = ModelFactory.Build(context, SeedConfig(K, Batch), 784, rng.Derive(2));
            return 1e3 * Median(Seconds, TrainingStep(context, model, batches, Batch, K, rng.Derive(3)));
        }
    }

    /// <summary>The <see cref="Batches"/> batches of random binary images a timed step cycles through, [batch * 784] each.</summary>
    static IEnumerable<float[]> BatchesOf(Rng rng, int batch) => Enumerable.Range(0, Batches).Select(b => BinaryPixels(batch, rng.Derive((ulong)b)));

    /// <summary>
    /// One training step of <paramref name="model"/> (forward, backward, Adam) on the next of <paramref name="batches"/>, on any
    /// backend.
    /// </summary>
    static Action TrainingStep<T>(ComputeContext<T> context, GenerativeModel<T> model, T[] batches, int batch, int k, Rng noise) where T : class, ITensor<T>
    {
        var adam = context.Adam(model.Parameters(), new AdamSettings(1e-3f, Eps: 1e-4f));
        var groups = new int[batch];
        for (int i = 0; i < batch; i++) groups[i] = i % model.Groups;
        int step = 0;
        return () =>
        {
            using (context.Scope())
            {
                var loss = -model.Objective(batches[step++ % batches.Length], groups, k, 1f, noise).Mean();
                loss.Backward();
                if (!float.IsFinite(loss.Item())) throw new InvalidOperationException("benchmark loss is not finite");
            }
            adam.Step();
            adam.ZeroGrad();
        };
    }

    /// <summary>
    /// Times the training step (forward, backward, Adam; at <paramref name="batch"/>) of the VAE at each k and of the eVAE
    /// (D = 50, K = 25, s = 25) at k = 1, L_5000 per 1,000 images, the eVAE's assignment pass over 60,000 examples, and
    /// sgemm on all their GEMM shapes.
    /// </summary>
    public static (GemmTiming Gemm, List<StepTiming> Steps) Run(IReadOnlyList<int> ks, double secondsPerCase = 2.0, bool epitomic = true,
        int batch = DefaultBatch)
    {
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, "the batch must be >= 1");
        var rng = new Rng(42);
        var batches = BatchesOf(rng.Derive(1), batch).Select(pixels => Tensor.FromArray(pixels, batch, 784)).ToArray();
        var steps = new List<StepTiming>();
        double totalFlops = 0, totalGemmSeconds = 0;

        StepTiming Case(string name, int k, List<GemmShape> shapes, int examples, Action step, double msScale = 1)
        {
            step();
            int gc0 = GC.CollectionCount(0), calls = 0;
            // NOTE: the step and its GEMMs alone are timed in turns, so that their ratio holds on a machine whose speed drifts.
            var (medians, ratios) = Turns(secondsPerCase * 1.5, [() => { step(); calls++; }, GemmPass(shapes, Gemm.Kernel)]);
            int gen0 = GC.CollectionCount(0) - gc0;
            double seconds = medians[0], gemmSeconds = medians[1];
            totalFlops += shapes.Sum(s => s.Flops);
            totalGemmSeconds += gemmSeconds;
            double gcPer100 = 100.0 * gen0 / Math.Max(1, calls);
            return new StepTiming(name, k, seconds * 1e3 * msScale, examples / seconds, 1 / ratios[1], gcPer100);
        }

        Action NativeStep(GenerativeModel<Tensor> model, int k) => TrainingStep(NativeContext.Cpu, model, batches, batch, k, rng.Derive(3));

        foreach (int k in ks)
        {
            var config = SeedConfig(k, batch);
            var model = ModelFactory.Build(config, 784, rng.Derive(2));
            steps.Add(Case("vae_step", k, VaeShapes(784, config.Hidden, config.Latent, batch, k, backward: true), batch, NativeStep(model, k)));
        }
        {
            // L_5000 as `vae eval` computes it: 20 binary images, k = 5000 in chunks of at most RowBudget decoder rows.
            const int images = 20, k = 5000;
            var config = SeedConfig(1);
            var model = ModelFactory.Build(config, 784, rng.Derive(6));
            var pixels = BinaryImages(images, rng.Derive(7)).ToArray();
            int perBatch = Evaluation.RowBudget / k;
            var shapes = Enumerable.Repeat(VaeShapes(784, config.Hidden, config.Latent, perBatch, k, backward: false), images / perBatch)
                .SelectMany(s => s).ToList();
            var evalNoise = rng.Derive(8);
            steps.Add(Case("eval_l5000", k, shapes, images,
                () => Evaluation.LogLikelihoodBounds(model, pixels, images, k, evalNoise), msScale: 1000.0 / images));
        }
        if (epitomic)
        {
            var config = EpitomicConfig with { Batch = batch };
            var evae = ModelFactory.Build(config, 784, rng.Derive(4));
            steps.Add(Case("evae_step", 1, VaeShapes(784, config.Hidden, config.Latent, batch, 1, backward: true), batch, NativeStep(evae, 1)));

            // One assignment pass (Algorithm 1, step 3) over the training set, in batches of 500 as the trainer does.
            const int assignBatch = 500;
            var images = BinaryImages(assignBatch, rng.Derive(5));
            int passes = AssignmentExamples / assignBatch;
            var shapes = Enumerable.Repeat(VaeShapes(784, config.Hidden, config.Latent, assignBatch, 1, backward: false, decodes: evae.Groups), passes)
                .SelectMany(s => s).ToList();
            evae.Eval();
            steps.Add(Case("evae_assignment", 1, shapes, AssignmentExamples, () =>
            {
                for (int p = 0; p < passes; p++)
                {
                    using var ws = Workspace.Begin();
                    evae.Assign(images);
                }
            }));
        }
        return (new GemmTiming(totalFlops / totalGemmSeconds / 1e9, Gemm.KernelDescription), steps);
    }
}
