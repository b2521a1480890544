using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>Sizes of the mixture VAE's components (the parameter-matched widths).</summary>
public static class MixtureVae
{
    /// <summary>
    /// Hidden widths for each component so that the mixture's parameter count is as close as possible to
    /// <paramref name="target"/> (the eVAE's): all widths scale with the first, keeping their ratios.
    /// </summary>
    public static int[] MatchedHidden(int target, EpitomeLayout layout, int input, IReadOnlyList<int> hidden, DecoderKind decoder, bool batchNorm)
    {
        int[] best = [.. hidden];
        long bestGap = long.MaxValue;
        for (int w = 1; w <= hidden[0] * 4; w++)
        {
            var widths = hidden.Select(h => Math.Max(1, (int)Math.Round((double)h * w / hidden[0]))).ToArray();
            long gap = Math.Abs(layout.Count * VaeShape.ParameterCount(input, layout.Size, widths, decoder, batchNorm) - (long)target);
            if (gap < bestGap)
            {
                bestGap = gap;
                best = widths;
            }
        }
        return best;
    }
}

/// <summary>
/// The mixture VAE (eVAE paper, section 5.2): the eVAE's epitome layout, but each epitome y is an independent
/// VAE with K latent units and no shared weights (<c>components.{y}.*</c>), trained with the same point-estimate
/// assignment and balanced minibatches. Component y's units sit at the epitome's place [y s, y s + K) of the
/// D-unit layout, so activity statistics line up with the eVAE's.
/// </summary>
public sealed class MixtureVae<T> : GenerativeModel<T> where T : class, ITensor<T>
{
    readonly Vae<T>[] components;

    /// <summary>A mixture of independent VAEs, one per epitome of <paramref name="layout"/>.</summary>
    public MixtureVae(ComputeContext<T> context, EpitomeLayout layout, Func<int, Vae<T>> component) : base(context)
    {
        Layout = layout;
        components = new Vae<T>[layout.Count];
        for (int c = 0; c < layout.Count; c++)
        {
            components[c] = RegisterModule($"components.{c}", component(c));
            if (components[c].Latent != layout.Size)
                throw new ArgumentException($"component {c} has {components[c].Latent} latent units, the epitome size is {layout.Size}");
        }
    }

    /// <summary>The epitome layout.</summary>
    public EpitomeLayout Layout { get; }

    /// <summary>The component VAEs.</summary>
    public IReadOnlyList<Vae<T>> Components => components;

    /// <inheritdoc/>
    public override int Input => components[0].Input;

    /// <inheritdoc/>
    public override int Latent => Layout.Latent;

    /// <inheritdoc/>
    public override int Groups => Layout.Count;

    /// <summary>
    /// Each example's bound under its assigned component (<paramref name="bound"/>: the ELBO or L_k) plus log p(y) = -log(groups), [n].
    /// </summary>
    public override T TrainingObjective(T x, ReadOnlySpan<int> groups, TrainingBound bound, float beta, Rng rng)
    {
        var value = PerComponent(x, groups, (vae, xc) => bound.Of(vae, xc, rng, beta));
        return components.Length == 1 ? value : value - MathF.Log(components.Length);
    }

    /// <summary>L_k(x | y_i) under each example's component y_i, [n] (no log p(y)).</summary>
    public override T GroupBound(T x, ReadOnlySpan<int> groups, int k, Rng rng) =>
        PerComponent(x, groups, (vae, xc) => Bounds.ImportanceWeighted(vae, xc, k, rng));

    /// <summary>
    /// <paramref name="bound"/>(component, its examples) for each component that has examples, in component order,
    /// put back into the examples' order, [n].
    /// </summary>
    T PerComponent(T x, ReadOnlySpan<int> groups, Func<Vae<T>, T, T> bound)
    {
        var members = Members(groups);
        var parts = new List<T>();
        var order = new List<int>();
        for (int c = 0; c < components.Length; c++)
        {
            if (members[c].Count == 0) continue;
            parts.Add(bound(components[c], x.SelectRows(members[c].ToArray())));
            order.AddRange(members[c]);
        }
        // Back to the examples' order: position order[j] holds part entry j.
        var inverse = new int[order.Count];
        for (int j = 0; j < order.Count; j++) inverse[order[j]] = j;
        return T.ConcatRows(parts).SelectRows(inverse);
    }

