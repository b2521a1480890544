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
public sealed class EpitomicVae : GenerativeModel
{
    readonly Vae net;

    /// <summary>An eVAE whose shared network is <paramref name="network"/> (latent size D = layout.Latent).</summary>
    public EpitomicVae(Vae network, EpitomeLayout layout)
    {
        if (network.Latent != layout.Latent)
            throw new ArgumentException($"the network has D = {network.Latent} latent units but the layout has {layout.Latent}");
        net = RegisterModule("", network);
        Layout = layout;
    }

    /// <summary>The epitome layout (D, K, s).</summary>
    public EpitomeLayout Layout { get; }

    /// <summary>The shared VAE.</summary>
    public Vae Network => net;

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
    public override Tensor TrainingObjective(Tensor x, ReadOnlySpan<int> groups, TrainingBound bound, float beta, Rng rng)
    {
        var value = bound.Of(net, x, rng, beta, Layout.Masks(groups));
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
    public override Tensor LogLikelihoodBound(Tensor x, int k, Rng rng) =>
        MarginalizeGroups(Layout.Count, y =>
        {
            var groups = new int[x.Dim(0)];
            Array.Fill(groups, y);
            return Bounds.ImportanceWeighted(net, x, k, rng, 1f, Layout.Masks(groups));
        });

    /// <summary>log sum_y exp(bound_y) - log(groups), elementwise over the examples (no gradient).</summary>
    internal static Tensor MarginalizeGroups(int groups, Func<int, Tensor> boundForGroup)
    {
        double[]? acc = null;
        for (int y = 0; y < groups; y++)
        {
            var b = boundForGroup(y).Data;
            acc ??= Enumerable.Repeat(double.NegativeInfinity, b.Length).ToArray();
            for (int i = 0; i < b.Length; i++) acc[i] = LogSpace.Add(acc[i], b[i]);
        }
        var result = Tensor.Empty(acc!.Length);
        var r = result.Data;
        for (int i = 0; i < acc.Length; i++) r[i] = (float)(acc[i] - Math.Log(groups));
        return result;
    }

    /// <summary>
    /// y* per example: the epitome with the highest deterministic score log p(x | m_y mu) - sum_d KL_d under the
    /// masked posterior, i.e. the cost C_evae (eq. 7) with the reconstruction evaluated at the posterior mean.
    /// Evaluated without gradients in the current mode.
    /// </summary>
    public override int[] Assign(Tensor x)
    {
        using var noGrad = Autograd.NoGrad();
        int n = x.Dim(0);
        var q = net.Encoder.Forward(x);
        return ArgMaxOverGroups(n, Layout.Count, y =>
        {
            var groups = new int[n];
            Array.Fill(groups, y);
            var mask = Layout.Masks(groups);
            var qm = Bounds.Masked(q, mask);
            var logPx = net.Decoder.LogLikelihood(qm.Mu.Reshape(1, n, Latent), x).Reshape(n);
            return (logPx - Bounds.KlPerUnit(qm).Sum(-1)).Data.ToArray();
        });
    }

    /// <summary>For each example, the group whose score is highest (ties to the lower index).</summary>
    internal static int[] ArgMaxOverGroups(int n, int groups, Func<int, float[]> scores)
    {
        var best = new int[n];
        var bestScore = new float[n];
        Array.Fill(bestScore, float.NegativeInfinity);
        for (int y = 0; y < groups; y++)
        {
            var s = scores(y);
            for (int i = 0; i < n; i++)
                if (s[i] > bestScore[i])
                {
                    bestScore[i] = s[i];
                    best[i] = y;
                }
        }
        return best;
    }

    /// <inheritdoc/>
    public override Posterior Encode(Tensor x, ReadOnlySpan<int> groups) => Bounds.Masked(net.Encoder.Forward(x), Layout.Masks(groups));

    /// <inheritdoc/>
    public override Tensor DecodeMean(Tensor z, ReadOnlySpan<int> groups) => net.Decoder.Mean(z * Layout.Masks(groups));
}
