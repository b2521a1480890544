using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>A diagonal Gaussian q(z|x) = N(mu, exp(logvar)) given by its two heads, each [n, D].</summary>
/// <param name="Mu">Posterior means [n, D].</param>
/// <param name="LogVar">Posterior log-variances [n, D].</param>
/// <typeparam name="T">The backend's tensor type.</typeparam>
public sealed record Posterior<T>(T Mu, T LogVar) where T : class, ITensor<T>;

/// <summary>What the encoder's scale head <c>encoder.logvar.*</c> outputs.</summary>
public enum PosteriorScale
{
    /// <summary>The log-variance: sigma = exp(h / 2) (Kingma and Welling 2014).</summary>
    LogVariance,
    /// <summary>
    /// The log standard deviation: sigma = exp(h), so the log-variance is 2 h (Burda et al.'s code). The same model
    /// family; Adam's steps in log sigma are twice as large.
    /// </summary>
    LogStd,
}

/// <summary>
/// The recognition network q(z|x): hidden layers on x, then linear heads <c>encoder.mu.*</c> and
/// <c>encoder.logvar.*</c> for the mean and the scale (<see cref="PosteriorScale"/>) of a diagonal Gaussian.
/// </summary>
public sealed class Encoder<T> : Module<T> where T : class, ITensor<T>
{
    readonly Mlp<T> body;
    readonly Linear<T> mu, logVar;
    readonly PosteriorScale scale;

    /// <summary>An encoder from <paramref name="input"/> values to <paramref name="latent"/> units.</summary>
    public Encoder(ComputeContext<T> context, int input, IReadOnlyList<int> hidden, int latent, Activation activation, bool batchNorm, Rng rng,
        WeightInit init = WeightInit.Normal, PosteriorScale scale = PosteriorScale.LogVariance) : base(context)
    {
        this.scale = scale;
        body = RegisterModule("", new Mlp<T>(context, input, hidden, activation, batchNorm, rng, init));
        mu = RegisterModule("mu", new Linear<T>(context, body.OutFeatures, latent, rng, init));
        logVar = RegisterModule("logvar", new Linear<T>(context, body.OutFeatures, latent, rng, init));
    }

    /// <summary>q(z|x) for x [n, N].</summary>
    public Posterior<T> Forward(T x)
    {
        var h = body.Forward(x);
        var head = logVar.Forward(h);
        return new Posterior<T>(mu.Forward(h), scale == PosteriorScale.LogStd ? head * 2f : head);
    }
}
