using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>The likelihood family of p(x|z).</summary>
public enum DecoderKind
{
    /// <summary>Bernoulli with logits (binary pixels; activity paper, section 2.3.2).</summary>
    Bernoulli,
    /// <summary>Diagonal Gaussian with mean sigmoid(.) and log-variance tanh(.) (activity paper section 2.3.1).</summary>
    Gaussian,
}

/// <summary>
/// The generative network p(x|z): hidden layers on z, then the output head(s):
/// <c>decoder.logits.*</c> (Bernoulli) or <c>decoder.mu.*</c> and <c>decoder.logvar.*</c> (Gaussian).
/// </summary>
public sealed class Decoder : Module
{
    readonly Mlp body;
    readonly Linear first, second; // logits, or mean and log-variance

    /// <summary>A decoder from <paramref name="latent"/> units to <paramref name="output"/> values.</summary>
    public Decoder(int latent, IReadOnlyList<int> hidden, int output, Activation activation, bool batchNorm, DecoderKind kind, Rng rng)
    {
        Kind = kind;
        body = RegisterModule("", new Mlp(latent, hidden, activation, batchNorm, rng));
        if (kind == DecoderKind.Bernoulli)
        {
            first = RegisterModule("logits", new Linear(body.OutFeatures, output, rng));
            second = first;
        }
        else
        {
            first = RegisterModule("mu", new Linear(body.OutFeatures, output, rng));
            second = RegisterModule("logvar", new Linear(body.OutFeatures, output, rng));
        }
    }

    /// <summary>The likelihood family.</summary>
    public DecoderKind Kind { get; }

    /// <summary>log p(x|z) for z [..., n, D] and data x [n, N]; result [..., n].</summary>
    /// <remarks>
    /// Bernoulli: sum_i x_i l_i - softplus(l_i). Gaussian: -1/2 sum_i ((x_i - mu_i)^2 exp(-s_i) + s_i + log 2 pi)
    /// with mu = sigmoid(.), s = tanh(.) (activity paper, section 2.3.1).
    /// </remarks>
    public Tensor LogLikelihood(Tensor z, Tensor x)
    {
        var h = body.Forward(z);
        if (Kind == DecoderKind.Bernoulli) return Tensor.BernoulliLogLikelihood(first.Forward(h), x);
        var mean = first.Forward(h).Sigmoid();
        var logVar = second.Forward(h).Tanh();
        var sq = (mean - x).Square() * (-logVar).Exp() + logVar;
        return sq.Sum(-1) * -0.5f - 0.5f * x.Dim(-1) * MathF.Log(2 * MathF.PI);
    }

    /// <summary>
    /// The mean of p(x|z) for z [..., D]: pixel probabilities sigmoid(logits) (Bernoulli) or the Gaussian mean.
    /// </summary>
    public Tensor Mean(Tensor z) => first.Forward(body.Forward(z)).Sigmoid();
}
