using VaeResearch.Compute;
using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>Writes images [start, start + count) of a data set, row-major, into <paramref name="destination"/>.</summary>
public delegate void FillRows(int start, int count, Span<float> destination);

/// <summary>Batched evaluation of a model on CPU images, whatever its backend (see <see cref="Evaluation"/> for each method).</summary>
public interface IModelEvaluator
{
    /// <summary>Per-example L_k with the samples spent as <paramref name="budget"/> says.</summary>
    double[] LogLikelihoodBounds(float[] images, int count, int k, EvaluationBudget budget, Rng rng, Action<int>? progress);

    /// <summary>The mean training bound (beta = 1) and the unit statistics.</summary>
    DataEvaluation Evaluate(float[] images, int count, TrainingBound bound, Rng rng, int batch);

    /// <summary>The unit statistics.</summary>
    UnitStatistics Units(float[] images, int count, int batch);

    /// <summary>E_q[z|x] under each image's y*, [count, D].</summary>
    float[] PosteriorMeans(float[] images, int count, int batch);

    /// <summary>E[x | z = E_q[z|x]] under each image's y*, [count, N].</summary>
    float[] Reconstructions(float[] images, int count, int batch);

    /// <summary>
    /// Each image's best group y* in the current mode (Algorithm 1, step 3), [count], for images that
    /// <paramref name="images"/> writes batch by batch.
    /// </summary>
    int[] Assign(int count, FillRows images, int samples, Rng? rng, int batch);

    /// <summary>Decoder means of <paramref name="n"/> draws from the prior (y uniform), [n, N].</summary>
    float[] Samples(int n, Rng rng);

    /// <summary>Decoder means E[x|z] for latents <paramref name="z"/> [n, D] under <paramref name="groups"/> [n], [n, N].</summary>
    float[] DecodeMeans(float[] z, int[] groups);
}

/// <summary>
/// The batched evaluation of one model, written once for every backend: the images stay on the CPU, each batch is
/// uploaded inside its own scope, and only per-example results come back.
/// </summary>
/// <typeparam name="T">The backend's tensor type.</typeparam>
public sealed class ModelEvaluator<T>(GenerativeModel<T> model) : IModelEvaluator where T : class, ITensor<T>
{
    readonly ComputeContext<T> context = model.Context;

    /// <inheritdoc/>
    public double[] LogLikelihoodBounds(float[] images, int count, int k, EvaluationBudget budget, Rng rng, Action<int>? progress)
    {
        if (k < 1) throw new ConfigException("k", $"must be >= 1, got {k}");
        return budget == EvaluationBudget.PerEpitome || model.Groups == 1
            ? Marginal(images, count, k, rng, progress)
            : Stratified(images, count, k, budget, rng, progress);
    }

    /// <summary>
    /// Per-example L_k (marginalizing y over every group with k samples each). Examples are processed in batches and the
    /// k samples in chunks; chunk bounds combine exactly as L_k = log sum_c (k_c / k) exp(L_{k_c}).
    /// </summary>
    double[] Marginal(float[] images, int count, int k, Rng rng, Action<int>? progress)
    {
        int chunk = Evaluation.Chunk(EvaluationBudget.PerEpitome, k, model.Groups);
        int batch = Math.Max(1, Math.Min(count, Evaluation.RowBudget / (chunk * model.Groups)));
        var result = new double[count];
        ForEachBatch(images, count, batch, (x, start, n) =>
        {
            var acc = new double[n];
            Array.Fill(acc, double.NegativeInfinity);
            for (int done = 0; done < k; done += chunk)
            {
                int kc = Math.Min(chunk, k - done);
                using var scope = context.Scope();
                var bound = model.LogLikelihoodBound(x, kc, rng).ToArray();
                for (int i = 0; i < n; i++) acc[i] = LogSpace.Add(acc[i], bound[i] + Math.Log((double)kc / k));
            }
            acc.CopyTo(result, start);
            progress?.Invoke(start + n);
        });
        return result;
    }

    /// <summary>The <see cref="EvaluationBudget.Total"/> and <see cref="EvaluationBudget.Ystar"/> estimators (see <see cref="Evaluation.LogLikelihoodBounds(IGenerativeModel, float[], int, int, EvaluationBudget, Rng, Action{int})"/>).</summary>
    double[] Stratified(float[] images, int count, int k, EvaluationBudget budget, Rng rng, Action<int>? progress)
    {
        int groups = model.Groups;
        var allocation = Evaluation.Allocation(k, groups);
        double logPriorY = -Math.Log(groups);
        int chunk = Evaluation.Chunk(budget, k, groups);
        int batch = Math.Max(1, Math.Min(count, Evaluation.RowBudget / chunk));
        var result = new double[count];
        ForEachBatch(images, count, batch, (x, start, n) =>
        {
            // The strata: (each example's group, samples drawn under it).
            var strata = budget == EvaluationBudget.Ystar
                ? [(model.Assign(x), k)]
                : Enumerable.Range(0, groups).Where(y => allocation[y] > 0).Select(y => (EpitomeGroups.Same(n, y), allocation[y])).ToList();
            var acc = new double[n];
            Array.Fill(acc, double.NegativeInfinity);
            var sum = new double[n];
            foreach (var (members, samples) in strata)
            {
                Array.Fill(sum, double.NegativeInfinity);
                for (int done = 0; done < samples; done += chunk)
                {
                    int kc = Math.Min(chunk, samples - done);
                    using var scope = context.Scope();
                    var bound = model.GroupBound(x, members, kc, rng).ToArray();
                    // NOTE: L_kc + log kc = log sum_i w_i of the chunk, so the chunks add up in log space exactly.
                    for (int i = 0; i < n; i++) sum[i] = LogSpace.Add(sum[i], bound[i] + Math.Log(kc));
                }
                for (int i = 0; i < n; i++) acc[i] = LogSpace.Add(acc[i], logPriorY + sum[i] - Math.Log(samples));
            }
            acc.CopyTo(result, start);
            progress?.Invoke(start + n);
        });
        return result;
    }

