using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>
/// A latent-variable model the trainer, evaluation and analysis work with: a VAE, or a model with a
/// discrete choice y among <see cref="Groups"/> alternatives (epitomes, mixture components) made by a
/// point estimate y* per example (eVAE paper, section 4.2).
/// </summary>
public abstract class GenerativeModel : Module
{
    /// <summary>Data dimension N.</summary>
    public abstract int Input { get; }

    /// <summary>Latent dimension D (all units of z across groups).</summary>
    public abstract int Latent { get; }

    /// <summary>Number of values of the discrete choice y (1 for a plain VAE).</summary>
    public virtual int Groups => 1;

    /// <summary>
    /// The training objective per example, [n]: the bound for the given group assignment (ignored when
    /// <see cref="Groups"/> is 1), with <paramref name="beta"/> scaling the KL / prior-ratio term
    /// (beta = 1: the true bound). k = 1 uses the analytic KL; k &gt; 1 the importance-weighted bound.
    /// </summary>
    public Tensor Objective(Tensor x, ReadOnlySpan<int> groups, int k, float beta, Rng rng) =>
        TrainingObjective(x, groups, new TrainingBound(k), beta, rng);

    /// <summary>
    /// The training objective per example, [n], estimating <paramref name="bound"/> (L_k, or the k-sample ELBO with the
    /// analytic or Monte-Carlo KL) for the given group assignment, with <paramref name="beta"/> scaling the KL /
    /// prior-ratio term.
    /// </summary>
    public abstract Tensor TrainingObjective(Tensor x, ReadOnlySpan<int> groups, TrainingBound bound, float beta, Rng rng);

    /// <summary>
    /// A stochastic lower bound on log p(x) per example, [n], with k importance samples and beta = 1;
    /// for models with groups it marginalizes y (see the implementing class for the estimator).
    /// </summary>
    public abstract Tensor LogLikelihoodBound(Tensor x, int k, Rng rng);

    /// <summary>The best group y* per example (Algorithm 1, step 3); all zeros for a plain VAE.</summary>
    public virtual int[] Assign(Tensor x) => new int[x.Dim(0)];

    /// <summary>
    /// The posterior q(z|x, y) for the given groups: mean and log-variance [n, D], with units outside the
    /// group set to the prior (mean 0, log-variance 0).
    /// </summary>
    public abstract Posterior Encode(Tensor x, ReadOnlySpan<int> groups);

    /// <summary>Decoder means E[x|z] for z [n, D] (with the given groups' masks or components), [n, N].</summary>
    public abstract Tensor DecodeMean(Tensor z, ReadOnlySpan<int> groups);

    /// <summary>Draws y uniformly (when there are groups) and z from the prior; returns decoder means [n, N].</summary>
    public Tensor Sample(int n, Rng rng)
    {
        var groups = new int[n];
        for (int i = 0; i < n; i++) groups[i] = Groups == 1 ? 0 : rng.NextInt(Groups);
        var z = Tensor.Empty(n, Latent);
        rng.FillNormal(z.Data);
        return DecodeMean(z, groups);
    }
}
