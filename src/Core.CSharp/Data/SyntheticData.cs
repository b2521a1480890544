using VaeResearch.Engine;

namespace VaeResearch.Data;

/// <summary>
/// A synthetic data set with a known latent dimension: z ~ N(0, I_d), x ~ Bernoulli(sigmoid(f(z))),
/// where f is a fixed random MLP d -> 200 tanh -> 784, all of it deterministic from a seed.
/// </summary>
/// <remarks>
/// <para>The weights are normal with variance 1/fan_in (so the hidden pre-activations have unit
/// variance whatever d is), the output weights are scaled by <see cref="OutputGain"/> so that the
/// logits have a standard deviation of about 2 and the pixels depend clearly on z; the hidden
/// biases are N(0, 1/4), the output biases 0. The images are 28 x 28 so every MNIST tool applies.</para>
/// <para>The stored grey levels are the Bernoulli means sigmoid(f(z)): <see cref="Binarization.Fixed"/>
/// gives one sample x ~ Bernoulli(sigmoid(f(z))) per example, <see cref="Binarization.Dynamic"/> a
/// fresh draw from the same z every epoch. The true z are kept in <see cref="Dataset.Latents"/> and
/// d in <see cref="Dataset.TrueLatentDimension"/>.</para>
/// <para>The seed is recorded in the data set's name, <c>synthetic-d{d}-seed{seed}</c>. The label of
/// an example is the index of its largest |z_i| (in [0, d)), a class to colour latent scatter plots by.</para>
/// <para>Determinism: f is evaluated in double precision in a fixed order per example, so the set
/// is the same for any thread count or GEMM backend.</para>
/// </remarks>
public static class SyntheticData
{
    /// <summary>Data set name prefix (the CLI's <c>--dataset synthetic</c>).</summary>
    public const string Name = "synthetic";

    /// <summary>Default true latent dimension d.</summary>
    public const int DefaultLatentDimension = 5;

    /// <summary>Default number of training examples.</summary>
    public const int DefaultTrainCount = 10_000;

    /// <summary>Default number of test examples.</summary>
    public const int DefaultTestCount = 2_000;

    /// <summary>Hidden units of the generating MLP.</summary>
    public const int HiddenUnits = 200;

    /// <summary>Output scale of the generating MLP's last layer.</summary>
    public const double OutputGain = 3.0;

    /// <summary>Standard deviation of the hidden biases.</summary>
    public const double HiddenBiasScale = 0.5;

    /// <summary>
    /// Generates the data set for <paramref name="seed"/>: train [trainCount, 784] (minus
    /// <paramref name="validation"/> examples carved from its end), test [testCount, 784].
    /// </summary>
    /// <exception cref="VaeResearchException">A size is out of range.</exception>
    public static DataSplits Generate(ulong seed = 0, int latentDimension = DefaultLatentDimension,
        int trainCount = DefaultTrainCount, int testCount = DefaultTestCount, int validation = 0)
    {
        if (latentDimension < 1 || latentDimension > 10_000)
            throw new VaeResearchException($"the synthetic latent dimension must be between 1 and 10000, got {latentDimension}");
        if (trainCount < 1 || testCount < 1 || (long)(trainCount + (long)testCount) * Mnist.Pixels > Array.MaxLength)
            throw new VaeResearchException($"synthetic data: train and test sizes must be positive and fit in memory, got {trainCount} and {testCount}");
        DataSplits.CheckValidation(validation, trainCount);

        var generator = new Generator(seed, latentDimension);
        string name = $"{Name}-d{latentDimension}-seed{seed}";
        var train = generator.Sample(name, SplitKind.Train, trainCount, new Rng(seed, DataStreams.Synthetic(1)));
        var test = generator.Sample(name, SplitKind.Test, testCount, new Rng(seed, DataStreams.Synthetic(2)));
        return DataSplits.Carve(train, test, validation);
    }

    /// <summary>
    /// The Bernoulli means sigmoid(f(z)) of the generator for <paramref name="seed"/> and d =
    /// <paramref name="latents"/>.Length / count, row-major [count, 784], for latents you choose
    /// (e.g. to draw the true manifold).
    /// </summary>
    public static float[] Decode(ulong seed, int latentDimension, ReadOnlySpan<float> latents)
    {
        if (latentDimension < 1 || latents.Length % latentDimension != 0)
            throw new ArgumentException($"latents hold {latents.Length} values, not a multiple of d = {latentDimension}", nameof(latents));
        return new Generator(seed, latentDimension).Means(latents.ToArray(), latents.Length / latentDimension);
    }

    sealed class Generator
    {
        readonly int d;
        readonly double[] w1, b1, w2; // w1 [200, d], b1 [200], w2 [784, 200]

        public Generator(ulong seed, int d)
        {
            this.d = d;
            var rng = new Rng(seed, DataStreams.Synthetic(0));
            w1 = Normal(rng, HiddenUnits * d, 1.0 / Math.Sqrt(d));
            b1 = Normal(rng, HiddenUnits, HiddenBiasScale);
            w2 = Normal(rng, Mnist.Pixels * HiddenUnits, OutputGain / Math.Sqrt(HiddenUnits));
        }

        static double[] Normal(Rng rng, int count, double scale)
        {
            var values = new float[count];
            rng.FillNormal(values);
            return values.Select(v => v * scale).ToArray();
        }

        public Dataset Sample(string name, SplitKind split, int count, Rng rng)
        {
            var z = new float[count * d];
            rng.FillNormal(z);
            var labels = new int[count];
            for (int i = 0; i < count; i++)
            {
                int best = 0;
                for (int j = 1; j < d; j++)
                    if (Math.Abs(z[i * d + j]) > Math.Abs(z[i * d + best])) best = j;
                labels[i] = best;
            }
            return new Dataset(name, split, Means(z, count), labels, Mnist.Rows, Mnist.Columns, d, z, d);
        }

        public float[] Means(float[] z, int count)
        {
            var x = new float[count * Mnist.Pixels];
            Parallelism.For(count, 16, (from, to) =>
            {
                var h = new double[HiddenUnits];
                for (int i = from; i < to; i++)
                {
                    for (int u = 0; u < HiddenUnits; u++)
                    {
                        double s = b1[u];
                        for (int j = 0; j < d; j++) s += w1[u * d + j] * z[i * d + j];
                        h[u] = Math.Tanh(s);
                    }
                    for (int p = 0; p < Mnist.Pixels; p++)
                    {
                        var row = w2.AsSpan(p * HiddenUnits, HiddenUnits);
                        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                        for (int u = 0; u < HiddenUnits; u += 4)
                        {
                            s0 += row[u] * h[u];
                            s1 += row[u + 1] * h[u + 1];
                            s2 += row[u + 2] * h[u + 2];
                            s3 += row[u + 3] * h[u + 3];
                        }
                        double logit = (s0 + s1) + (s2 + s3);
                        x[i * Mnist.Pixels + p] = (float)(1.0 / (1.0 + Math.Exp(-logit)));
                    }
                }
            });
            return x;
        }
    }
}
