using VaeResearch.Data;
using VaeResearch.Engine;

namespace VaeResearch.Training;

/// <summary>
/// The images of a run's per-epoch activity (<see cref="TrainConfig.ActivityPopulation"/>): the test set, or N
/// training images as Burda et al. (2015) measure it ("the first 500 training examples").
/// </summary>
/// <remarks>
/// Training images are binarized as the model sees them in its first epoch: the <see cref="Binarizer"/>'s epoch-0
/// sample of the run's training split (its dynamic binarization resamples every epoch, so one fixed sample keeps the
/// population the same from epoch to epoch; it is the sample <c>vae activity RUN --split train</c> uses). The
/// population is drawn from the training set the run trains on, i.e. after <c>train_subset</c>.
/// </remarks>
public static class ActivitySample
{
    /// <summary>
    /// The training-image indices of the population, ascending, or null for the test population:
    /// [0, N) for train_first; for train_random the first N of a permutation of [0, <paramref name="trainCount"/>)
    /// drawn from the run's seed (stream <see cref="TrainStreams.ActivitySubset"/>), sorted.
    /// </summary>
    /// <exception cref="ConfigException">activity_n exceeds the training images.</exception>
    public static int[]? TrainIndices(TrainConfig config, int trainCount)
    {
        if (config.ActivityPopulation == ActivityPopulation.Test) return null;
        int n = config.ActivityN ?? throw new ConfigException("activity_n", "is required by the training-image activity populations");
        if (n > trainCount)
            throw new ConfigException("activity_n", $"must be at most the {trainCount} training images, got {n}");
        if (config.ActivityPopulation == ActivityPopulation.TrainFirst) return Enumerable.Range(0, n).ToArray();
        var order = Enumerable.Range(0, trainCount).ToArray();
        new Rng(config.Seed, TrainStreams.ActivitySubset).Shuffle<int>(order);
        var chosen = order[..n];
        Array.Sort(chosen);
        return chosen;
    }

    /// <summary>
    /// The population's images as the model sees them, row-major [Count, N]: <paramref name="testImages"/> (the
    /// run's binarized test set) for the test population, else the chosen training images' epoch-0 sample.
    /// </summary>
    public static (float[] Images, int Count) Images(TrainConfig config, DataSplits data, float[] testImages)
    {
        var indices = TrainIndices(config, data.Train.Count);
        if (indices is null) return (testImages, data.Test.Count);
        var images = new float[(long)indices.Length * data.Train.Dim];
        new Binarizer(data.Train, config.EffectiveBinarization, config.Seed).Fill(indices, 0, images);
        return (images, indices.Length);
    }
}
