using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>
/// A variational autoencoder (Kingma and Welling 2014): encoder q(z|x), standard normal prior p(z),
/// decoder p(x|z). Parameters are named <c>encoder.*</c> and <c>decoder.*</c> (docs/contracts.md, "Tensor names").
/// </summary>
public sealed class Vae<T> : GenerativeModel<T> where T : class, ITensor<T>
{
    /// <summary>
    /// A VAE with weights drawn from <paramref name="rng"/> by <paramref name="init"/> (Xavier-normal by default);
    /// <paramref name="logVariance"/> is the Gaussian decoder's log-variance head (see <see cref="GaussianLogVariance"/>) and
    /// <paramref name="scale"/> what the encoder's scale head gives (see <see cref="PosteriorScale"/>).
    /// </summary>
    public Vae(ComputeContext<T> context, int input, int latent, IReadOnlyList<int> hidden, Activation activation, DecoderKind decoder,
        bool batchNorm, float dropoutZ, Rng rng, WeightInit init = WeightInit.Normal, GaussianLogVariance logVariance = GaussianLogVariance.Bounded,
        PosteriorScale scale = PosteriorScale.LogVariance)
        : base(context)
    {
        if (input < 1) throw new ArgumentOutOfRangeException(nameof(input), input, "input size must be >= 1");
        if (latent < 1) throw new ArgumentOutOfRangeException(nameof(latent), latent, "latent size D must be >= 1");
        if (hidden.Any(h => h < 1)) throw new ArgumentOutOfRangeException(nameof(hidden), "every hidden width must be >= 1");
        Input = input;
        Latent = latent;
        Encoder = RegisterModule("encoder", new Encoder<T>(context, input, hidden, latent, activation, batchNorm, rng, init, scale));
        Decoder = RegisterModule("decoder", new Decoder<T>(context, latent, hidden, input, activation, batchNorm, decoder, rng, init, logVariance));
        DropoutZ = RegisterModule("dropout_z", new Dropout<T>(context, dropoutZ));
    }

    /// <inheritdoc/>
    public override int Input { get; }

    /// <inheritdoc/>
    public override int Latent { get; }

    /// <summary>q(z|x).</summary>
    public Encoder<T> Encoder { get; }

    /// <summary>p(x|z).</summary>
    public Decoder<T> Decoder { get; }

    /// <summary>Dropout on z before the decoder (training only; eVAE paper, section 3.2).</summary>
    public Dropout<T> DropoutZ { get; }

    /// <inheritdoc/>
    public override T TrainingObjective(T x, ReadOnlySpan<int> groups, TrainingBound bound, float beta, Rng rng) =>
        bound.Of(this, x, rng, beta);

    /// <inheritdoc/>
    public override T LogLikelihoodBound(T x, int k, Rng rng) => Bounds.ImportanceWeighted(this, x, k, rng);

    /// <inheritdoc/>
    public override T GroupBound(T x, ReadOnlySpan<int> groups, int k, Rng rng) => Bounds.ImportanceWeighted(this, x, k, rng);

    /// <summary>The one group's score log p(x|z) - sum_d KL_d, [1][n] (see <see cref="GenerativeModel{T}.AssignmentScores"/>).</summary>
    public override float[][] AssignmentScores(T x, int samples = 0, Rng? rng = null)
    {
        using var noGrad = Context.NoGrad();
        return [Bounds.AssignmentScore(Context, Encoder.Forward(x), z => Decoder.LogLikelihood(z, x), samples, rng).ToArray()];
    }

    /// <inheritdoc/>
    public override Posterior<T> Encode(T x, ReadOnlySpan<int> groups) => Encoder.Forward(x);

    /// <inheritdoc/>
    public override T DecodeMean(T z, ReadOnlySpan<int> groups) => Decoder.Mean(z);
}
