using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>
/// Variational bounds on log p(x) as pure functions of a <see cref="Vae{T}"/>, a batch and the noise.
/// Each returns one value per example, [n]; a loss is the negative mean.
/// </summary>
/// <remarks>
/// An optional per-example mask m [n, D] of 0/1 values restricts q and the decoder to the unmasked
/// units, as the epitomic VAE does (eVAE paper, eqs. 5 and 6): q(z|x) = N(m mu, exp(m logvar)) and the
/// decoder reads m z. A masked unit then has q equal to the prior, so it adds exactly zero to the KL and
/// to log p(z) - log q(z|x).
/// </remarks>
public static class Bounds
{
    /// <summary>The constant 1/2 log(2 pi).</summary>
    public static readonly float HalfLog2Pi = 0.5f * MathF.Log(2f * MathF.PI);

    /// <summary>KL(q(z_d|x) || N(0, 1)) = 1/2 (mu^2 + exp(logvar) - 1 - logvar) per example and unit, [n, D].</summary>
    /// <remarks>Zero exactly when mu = 0 and logvar = 0 (a collapsed unit); never negative. eVAE paper, eq. (4).</remarks>
    // NOTE: a fused op in double (Tensor.GaussianKl): the float32 formula gave 6e-8 at a collapsed unit and
    // -3e-8 at small positive logvar, because the SIMD exp is an ulp off near 0.
    public static T KlPerUnit<T>(Posterior<T> q) where T : class, ITensor<T> => T.GaussianKl(q.Mu, q.LogVar);

    /// <summary>The posterior restricted by a mask: N(m mu, exp(m logvar)) (eVAE paper, eq. 6).</summary>
    public static Posterior<T> Masked<T>(Posterior<T> q, T? mask) where T : class, ITensor<T> =>
        mask is null ? q : new Posterior<T>(q.Mu * mask, q.LogVar * mask);