    /// <inheritdoc/>
    public DataEvaluation Evaluate(float[] images, int count, TrainingBound bound, Rng rng, int batch)
    {
        int latent = model.Latent;
        var means = new float[(long)count * latent];
        var klSum = new double[latent];
        double boundSum = 0;
        ForEachBatch(images, count, batch, (x, start, n) =>
        {
            var groups = model.Assign(x);
            foreach (float b in model.TrainingObjective(x, groups, bound, 1f, rng).ToArray()) boundSum += b;
            AddUnits(model.Encode(x, groups), start, n, means, klSum);
        });
        return new DataEvaluation(boundSum / count, Evaluation.UnitsOf(means, klSum, count, latent));
    }

    /// <inheritdoc/>
    public UnitStatistics Units(float[] images, int count, int batch)
    {
        int latent = model.Latent;
        var means = new float[(long)count * latent];
        var klSum = new double[latent];
        ForEachBatch(images, count, batch, (x, start, n) => AddUnits(model.Encode(x, model.Assign(x)), start, n, means, klSum));
        return Evaluation.UnitsOf(means, klSum, count, latent);
    }

    /// <summary>Stores a batch's posterior means at rows [start, start + n) of <paramref name="means"/> and adds its per-unit KL to <paramref name="klSum"/>.</summary>
    static void AddUnits(Posterior<T> q, int start, int n, float[] means, double[] klSum)
    {
        int latent = klSum.Length;
        q.Mu.CopyTo(means.AsSpan(start * latent, n * latent));
        var kl = Bounds.KlPerUnit(q).ToArray();
        for (int i = 0; i < n; i++)
            for (int u = 0; u < latent; u++) klSum[u] += kl[i * latent + u];
    }

    /// <inheritdoc/>
    public float[] PosteriorMeans(float[] images, int count, int batch)
    {
        int latent = model.Latent;
        var result = new float[(long)count * latent];
        ForEachBatch(images, count, batch, (x, start, n) =>
            model.Encode(x, model.Assign(x)).Mu.CopyTo(result.AsSpan(start * latent, n * latent)));
        return result;
    }

    /// <inheritdoc/>
    public float[] Reconstructions(float[] images, int count, int batch)
    {
        int dim = model.Input;
        var result = new float[(long)count * dim];
        ForEachBatch(images, count, batch, (x, start, n) =>
        {
            var groups = model.Assign(x);
            model.DecodeMean(model.Encode(x, groups).Mu, groups).CopyTo(result.AsSpan(start * dim, n * dim));
        });
        return result;
    }

    /// <inheritdoc/>
    public int[] Assign(int count, FillRows images, int samples, Rng? rng, int batch)
    {
        var result = new int[count];
        using var noGrad = context.NoGrad();
        for (int start = 0; start < count; start += batch)
        {
            int n = Math.Min(batch, count - start);
            using var scope = context.Scope();
            var x = context.Fill(values => images(start, n, values), n, model.Input);
            model.Assign(x, samples, rng).CopyTo(result, start);
        }
        return result;
    }

    /// <inheritdoc/>
    public float[] Samples(int n, Rng rng)
    {
        using var noGrad = context.NoGrad();
        using var scope = context.Scope();
        return model.Sample(n, rng).ToArray();
    }

    /// <inheritdoc/>
    public float[] DecodeMeans(float[] z, int[] groups)
    {
        int n = groups.Length;
        if (z.Length != n * model.Latent)
            throw new ArgumentException($"{z.Length} latent values for {n} groups of a model with D = {model.Latent}", nameof(z));
        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            using var noGrad = context.NoGrad();
            using var scope = context.Scope();
            return model.DecodeMean(context.Upload(z, n, model.Latent), groups).ToArray();
        }
        finally
        {
            model.Train(wasTraining);
        }
    }

    T Upload(float[] images, int start, int n)
    {
        int dim = model.Input;
        return context.Upload(images.AsSpan(start * dim, n * dim), n, dim);
    }

    /// <summary>
    /// Runs <paramref name="body"/>(x, start, n) on consecutive batches x [n, N] of the images, in evaluation mode
    /// without gradients, each batch in its own scope; the model's mode is restored afterwards.
    /// </summary>
    void ForEachBatch(float[] images, int count, int batch, Action<T, int, int> body)
    {
        int dim = model.Input;
        if (images.Length < (long)count * dim)
            throw new ArgumentException($"{images.Length} values cannot hold {count} images of {dim} values");
        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            using var noGrad = context.NoGrad();
            for (int start = 0; start < count; start += batch)
            {
                int n = Math.Min(batch, count - start);
                using var scope = context.Scope();
                body(Upload(images, start, n), start, n);
            }
        }
        finally
        {
            model.Train(wasTraining);
        }
    }
}