    List<int>[] Members(ReadOnlySpan<int> groups)
    {
        var members = Enumerable.Range(0, components.Length).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < groups.Length; i++)
        {
            if ((uint)groups[i] >= (uint)components.Length)
                throw new ArgumentOutOfRangeException(nameof(groups), groups[i], $"component index must be in [0, {components.Length})");
            members[groups[i]].Add(i);
        }
        return members;
    }

    /// <summary>log sum_y p(y) (1/k) sum_i w_{y,i} with k samples from each component's q(z|x), [n] (see <see cref="EpitomicVae{T}.LogLikelihoodBound"/>).</summary>
    public override T LogLikelihoodBound(T x, int k, Rng rng) =>
        EpitomeGroups.Marginalize(Context, components.Length, c => Bounds.ImportanceWeighted(components[c], x, k, rng));

    /// <summary>
    /// Scores of every component, [G][n]: its reconstruction estimate (plug-in at mu, or the mean over
    /// <paramref name="samples"/> draws) minus its KL (see <see cref="GenerativeModel{T}.AssignmentScores"/>).
    /// </summary>
    public override float[][] AssignmentScores(T x, int samples = 0, Rng? rng = null)
    {
        using var noGrad = Context.NoGrad();
        return components
            .Select(vae => Bounds.AssignmentScore(Context, vae.Encoder.Forward(x), z => vae.Decoder.LogLikelihood(z, x), samples, rng).ToArray())
            .ToArray();
    }

    /// <summary>
    /// The assigned component's posterior placed at its epitome's units of a [n, D] layout; the other
    /// units hold the prior (mean 0, log-variance 0). No gradient.
    /// </summary>
    public override Posterior<T> Encode(T x, ReadOnlySpan<int> groups)
    {
        using var noGrad = Context.NoGrad();
        int n = x.Dim(0), d = Latent, size = Layout.Size;
        var mu = new float[n * d];
        var logVar = new float[n * d];
        var members = Members(groups);
        var part = new float[n * size];
        for (int c = 0; c < components.Length; c++)
        {
            int m = members[c].Count;
            if (m == 0) continue;
            var q = components[c].Encoder.Forward(x.SelectRows(members[c].ToArray()));
            foreach (var (head, target) in new[] { (q.Mu, mu), (q.LogVar, logVar) })
            {
                head.CopyTo(part.AsSpan(0, m * size));
                for (int j = 0; j < m; j++) part.AsSpan(j * size, size).CopyTo(target.AsSpan(members[c][j] * d + Layout.Start(c)));
            }
        }
        return new Posterior<T>(Context.Upload(mu, n, d), Context.Upload(logVar, n, d));
    }

    /// <summary>Decoder means for z [n, D]: component y reads its epitome's units of z. No gradient.</summary>
    public override T DecodeMean(T z, ReadOnlySpan<int> groups)
    {
        using var noGrad = Context.NoGrad();
        int n = z.Dim(0), d = Latent, size = Layout.Size, input = Input;
        var latent = z.ToArray();
        var result = new float[n * input];
        var members = Members(groups);
        for (int c = 0; c < components.Length; c++)
        {
            int m = members[c].Count;
            if (m == 0) continue;
            var zc = new float[m * size];
            for (int j = 0; j < m; j++) latent.AsSpan(members[c][j] * d + Layout.Start(c), size).CopyTo(zc.AsSpan(j * size));
            var mean = components[c].Decoder.Mean(Context.Upload(zc, m, size)).ToArray();
            for (int j = 0; j < m; j++) mean.AsSpan(j * input, input).CopyTo(result.AsSpan(members[c][j] * input));
        }
        return Context.Upload(result, n, input);
    }
}
