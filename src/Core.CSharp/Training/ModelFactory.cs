using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>Builds the model a <see cref="TrainConfig"/> describes, with weights drawn from a seeded generator.</summary>
public static class ModelFactory
{
    /// <summary>Largest allowed gap between the mVAE's and the eVAE's parameter counts.</summary>
    public const double MixtureParameterTolerance = 0.05;

    /// <summary>The model for <paramref name="config"/> on data of <paramref name="input"/> values.</summary>
    public static GenerativeModel Build(TrainConfig config, int input, Rng rng)
    {
        Vae Net(int latent, IReadOnlyList<int> hidden) =>
            new(input, latent, hidden, config.Activation, config.Decoder, config.Batchnorm, (float)config.DropoutZ, rng, config.GaussianLogvar);
        switch (config.Model)
        {
            case ModelKind.Vae:
                return Net(config.Latent, config.Hidden);
            case ModelKind.Evae:
                return new EpitomicVae(Net(config.Latent, config.Hidden), Layout(config));
            default:
                var layout = Layout(config);
                long target = MixtureVae.ParameterCount(input, config.Latent, config.Hidden, config.Decoder, config.Batchnorm);
                var widths = MixtureVae.MatchedHidden((int)target, layout, input, config.Hidden, config.Decoder, config.Batchnorm);
                long count = layout.Count * MixtureVae.ParameterCount(input, layout.Size, widths, config.Decoder, config.Batchnorm);
                if (Math.Abs(count - target) > MixtureParameterTolerance * target)
                    throw new VaeResearchException(
                        $"no mixture of {layout.Count} VAEs with K = {layout.Size} units matches the eVAE's {target} parameters within 5% " +
                        $"(closest: hidden {string.Join(",", widths)} with {count}); use fewer epitomes or wider --hidden");
                return new MixtureVae(layout, _ => Net(layout.Size, widths));
        }
    }

    /// <summary>The epitome layout of an eVAE or mVAE configuration.</summary>
    public static EpitomeLayout Layout(TrainConfig config) =>
        EpitomeLayout.Create(config.Latent,
            config.EpitomeSize ?? throw new ConfigException("epitome_size", "(K) is required by the evae and mvae models"),
            config.EpitomeStride ?? config.EpitomeSize.Value, config.EpitomeLayout);
}
