using VaeResearch.Compute;
using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>A mean over examples with its standard error.</summary>
/// <param name="Mean">Mean of the per-example values.</param>
/// <param name="StandardError">Sample standard deviation / sqrt(n) (0 when n &lt; 2).</param>
/// <param name="N">Number of examples.</param>
public sealed record Estimate(double Mean, double StandardError, int N)
{
    /// <summary>The mean and standard error of <paramref name="values"/>.</summary>
    public static Estimate Of(IReadOnlyList<double> values)
    {
        int n = values.Count;
        if (n == 0) return new Estimate(double.NaN, double.NaN, 0);
        double mean = values.Average();
        double ss = values.Sum(v => (v - mean) * (v - mean));
        return new Estimate(mean, n < 2 ? 0 : Math.Sqrt(ss / (n - 1) / n), n);
    }
}

/// <summary>Per-unit statistics of the posterior over a data set.</summary>
/// <param name="Activity">A_u = Cov_x(E_q[u]) for each unit: the population variance (divided by n) over the data of the posterior mean.</param>
/// <param name="Kl">Mean over the data of KL(q(z_u|x) || N(0, 1)) for each unit.</param>
public sealed record UnitStatistics(double[] Activity, double[] Kl)
{
    /// <summary>The papers' default activity threshold (Burda et al. 2015).</summary>
    public const double DefaultThreshold = 0.01;

    /// <summary>Units whose activity exceeds <paramref name="threshold"/>.</summary>
    public int ActiveUnits(double threshold = DefaultThreshold) => Activity.Count(a => a > threshold);

    /// <summary>Sum over units of the mean KL.</summary>
    public double TotalKl => Kl.Sum();
}

/// <summary>A model's bound and unit statistics on a data set, from one pass.</summary>
/// <param name="Bound">Mean of the training objective with beta = 1 (see <see cref="GenerativeModel{T}.TrainingObjective"/>).</param>
/// <param name="Units">Activity and KL per unit.</param>
public sealed record DataEvaluation(double Bound, UnitStatistics Units);

/// <summary>How <c>vae eval</c> spends its importance samples on a model with G groups (eVAE, mVAE).</summary>
public enum EvaluationBudget
{
    /// <summary>k samples for every epitome (k G in all): log sum_y p(y) (1/k) sum_i w_(y,i).</summary>
    PerEpitome,
    /// <summary>
    /// k samples in all, k_y per epitome (<see cref="Evaluation.Allocation"/>): the stratified estimator
    /// log sum_(y: k_y &gt; 0) p(y) (1/k_y) sum_i w_(y,i).
    /// </summary>
    Total,
    /// <summary>k samples under the plug-in y* only: log p(y*) + L_k(x | y*).</summary>
    Ystar,
}

/// <summary>
/// Evaluation of a trained model: bounds on log p(x) and latent activity, batched with bounded memory, on the model's
/// backend (each model's <see cref="IGenerativeModel.Evaluator"/> does the work).
/// </summary>
public static class Evaluation
{
    /// <summary>Decoder rows (importance samples times examples) per forward pass: bounds memory for any k.</summary>
    public const int RowBudget = 20_000;

    /// <summary>
    /// Per-example L_k on <paramref name="count"/> images [count, N] with beta = 1, in evaluation mode
    /// and without gradients. Examples are processed in batches and the k samples in chunks; chunk bounds
    /// combine exactly as L_k = log sum_c (k_c / k) exp(L_{k_c}). Models with groups marginalize y with k samples per group.
    /// </summary>
    public static double[] LogLikelihoodBounds(IGenerativeModel model, float[] images, int count, int k, Rng rng, Action<int>? progress = null) =>
        model.Evaluator.LogLikelihoodBounds(images, count, k, EvaluationBudget.PerEpitome, rng, progress);

    /// <summary>
    /// Per-example bounds on log p(x) with the importance samples spent as <paramref name="budget"/> says, [count].
    /// <see cref="EvaluationBudget.PerEpitome"/>, and every budget for a model without groups, is
    /// <see cref="LogLikelihoodBounds(IGenerativeModel, float[], int, int, Rng, Action{int})"/>.
    /// </summary>
    /// <remarks>
    /// <see cref="EvaluationBudget.Total"/>: each (1/k_y) sum_i w_(y,i) is an unbiased estimate of p(x|y), so the sum
    /// over the sampled y is an unbiased estimate of sum_(y: k_y &gt; 0) p(y) p(x|y) &lt;= p(x), and its log a lower bound
    /// on log p(x) in expectation (Jensen); with k &gt;= G every epitome is sampled and the bound is tight as k grows.
    /// <see cref="EvaluationBudget.Ystar"/>: E[L_k(x|y*)] &lt;= log p(x|y*), and p(y*) p(x|y*) &lt;= sum_y p(y) p(x|y) = p(x),
    /// so it bounds log p(x) in expectation, and also log p(y*) + log p(x|y*) (the joint at the assigned y*); with the
    /// same draws for y* it never exceeds the marginal estimate, whose sum has it as one term. It is the training
    /// objective's bound at y* with beta = 1, but with L_k for every k (no analytic KL).
    /// Work is chunked as in the per-epitome version: chunk sums combine exactly in log space.
    /// </remarks>
    public static double[] LogLikelihoodBounds(IGenerativeModel model, float[] images, int count, int k, EvaluationBudget budget, Rng rng,
        Action<int>? progress = null) =>
        model.Evaluator.LogLikelihoodBounds(images, count, k, budget, rng, progress);

