using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>A diagonal Gaussian q(z|x) = N(mu, exp(logvar)) given by its two heads, each [n, D].</summary>
/// <param name="Mu">Posterior means [n, D].</param>
/// <param name="LogVar">Posterior log-variances [n, D].</param>
public sealed record Posterior(Tensor Mu, Tensor LogVar);

/// <summary>
/// The recognition network q(z|x): hidden layers on x, then linear heads <c>encoder.mu.*</c> and
/// <c>encoder.logvar.*</c> for the mean and log-variance of a diagonal Gaussian.
/// </summary>
public sealed class Encoder : Module
{
    readonly Mlp body;
    readonly Linear mu, logVar;

    /// <summary>An encoder from <paramref name="input"/> values to <paramref name="latent"/> units.</summary>
    public Encoder(int input, IReadOnlyList<int> hidden, int latent, Activation activation, bool batchNorm, Rng rng,
        WeightInit init = WeightInit.Normal)
    {
        body = RegisterModule("", new Mlp(input, hidden, activation, batchNorm, rng, init));
        mu = RegisterModule("mu", new Linear(body.OutFeatures, latent, rng, init));
        logVar = RegisterModule("logvar", new Linear(body.OutFeatures, latent, rng, init));
    }

    /// <summary>q(z|x) for x [n, N].</summary>
    public Posterior Forward(Tensor x)
    {
        var h = body.Forward(x);
        return new Posterior(mu.Forward(h), logVar.Forward(h));
    }
}
