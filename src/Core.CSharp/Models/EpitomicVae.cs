using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>
/// The epitomic VAE (eVAE paper, section 4): one shared VAE over D units whose posterior and decoder input
/// are masked to the K contiguous units of epitome y (eqs. 5 and 6); y has a uniform prior, and q(y|x) is
/// the point estimate y* (section 4.2). Parameters are the shared VAE's (<c>encoder.*</c>, <c>decoder.*</c>).
/// </summary>
/// <remarks>
/// With K = D = s there is one epitome with an all-ones mask and log p(y) = 0: the model is exactly the VAE.
/// </remarks>
public sealed class EpitomicVae<T> : GenerativeModel<T> where T : class, ITensor<T>
{
    readonly Vae<T> net;

    /// <summary>An eVAE whose shared network is <paramref name="network"/> (latent size D = layout.Latent).</summary>
    public EpitomicVae(Vae<T> network, EpitomeLayout layout) : base(network.Context)
    {
        if (network.Latent != layout.Latent)
            throw new ArgumentException($"the network has D = {network.Latent} latent units but the layout has {layout.Latent}");
        net = RegisterModule("", network);
        Layout = layout;
    }

    /// <summary>The epitome layout (D, K, s).</summary>
    public EpitomeLayout Layout { get; }

    /// <summary>The shared VAE.</summary>
    public Vae<T> Network => net;

    /// <inheritdoc/>
    public override int Input => net.Input;

    /// <inheritdoc/>
    public override int Latent => net.Latent;

    /// <inheritdoc/>
    public override int Groups => Layout.Count;

    /// <summary>log p(y) = -log(number of epitomes).</summary>
    public float LogPriorY => -MathF.Log(Layout.Count);

    /// <summary>
    /// The bound for the assigned epitomes, [n]: the masked VAE bound (<paramref name="bound"/>: the ELBO or L_k) plus log p(y*).
    /// With q(y|x) a point mass its entropy is 0, so this is a valid lower bound on log p(x) at beta = 1.
    /// </summary>
    public override T TrainingObjective(T x, ReadOnlySpan<int> groups, TrainingBound bound, float beta, Rng rng)
    {
        var value = bound.Of(net, x, rng, beta, Layout.Masks(Context, groups));
        return Layout.Count == 1 ? value : value + LogPriorY;
    }

    /// <summary>
    /// log p(x) estimated by marginalizing y: log sum_y p(y) (1/k) sum_i w_{y,i}, with k samples from
    /// q(z|x, y) for every epitome y, [n].
    /// </summary>
    /// <remarks>
    /// For each y, (1/k) sum_i w_{y,i} is an unbiased estimate of p(x|y), so the sum over y is an unbiased
    /// estimate of p(x) and, by Jensen's inequality, its log is a lower bound on log p(x) in expectation.
    /// It equals logsumexp_y(L_k(x|y)) + log p(y) and is at least the bound at the best y.
    /// </remarks>
    public override T LogLikelihoodBound(T x, int k, Rng rng) =>
        EpitomeGroups.Marginalize(Context, Layout.Count, y => GroupBound(x, EpitomeGroups.Same(x.Dim(0), y), k, rng));

    /// <summary>L_k(x | y_i) = log (1/k) sum_i w_i with z_i ~ q(z|x, y_i) under the mask m_(y_i), [n] (no log p(y)).</summary>
    public override T GroupBound(T x, ReadOnlySpan<int> groups, int k, Rng rng) =>
        Bounds.ImportanceWeighted(net, x, k, rng, 1f, Layout.Masks(Context, groups));

    /// <summary>
    /// Scores of every epitome, [G][n]: log p(x | m_y z) estimated at z = m_y mu (plug-in) or by the mean over
    /// <paramref name="samples"/> draws from q(z|x, y), minus sum_d KL_d under the masked posterior; i.e. -C_evae
    /// (eq. 7) up to log p(y). The encoder runs once for all epitomes.
    /// </summary>
    public override float[][] AssignmentScores(T x, int samples = 0, Rng? rng = null)
    {
        using var noGrad = Context.NoGrad();
        int n = x.Dim(0);
        var q = net.Encoder.Forward(x);
        var scores = new float[Layout.Count][];
        for (int y = 0; y < scores.Length; y++)
        {
            var mask = Layout.Masks(Context, EpitomeGroups.Same(n, y));
            // NOTE: the draws of a masked unit are N(0, 1); the decoder must read m_y z (for the plug-in m_y mu this
            // multiplies by the mask a second time, which leaves the values bit for bit unchanged).
            scores[y] = Bounds.AssignmentScore(Context, Bounds.Masked(q, mask), z => net.Decoder.LogLikelihood(z * mask, x), samples, rng).ToArray();
        }
        return scores;
    }

    /// <inheritdoc/>
    public override Posterior<T> Encode(T x, ReadOnlySpan<int> groups) => Bounds.Masked(net.Encoder.Forward(x), Layout.Masks(Context, groups));

    /// <inheritdoc/>
    public override T DecodeMean(T z, ReadOnlySpan<int> groups) => net.Decoder.Mean(z * Layout.Masks(Context, groups));
}

/// <summary>Helpers of the models with groups (eVAE, mVAE).</summary>
public static class EpitomeGroups
{
    /// <summary>n copies of group <paramref name="y"/>.</summary>
    public static int[] Same(int n, int y)
    {
        var groups = new int[n];
        Array.Fill(groups, y);
        return groups;
    }

    /// <summary>log sum_y exp(bound_y) - log(groups), elementwise over the examples (no gradient).</summary>
    public static T Marginalize<T>(ComputeContext<T> context, int groups, Func<int, T> boundForGroup) where T : class, ITensor<T>
    {
        double[]? acc = null;
        for (int y = 0; y < groups; y++)
        {
            var b = boundForGroup(y).ToArray();
            acc ??= Enumerable.Repeat(double.NegativeInfinity, b.Length).ToArray();
            for (int i = 0; i < b.Length; i++) acc[i] = LogSpace.Add(acc[i], b[i]);
        }
        var result = new float[acc!.Length];
        for (int i = 0; i < acc.Length; i++) result[i] = (float)(acc[i] - Math.Log(groups));
        return context.Upload(result, result.Length);
    }
}