    /// <summary>
    /// k_y, the samples of epitome y when k are shared among <paramref name="groups"/>: floor(k / G) each, and one
    /// more for y &lt; k mod G; they sum to k. With k &lt; G the epitomes y &gt;= k get none.
    /// </summary>
    public static int[] Allocation(int k, int groups)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(groups);
        return Enumerable.Range(0, groups).Select(y => k / groups + (y < k % groups ? 1 : 0)).ToArray();
    }

    /// <summary>
    /// Importance samples per forward pass when <paramref name="k"/> are drawn under <paramref name="budget"/>: the
    /// marginal over every group (per epitome, or a model without groups) passes all groups' samples at once.
    /// </summary>
    public static int Chunk(EvaluationBudget budget, int k, int groups) =>
        Math.Max(1, Math.Min(k, budget == EvaluationBudget.PerEpitome || groups == 1 ? RowBudget / groups : RowBudget));

    /// <summary>Importance samples drawn per image by <paramref name="budget"/>: k G per epitome, else k.</summary>
    public static long SamplesDrawn(EvaluationBudget budget, int k, int groups) =>
        budget == EvaluationBudget.PerEpitome ? (long)k * groups : k;

    /// <summary>
    /// One evaluation-mode pass over <paramref name="count"/> images: the mean objective with beta = 1
    /// (k as in training), the activity Cov_x(E_q[u]) and the mean KL of every unit. Models with groups
    /// use each example's best group y*.
    /// </summary>
    public static DataEvaluation Evaluate(IGenerativeModel model, float[] images, int count, int k, Rng rng, int batch = 100) =>
        Evaluate(model, images, count, new TrainingBound(k), rng, batch);

    /// <summary>
    /// <see cref="Evaluate(IGenerativeModel, float[], int, int, Rng, int)"/> with the run's training bound (k, objective and
    /// KL estimator as in training) for the mean objective.
    /// </summary>
    public static DataEvaluation Evaluate(IGenerativeModel model, float[] images, int count, TrainingBound bound, Rng rng, int batch = 100) =>
        model.Evaluator.Evaluate(images, count, bound, rng, batch);

    /// <summary>
    /// The activity Cov_x(E_q[u]) and the mean KL of every unit over <paramref name="count"/> images [count, N]
    /// (the unit statistics of <see cref="Evaluate(IGenerativeModel, float[], int, TrainingBound, Rng, int)"/>, without the bound), in evaluation mode; models with groups
    /// use each example's best group y*.
    /// </summary>
    public static UnitStatistics Units(IGenerativeModel model, float[] images, int count, int batch = 100) =>
        model.Evaluator.Units(images, count, batch);

    /// <summary>The unit statistics from posterior means [count, D] and per-unit KL sums.</summary>
    internal static UnitStatistics UnitsOf(float[] means, double[] klSum, int count, int latent) =>
        new(Activity(means, count, latent), klSum.Select(s => s / count).ToArray());

    /// <summary>
    /// E_q[z|x] for <paramref name="count"/> images [count, N], row-major [count, D]; models with groups use each
    /// image's best group y* (units outside it are 0).
    /// </summary>
    public static float[] PosteriorMeans(IGenerativeModel model, float[] images, int count, int batch = 500) =>
        model.Evaluator.PosteriorMeans(images, count, batch);

    /// <summary>
    /// Reconstructions E[x | z = E_q[z|x]] of <paramref name="count"/> images, [count, N]; models with groups
    /// decode through each image's best group y*.
    /// </summary>
    public static float[] Reconstructions(IGenerativeModel model, float[] images, int count, int batch = 500) =>
        model.Evaluator.Reconstructions(images, count, batch);

    /// <summary>Decoder means of <paramref name="n"/> draws y ~ uniform, z ~ N(0, I) from <paramref name="rng"/>, [n, N].</summary>
    public static float[] Samples(IGenerativeModel model, int n, Rng rng) => model.Evaluator.Samples(n, rng);

    /// <summary>
    /// Per-unit population variance (divided by n) of posterior means [n, D], by two passes in double.
    /// </summary>
    public static double[] Activity(ReadOnlySpan<float> means, int n, int latent)
    {
        var mean = new double[latent];
        for (int i = 0; i < n; i++)
            for (int u = 0; u < latent; u++) mean[u] += means[i * latent + u];
        for (int u = 0; u < latent; u++) mean[u] /= Math.Max(1, n);
        var variance = new double[latent];
        for (int i = 0; i < n; i++)
            for (int u = 0; u < latent; u++)
            {
                double c = means[i * latent + u] - mean[u];
                variance[u] += c * c;
            }
        for (int u = 0; u < latent; u++) variance[u] /= Math.Max(1, n);
        return variance;
    }
}
