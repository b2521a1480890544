using VaeResearch.Engine;

namespace VaeResearch.Bench;

/// <summary>
/// The benchmark's seed model assembled from engine parts: encoder 784-200-200-(mu, logvar 50),
/// decoder 50-200-200-784 Bernoulli logits, softplus, trained on the IWAE bound L_k.
/// </summary>
public sealed class SeedModel : Module
{
    readonly Mlp encoder, decoder;
    readonly Linear mu, logvar, logits;

    /// <summary>Builds the model with Xavier-normal weights from <paramref name="rng"/>.</summary>
    public SeedModel(Rng rng, int input = 784, int hidden = 200, int latent = 50)
    {
        encoder = RegisterModule("encoder", new Mlp(input, [hidden, hidden], Activation.Softplus, false, rng));
        mu = RegisterModule("encoder.mu", new Linear(hidden, latent, rng));
        logvar = RegisterModule("encoder.logvar", new Linear(hidden, latent, rng));
        decoder = RegisterModule("decoder", new Mlp(latent, [hidden, hidden], Activation.Softplus, false, rng));
        logits = RegisterModule("decoder.logits", new Linear(hidden, input, rng));
        Latent = latent;
    }

    /// <summary>Latent size D.</summary>
    public int Latent { get; }

    /// <summary>The batch's mean negative IWAE bound -L_k for data x [batch, 784] and noise from <paramref name="rng"/>.</summary>
    public Tensor Loss(Tensor x, int k, Rng rng)
    {
        int batch = x.Dim(0);
        var h = encoder.Forward(x);
        var mean = mu.Forward(h);
        var lv = logvar.Forward(h);
        var eps = Tensor.Empty(k, batch, Latent);
        rng.FillNormal(eps.Data);
        var z = eps * (lv * 0.5f).Exp() + mean;
        var logPx = Tensor.BernoulliLogLikelihood(logits.Forward(decoder.Forward(z)), x);
        // log p(z) - log q(z|x) = -0.5 sum(z^2) + 0.5 sum(eps^2 + logvar); the 2 pi terms cancel.
        var logPz = z.Square().Sum(-1) * -0.5f;
        var logQz = (eps.Square().Sum(-1) + lv.Sum(-1)) * -0.5f;
        var logW = logPx + logPz - logQz;
        var bound = logW.LogSumExp(0) - MathF.Log(k);
        return -bound.Mean();
    }
}
