using VaeResearch.Data;
using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>A run folder with its configuration and its model restored from the checkpoint (evaluation mode).</summary>
/// <param name="Folder">The run folder.</param>
/// <param name="Config">The run's configuration.</param>
/// <param name="Model">The model with the checkpoint's weights.</param>
/// <param name="Epoch">Epochs completed when the checkpoint was written.</param>
public sealed record TrainedRun(RunFolder Folder, TrainConfig Config, GenerativeModel Model, int Epoch)
{
    /// <summary>Opens <paramref name="path"/> and loads its checkpoint; clear errors for a missing or broken run.</summary>
    public static TrainedRun Load(string path)
    {
        var folder = RunFolder.Open(path);
        var config = folder.ReadConfig().Validate();
        var model = ModelFactory.Build(config, Mnist.Pixels, new Rng(config.Seed, TrainStreams.Init));
        int epoch = folder.LoadCheckpoint(model);
        model.Eval();
        return new TrainedRun(folder, config, model, epoch);
    }

    /// <summary>
    /// The images of a split as the model sees them: binarized with <paramref name="binarization"/> (default:
    /// the run's) by the run's seed: the test split uses its fixed sample, a dynamically binarized training split the first epoch's sample.
    /// </summary>
    public float[] Images(Dataset data, Binarization? binarization = null) =>
        new Binarizer(data, binarization ?? Config.EffectiveBinarization, Config.Seed).Epoch(0);
}
