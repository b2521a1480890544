using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>How the KL term of an ELBO is estimated.</summary>
public enum KlEstimator
{
    /// <summary>In closed form, sum_d KL(q(z_d|x) || N(0, 1)) (Kingma and Welling 2014, eq. 10).</summary>
    Analytic,
    /// <summary>At the sampled z: log q(z|x) - log p(z) (Burda et al.'s VAE; Kingma and Welling 2014, eq. 6).</summary>
    MonteCarlo,
}

/// <summary>Which bound the k samples of the training objective estimate.</summary>
public enum TrainObjective
{
    /// <summary>The importance-weighted bound L_k = log (1/k) sum_i w_i (Burda et al. 2015, eq. 8).</summary>
    Iwae,
    /// <summary>The ELBO averaged over k samples, (1/k) sum_i log w_i ("VAE" rows of Burda et al. 2015, Table 1).</summary>
    Vae,
}

/// <summary>
/// The training bound of a run: k samples, the objective they estimate and the KL estimator of an ELBO.
/// </summary>
/// <remarks>
/// The ELBO (k = 1, or <see cref="TrainObjective.Vae"/>) uses <see cref="Kl"/>: analytic, (1/k) sum_i log p(x|z_i) - KL;
/// Monte-Carlo, (1/k) sum_i log w_i. L_k (k &gt; 1 with <see cref="TrainObjective.Iwae"/>) has no analytic-KL form, so
/// <see cref="Kl"/> does not change it. With k = 1 both objectives are the ELBO.
/// </remarks>
/// <param name="K">Samples per example (Burda et al.'s k).</param>
/// <param name="Objective">L_k or the k-sample ELBO.</param>
/// <param name="Kl">KL estimator of the ELBO.</param>
public sealed record TrainingBound(int K, TrainObjective Objective = TrainObjective.Iwae, KlEstimator Kl = KlEstimator.Analytic)
{
    /// <summary>Whether the bound is an ELBO (k = 1, or the k-sample VAE objective) rather than L_k.</summary>
    public bool IsElbo => K == 1 || Objective == TrainObjective.Vae;

    /// <summary>The bound per example of a VAE on data x [n, N], optionally masked [n, D] (eVAE), beta scaling the KL term; [n].</summary>
    public T Of<T>(Vae<T> model, T x, Rng rng, float beta, T? mask = null) where T : class, ITensor<T> =>
        !IsElbo ? Bounds.ImportanceWeighted(model, x, K, rng, beta, mask)
        : Kl == KlEstimator.Analytic ? Bounds.Elbo(model, x, rng, beta, mask, K)
        : Bounds.MeanLogWeight(model, x, K, rng, beta, mask);
}
