namespace VaeResearch.Models;

/// <summary>
/// The dense layers of a <see cref="Vae{T}"/> in closed form, from its sizes alone (no weights drawn): what the mixture
/// VAE's width matching and a run's compute estimate (<see cref="Experiments.RunCost"/>) count.
/// </summary>
public static class VaeShape
{
    /// <summary>The encoder's layers (inputs, outputs): the hidden layers on x, then the mean and scale heads.</summary>
    public static IEnumerable<(int In, int Out)> Encoder(int input, int latent, IReadOnlyList<int> hidden)
    {
        int width = input;
        foreach (int h in hidden) { yield return (width, h); width = h; }
        yield return (width, latent);
        yield return (width, latent);
    }

    /// <summary>The decoder's layers (inputs, outputs): the hidden layers on z, then one output head (two for a Gaussian decoder).</summary>
    public static IEnumerable<(int In, int Out)> Decoder(int input, int latent, IReadOnlyList<int> hidden, DecoderKind decoder)
    {
        int width = latent;
        foreach (int h in hidden) { yield return (width, h); width = h; }
        yield return (width, input);
        if (decoder == DecoderKind.Gaussian) yield return (width, input);
    }

    /// <summary>The weights of <paramref name="layers"/>: the multiply-adds of one forward pass per example.</summary>
    public static long Weights(IEnumerable<(int In, int Out)> layers) => layers.Sum(l => (long)l.In * l.Out);

    /// <summary>The parameter count of a <see cref="Vae{T}"/> with these sizes: weights, biases and batch norm's scale and shift.</summary>
    public static long ParameterCount(int input, int latent, IReadOnlyList<int> hidden, DecoderKind decoder, bool batchNorm) =>
        Encoder(input, latent, hidden).Concat(Decoder(input, latent, hidden, decoder)).Sum(l => (long)l.In * l.Out + l.Out)
        + (batchNorm ? 2 * 2L * hidden.Sum() : 0);
}
