using VaeResearch.Compute;
using VaeResearch.Data;
using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>A run folder with its configuration and its model restored from the checkpoint (evaluation mode).</summary>
/// <param name="Folder">The run folder.</param>
/// <param name="Config">The run's configuration.</param>
/// <param name="Model">The model with the checkpoint's weights.</param>
/// <param name="Epoch">Epochs completed when the checkpoint was written.</param>
public sealed record TrainedRun(RunFolder Folder, TrainConfig Config, IGenerativeModel Model, int Epoch)
{
    /// <summary>Opens <paramref name="path"/> and loads its checkpoint on the native engine; clear errors for a missing or broken run.</summary>
    public static TrainedRun Load(string path) => Load(path, NativeContext.Cpu);

    /// <summary>
    /// Opens <paramref name="path"/> and loads its checkpoint into a model in <paramref name="context"/> (any backend reads a
    /// checkpoint written by any other: the tensor names and layout are the same).
    /// </summary>
    public static TrainedRun Load(string path, IComputeContext context)
    {
        var folder = RunFolder.Open(path);
        var config = folder.ReadConfig().Validate();
        var model = context.Apply(new Builder(config));
        int epoch = folder.LoadCheckpoint(model);
        model.Eval();
        return new TrainedRun(folder, config, model, epoch);
    }

    /// <summary>
    /// The images of a split as the model sees them: binarized with <paramref name="binarization"/> (default:
    /// the run's) by <paramref name="seed"/> (default: the run's seed): the test split uses its fixed sample, a dynamically
    /// binarized training split the first epoch's sample.
    /// </summary>
    public float[] Images(Dataset data, Binarization? binarization = null, ulong? seed = null) =>
        new Binarizer(data, binarization ?? Config.EffectiveBinarization, seed ?? Config.Seed).Epoch(0);

    sealed record Builder(TrainConfig Config) : IContextFunction<IGenerativeModel>
    {
        public IGenerativeModel Invoke<T>(ComputeContext<T> context) where T : class, ITensor<T> =>
            ModelFactory.Build(context, Config, Mnist.Pixels, new Rng(Config.Seed, TrainStreams.Init));
    }
}