    /// <summary>
    /// The evidence lower bound with the analytic KL: log p(x|z) for one reparameterized sample z ~ q minus
    /// <paramref name="klWeight"/> times sum_d KL(q(z_d|x) || N(0, 1)); [n]. Kingma and Welling (2014), eq. (10);
    /// with a weight lambda it is the eVAE paper's section 3.1 objective.
    /// </summary>
    /// <param name="context">The backend that draws the noise.</param>
    /// <param name="q">The posterior, mean and log-variance [n, D].</param>
    /// <param name="logLikelihood">log p(x|z) for z [k, n, D], giving [k, n].</param>
    /// <param name="rng">Source of the noise eps.</param>
    /// <param name="klWeight">Weight of the KL term (1: the true bound).</param>
    /// <param name="k">Samples z_i averaged in the reconstruction term, (1/k) sum_i log p(x|z_i) (1: the usual ELBO estimator).</param>
    public static T Elbo<T>(ComputeContext<T> context, Posterior<T> q, Func<T, T> logLikelihood, Rng rng, float klWeight = 1f, int k = 1)
        where T : class, ITensor<T>
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "the number of samples k must be >= 1");
        var (z, _) = Sample(context, q, k, rng);
        var logPx = k == 1 ? logLikelihood(z).Reshape(q.Mu.Dim(0)) : logLikelihood(z).Mean(0);
        var kl = KlPerUnit(q).Sum(-1);
        return klWeight == 1f ? logPx - kl : logPx - kl * klWeight;
    }

    /// <summary>
    /// The log importance weights log w_i = log p(x|z_i) + beta (log p(z_i) - log q(z_i|x)) for k reparameterized
    /// samples z_i ~ q(z|x), [k, n] (Burda et al. 2015, eq. 8 before the log-mean-exp).
    /// </summary>
    /// <param name="context">The backend that draws the noise.</param>
    /// <param name="q">The posterior, mean and log-variance [n, D].</param>
    /// <param name="logLikelihood">log p(x|z) for z [k, n, D], giving [k, n].</param>
    /// <param name="k">Samples per example.</param>
    /// <param name="rng">Source of the noise eps.</param>
    /// <param name="beta">Weight of log p(z) - log q(z|x) (1: the true weights).</param>
    public static T LogWeights<T>(ComputeContext<T> context, Posterior<T> q, Func<T, T> logLikelihood, int k, Rng rng, float beta = 1f)
        where T : class, ITensor<T>
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "the number of importance samples k must be >= 1");
        var (z, eps) = Sample(context, q, k, rng);
        return logLikelihood(z) + LogPriorMinusPosterior(q, z, eps) * beta;
    }

    /// <summary>
    /// The ELBO with a Monte-Carlo KL, averaged over k samples: (1/k) sum_i log w_i, [n] ("VAE with k samples",
    /// Burda et al. 2015, Table 1; at k = 1 the estimator of their VAE, whose KL is log q(z|x) - log p(z) at the
    /// sampled z). Its expectation is the ELBO for every k; only the variance falls with k.
    /// </summary>
    public static T MeanLogWeight<T>(ComputeContext<T> context, Posterior<T> q, Func<T, T> logLikelihood, int k, Rng rng, float beta = 1f)
        where T : class, ITensor<T>
    {
        var logW = LogWeights(context, q, logLikelihood, k, rng, beta);
        return k == 1 ? logW.Reshape(q.Mu.Dim(0)) : logW.Mean(0);
    }

    /// <summary>
    /// The importance-weighted bound L_k = log (1/k) sum_i w_i with
    /// log w_i = log p(x|z_i) + beta (log p(z_i) - log q(z_i|x)), z_i ~ q(z|x); [n].
    /// Burda et al. (2015), eq. (8); beta &lt; 1 is warm-up or a KL weight, beta = 1 the true bound.
    /// </summary>
    /// <remarks>L_1 is the ELBO estimator with a Monte-Carlo KL; E[L_k] grows with k towards log p(x).</remarks>
    /// <param name="context">The backend that draws the noise.</param>
    /// <param name="q">The posterior, mean and log-variance [n, D].</param>
    /// <param name="logLikelihood">log p(x|z) for z [k, n, D], giving [k, n].</param>
    /// <param name="k">Importance samples per example.</param>
    /// <param name="rng">Source of the noise eps.</param>
    /// <param name="beta">Weight of log p(z) - log q(z|x) inside each weight (1: the true bound).</param>
    public static T ImportanceWeighted<T>(ComputeContext<T> context, Posterior<T> q, Func<T, T> logLikelihood, int k, Rng rng, float beta = 1f)
        where T : class, ITensor<T>
    {
        var logW = LogWeights(context, q, logLikelihood, k, rng, beta);
        return logW.LogSumExp(0) - MathF.Log(k);
    }

    /// <summary>
    /// <see cref="Elbo{T}(ComputeContext{T}, Posterior{T}, Func{T, T}, Rng, float, int)"/> of a VAE on data x [n, N], optionally restricted by a mask [n, D].
    /// </summary>
    public static T Elbo<T>(Vae<T> model, T x, Rng rng, float klWeight = 1f, T? mask = null, int k = 1) where T : class, ITensor<T> =>
        Elbo(model.Context, Masked(model.Encoder.Forward(x), mask), LogLikelihood(model, x, mask, rng), rng, klWeight, k);

    /// <summary>
    /// <see cref="MeanLogWeight{T}(ComputeContext{T}, Posterior{T}, Func{T, T}, int, Rng, float)"/> of a VAE on data x [n, N], optionally restricted by a mask [n, D].
    /// </summary>
    public static T MeanLogWeight<T>(Vae<T> model, T x, int k, Rng rng, float beta = 1f, T? mask = null) where T : class, ITensor<T> =>
        MeanLogWeight(model.Context, Masked(model.Encoder.Forward(x), mask), LogLikelihood(model, x, mask, rng), k, rng, beta);

    /// <summary>
    /// <see cref="ImportanceWeighted{T}(ComputeContext{T}, Posterior{T}, Func{T, T}, int, Rng, float)"/> of a VAE on data x [n, N], optionally restricted by a mask [n, D].
    /// </summary>
    public static T ImportanceWeighted<T>(Vae<T> model, T x, int k, Rng rng, float beta = 1f, T? mask = null) where T : class, ITensor<T> =>
        ImportanceWeighted(model.Context, Masked(model.Encoder.Forward(x), mask), LogLikelihood(model, x, mask, rng), k, rng, beta);

    /// <summary>
    /// The score that y* maximizes, -C_evae for one y (eVAE paper, eq. 7, up to log p(y)):
    /// R - sum_d KL(q(z_d|x) || N(0, 1)), [n], where R estimates E_q[log p(x|z)]: the plug-in log p(x | mu) when
    /// <paramref name="samples"/> is 0, else (1/S) sum_s log p(x | z_s) over S = <paramref name="samples"/>
    /// reparameterized draws z_s ~ q(z|x) from <paramref name="rng"/> (unbiased for the expectation).
    /// </summary>
    /// <param name="context">The backend that draws the noise.</param>
    /// <param name="q">The (masked) posterior, mean and log-variance [n, D].</param>
    /// <param name="logLikelihood">log p(x|z) for z [S, n, D], giving [S, n]; it must apply the epitome's mask itself.</param>
    /// <param name="samples">S, or 0 for the plug-in estimate.</param>
    /// <param name="rng">Source of the draws (required when S &gt; 0).</param>
    public static T AssignmentScore<T>(ComputeContext<T> context, Posterior<T> q, Func<T, T> logLikelihood, int samples, Rng? rng)
        where T : class, ITensor<T>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(samples);
        int n = q.Mu.Dim(0);
        var reconstruction = samples == 0
            ? logLikelihood(q.Mu.Reshape(1, n, q.Mu.Dim(1))).Reshape(n)
            : logLikelihood(Sample(context, q, samples, rng ?? throw new ArgumentNullException(nameof(rng), "Monte-Carlo scores need a seeded generator")).Z).Mean(0);
        return reconstruction - KlPerUnit(q).Sum(-1);
    }

    /// <summary>
    /// log p(z) - log q(z|x) for z = mu + exp(logvar/2) eps: -1/2 sum_d z_d^2 + 1/2 sum_d (eps_d^2 + logvar_d); [k, n].
    /// </summary>
    // NOTE: writing log q through eps (not through z) is exact for the reparameterized sample and keeps
    // the pathwise gradient of both terms; the 1/2 log 2 pi constants of p and q cancel.
    public static T LogPriorMinusPosterior<T>(Posterior<T> q, T z, T eps) where T : class, ITensor<T> =>
        (eps.Square().Sum(-1) + q.LogVar.Sum(-1) - z.Square().Sum(-1)) * 0.5f;

    /// <summary>k reparameterized samples z = mu + exp(logvar/2) eps with eps ~ N(0, I) from <paramref name="rng"/>; both [k, n, D].</summary>
    public static (T Z, T Eps) Sample<T>(ComputeContext<T> context, Posterior<T> q, int k, Rng rng) where T : class, ITensor<T>
    {
        var eps = context.Normal(rng, k, q.Mu.Dim(0), q.Mu.Dim(1));
        return (eps * (q.LogVar * 0.5f).Exp() + q.Mu, eps);
    }

    /// <summary>log p(x|z) of a VAE's decoder reading m z (eVAE), after dropout on z while training.</summary>
    static Func<T, T> LogLikelihood<T>(Vae<T> model, T x, T? mask, Rng rng) where T : class, ITensor<T> =>
        z => model.Decoder.LogLikelihood(model.DropoutZ.Forward(mask is null ? z : z * mask, rng), x);
}
