using VaeResearch.Compute;
using VaeResearch.Data;
using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>Builds the model a <see cref="TrainConfig"/> describes, with weights drawn from a seeded generator.</summary>
public static class ModelFactory
{
    /// <summary>Largest allowed gap between the mVAE's and the eVAE's parameter counts.</summary>
    public const double MixtureParameterTolerance = 0.05;

    /// <summary>The model for <paramref name="config"/> on the native engine (see <see cref="Build{T}"/>).</summary>
    public static GenerativeModel<Tensor> Build(TrainConfig config, int input, Rng rng) => Build(NativeContext.Cpu, config, input, rng);

    /// <summary>
    /// The model for <paramref name="config"/> on data of <paramref name="input"/> values in <paramref name="context"/>
    /// (weights by <c>config.Init</c>, biases 0): the same weights on every backend for the same seed.
    /// </summary>
    public static GenerativeModel<T> Build<T>(ComputeContext<T> context, TrainConfig config, int input, Rng rng) where T : class, ITensor<T>
    {
        Vae<T> Net(int latent, IReadOnlyList<int> hidden) =>
            new(context, input, latent, hidden, config.Activation, config.Decoder, config.Batchnorm, (float)config.DropoutZ, rng, config.Init, config.GaussianLogvar,
                config.PosteriorScale);
        switch (config.Model)
        {
            case ModelKind.Vae:
                return Net(config.Latent, config.Hidden);
            case ModelKind.Evae:
                return new EpitomicVae<T>(Net(config.Latent, config.Hidden), Layout(config));
            default:
                var layout = Layout(config);
                var widths = MixtureHidden(config, input, layout);
                return new MixtureVae<T>(context, layout, _ => Net(layout.Size, widths));
        }
    }

    /// <summary>
    /// The hidden widths of each mVAE component of <paramref name="config"/>: the mixture's parameter count matches the
    /// eVAE's with the same sizes within <see cref="MixtureParameterTolerance"/>, or the configuration is refused.
    /// </summary>
    public static int[] MixtureHidden(TrainConfig config, int input, EpitomeLayout layout)
    {
        long target = VaeShape.ParameterCount(input, config.Latent, config.Hidden, config.Decoder, config.Batchnorm);
        var widths = MixtureVae.MatchedHidden((int)target, layout, input, config.Hidden, config.Decoder, config.Batchnorm);
        long count = layout.Count * VaeShape.ParameterCount(input, layout.Size, widths, config.Decoder, config.Batchnorm);
        if (Math.Abs(count - target) > MixtureParameterTolerance * target)
            throw new VaeResearchException(
                $"no mixture of {layout.Count} VAEs with K = {layout.Size} units matches the eVAE's {target} parameters within 5% " +
                $"(closest: hidden {string.Join(",", widths)} with {count}); use fewer epitomes or wider hidden layers");
        return widths;
    }

    /// <summary>
    /// Applies <c>config.OutputBias</c> to a freshly built model: with <see cref="OutputBias.DataMean"/> every decoder's
    /// mean bias becomes logit(clip(mean training image, 0.001, 0.999)) (Burda et al.'s code), the mean taken over
    /// <paramref name="train"/> (the images actually trained on) in grey levels, before any binarization; with
    /// <see cref="OutputBias.Zero"/> nothing changes.
    /// </summary>
    public static void InitializeOutputBias<T>(GenerativeModel<T> model, TrainConfig config, Dataset train) where T : class, ITensor<T>
    {
        if (config.OutputBias == OutputBias.Zero) return;
        var mean = MeanImage(train);
        IEnumerable<Vae<T>> networks = model switch
        {
            Vae<T> vae => [vae],
            EpitomicVae<T> evae => [evae.Network],
            MixtureVae<T> mvae => mvae.Components,
            _ => throw new ArgumentException($"no decoder bias initialization for {model.GetType().Name}", nameof(model)),
        };
        foreach (var net in networks) net.Decoder.SetMeanBias(mean);
    }

    /// <summary>The mean image of a data set, per pixel, [N], accumulated in double.</summary>
    public static double[] MeanImage(Dataset data)
    {
        var mean = new double[data.Dim];
        for (int i = 0; i < data.Count; i++)
        {
            var image = data.Image(i);
            for (int j = 0; j < mean.Length; j++) mean[j] += image[j];
        }
        for (int j = 0; j < mean.Length; j++) mean[j] /= Math.Max(1, data.Count);
        return mean;
    }

    /// <summary>The epitome layout of an eVAE or mVAE configuration.</summary>
    public static EpitomeLayout Layout(TrainConfig config) =>
        EpitomeLayout.Create(config.Latent,
            config.EpitomeSize ?? throw new ConfigException("epitome_size", "(K) is required by the evae and mvae models"),
            config.EpitomeStride ?? config.EpitomeSize.Value, config.EpitomeLayout);
}
