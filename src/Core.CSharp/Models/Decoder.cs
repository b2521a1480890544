using VaeResearch.Compute;
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

/// <summary>Initial value of the decoder's output (mean) bias.</summary>
public enum OutputBias
{
    /// <summary>0, like every other bias.</summary>
    Zero,
    /// <summary>
    /// logit(clip(mean training image, 0.001, 0.999)) (Burda et al.'s code, Bernoulli decoder). For the Gaussian decoder the
    /// bias of the mean head, whose mean is sigmoid(.), so that sigmoid(bias) is the clipped mean image; the log-variance
    /// head keeps bias 0.
    /// </summary>
    DataMean,
}

/// <summary>The output f2 of the Gaussian decoder's log-variance head.</summary>
public enum GaussianLogVariance
{
    /// <summary>log sigma^2 = tanh(W h + b), in (-1, 1) (activity paper, section 2.3.1).</summary>
    Bounded,
    /// <summary>log sigma^2 = W h + b, a plain linear output f2 (eVAE paper, eq. 2).</summary>
    Unbounded,
}

/// <summary>
/// The generative network p(x|z): hidden layers on z, then the output head(s):
/// <c>decoder.logits.*</c> (Bernoulli) or <c>decoder.mu.*</c> and <c>decoder.logvar.*</c> (Gaussian).
/// </summary>
public sealed class Decoder<T> : Module<T> where T : class, ITensor<T>
{
    readonly Mlp<T> body;
    readonly Linear<T> first, second; // logits, or mean and log-variance

    /// <summary>
    /// A decoder from <paramref name="latent"/> units to <paramref name="output"/> values with weights drawn by
    /// <paramref name="init"/>; <paramref name="logVariance"/> chooses the Gaussian log-variance head (ignored for Bernoulli).
    /// </summary>
    public Decoder(ComputeContext<T> context, int latent, IReadOnlyList<int> hidden, int output, Activation activation, bool batchNorm, DecoderKind kind,
        Rng rng, WeightInit init = WeightInit.Normal, GaussianLogVariance logVariance = GaussianLogVariance.Bounded) : base(context)
    {
        Kind = kind;
        LogVarianceKind = logVariance;
        body = RegisterModule("", new Mlp<T>(context, latent, hidden, activation, batchNorm, rng, init));
        if (kind == DecoderKind.Bernoulli)
        {
            first = RegisterModule("logits", new Linear<T>(context, body.OutFeatures, output, rng, init));
            second = first;
        }
        else
        {
            first = RegisterModule("mu", new Linear<T>(context, body.OutFeatures, output, rng, init));
            second = RegisterModule("logvar", new Linear<T>(context, body.OutFeatures, output, rng, init));
        }
    }

    /// <summary>
    /// The bias [N] of the output layer that gives the mean of p(x|z) through a sigmoid: <c>decoder.logits.bias</c>
    /// (Bernoulli) or <c>decoder.mu.bias</c> (Gaussian).
    /// </summary>
    public T MeanBias => first.Bias;

    /// <summary>
    /// Sets <see cref="MeanBias"/> to logit(clip(p, <paramref name="floor"/>, 1 - floor)) for pixel means p [N], so that
    /// with zero input from the hidden layers the decoder's mean is the clipped p (Burda et al.'s code: the mean
    /// training image). Both decoders read their mean through a sigmoid, so the same logit serves both.
    /// </summary>
    public void SetMeanBias(ReadOnlySpan<double> pixelMeans, double floor = 1e-3)
    {
        var bias = new float[first.Bias.Size];
        if (pixelMeans.Length != bias.Length)
            throw new ArgumentException($"{pixelMeans.Length} pixel means for an output of {bias.Length} values", nameof(pixelMeans));
        for (int i = 0; i < bias.Length; i++)
        {
            double p = Math.Clamp(pixelMeans[i], floor, 1 - floor);
            // NOTE: the clip keeps the logit finite (+-6.9 at floor 1e-3) for pixels that are always 0 or 1.
            bias[i] = (float)Math.Log(p / (1 - p));
        }
        first.Bias.CopyFrom(bias);
    }

    /// <summary>The likelihood family.</summary>
    public DecoderKind Kind { get; }

    /// <summary>The Gaussian log-variance head.</summary>
    public GaussianLogVariance LogVarianceKind { get; }

    /// <summary>log p(x|z) for z [..., n, D] and data x [n, N]; result [..., n].</summary>
    /// <remarks>
    /// Bernoulli: sum_i x_i l_i - softplus(l_i). Gaussian: -1/2 sum_i ((x_i - mu_i)^2 exp(-s_i) + s_i + log 2 pi)
    /// with mu = sigmoid(.) and s = tanh(.) (activity paper, section 2.3.1) or s = f2(z) linear (eVAE paper, eq. 2).
    /// </remarks>
    public T LogLikelihood(T z, T x)
    {
        var h = body.Forward(z);
        if (Kind == DecoderKind.Bernoulli) return T.BernoulliLogLikelihood(first.Forward(h), x);
        var mean = first.Forward(h).Sigmoid();
        var logVar = LogVarianceOf(h);
        var sq = (mean - x).Square() * (-logVar).Exp() + logVar;
        return sq.Sum(-1) * -0.5f - 0.5f * x.Dim(-1) * MathF.Log(2 * MathF.PI);
    }

    /// <summary>The Gaussian decoder's log-variance s = log sigma^2 for z [..., D], [..., N].</summary>
    public T LogVariance(T z)
    {
        if (Kind != DecoderKind.Gaussian) throw new InvalidOperationException("a Bernoulli decoder has no log-variance");
        return LogVarianceOf(body.Forward(z));
    }

    // NOTE: unbounded, nothing stops s from running to -infinity on pixels the data hold constant (MNIST's
    // borders are always 0 on grey levels): exp(-s) then overflows float32 near s = -88 and the likelihood
    // grows without bound; the tanh bound keeps sigma^2 in (e^-1, e) at the price of a floor on the variance.
    T LogVarianceOf(T h) =>
        LogVarianceKind == GaussianLogVariance.Bounded ? second.Forward(h).Tanh() : second.Forward(h);

    /// <summary>
    /// The mean of p(x|z) for z [..., D]: pixel probabilities sigmoid(logits) (Bernoulli) or the Gaussian mean.
    /// </summary>
    public T Mean(T z) => first.Forward(body.Forward(z)).Sigmoid();
}
