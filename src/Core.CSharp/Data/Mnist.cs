using System.Diagnostics;

namespace VaeResearch.Data;

/// <summary>MNIST: 60,000 training and 10,000 test images of 28 x 28 grey levels, labels 0-9.</summary>
public static class Mnist
{
    /// <summary>Data set name.</summary>
    public const string Name = "mnist";

    /// <summary>Image height.</summary>
    public const int Rows = 28;

    /// <summary>Image width.</summary>
    public const int Columns = 28;

    /// <summary>Pixels per image.</summary>
    public const int Pixels = Rows * Columns;

    /// <summary>Number of classes.</summary>
    public const int Classes = 10;

    /// <summary>Training images in the original files.</summary>
    public const int TrainCount = 60_000;

    /// <summary>Test images.</summary>
    public const int TestCount = 10_000;

    /// <summary>
    /// Loads MNIST from <paramref name="dataDirectory"/> (null: <see cref="DataDirectory.Default"/>),
    /// fetching it first when missing, and checks every file's format and SHA-256.
    /// </summary>
    /// <param name="dataDirectory">The data folder; null for <c>VAE_DATA</c> or the per-user cache.</param>
    /// <param name="validation">How many examples to carve from the end of train as validation (0: none).</param>
    /// <param name="progress">Receives progress lines (download steps, the load time); null: silent.</param>
    /// <returns>Train [60000 - validation, 784], validation [validation, 784] or null, test [10000, 784]; grey levels byte / 255.</returns>
    /// <exception cref="VaeResearchException">The data cannot be fetched, or a file is corrupt.</exception>
    public static DataSplits Load(string? dataDirectory = null, int validation = 0, Action<string>? progress = null) =>
        Load(new MnistFetcher(dataDirectory) { Progress = progress }, validation);

    /// <summary>As <see cref="Load(string?, int, Action{string}?)"/> with a configured fetcher.</summary>
    public static DataSplits Load(MnistFetcher fetcher, int validation = 0)
    {
        ArgumentNullException.ThrowIfNull(fetcher);
        DataSplits.CheckValidation(validation, TrainCount);
        var clock = Stopwatch.StartNew();
        var paths = fetcher.EnsurePresent();
        var arrays = ReadAll(paths);
        var (trainImages, trainLabels, testImages, testLabels) = (arrays[0], arrays[1], arrays[2], arrays[3]);
        CheckLabels(trainLabels);
        CheckLabels(testLabels);

        int kept = TrainCount - validation;
        var train = Build(SplitKind.Train, trainImages, trainLabels, 0, kept);
        var valid = validation == 0 ? null : Build(SplitKind.Validation, trainImages, trainLabels, kept, validation);
        var test = Build(SplitKind.Test, testImages, testLabels, 0, TestCount);
        fetcher.Progress?.Invoke($"MNIST: loaded from {fetcher.Directory} in {clock.Elapsed.TotalSeconds:0.00} s");
        return new DataSplits(train, valid, test);
    }

    /// <summary>Reads and verifies the four files in parallel; the first file's error (in file order) is rethrown as is.</summary>
    static IdxArray[] ReadAll(string[] paths)
    {
        var arrays = new IdxArray[paths.Length];
        var errors = new Exception?[paths.Length];
        Parallel.For(0, paths.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Min(paths.Length, Engine.Parallelism.Threads) }, i =>
        {
            try { arrays[i] = MnistFile.All[i].ReadVerified(paths[i]); }
            catch (Exception e) { errors[i] = e; }
        });
        if (errors.FirstOrDefault(e => e is not null) is { } first)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        return arrays;
    }

    static void CheckLabels(IdxArray labels)
    {
        int bad = Array.FindIndex(labels.Data, b => b >= Classes);
        if (bad >= 0)
            throw new FileFormatException(labels.Path, $"label {bad}", $"a digit 0-{Classes - 1}", labels.Data[bad].ToString());
    }

    static Dataset Build(SplitKind split, IdxArray images, IdxArray labels, int start, int count)
    {
        var grey = new float[count * Pixels];
        var source = images.Data;
        Engine.Parallelism.For(grey.Length, 1 << 18, (from, to) =>
        {
            int offset = start * Pixels;
            for (int i = from; i < to; i++) grey[i] = source[offset + i] / 255f;
        });
        var y = new int[count];
        for (int i = 0; i < count; i++) y[i] = labels.Data[start + i];
        return new Dataset(Name, split, grey, y, Rows, Columns, Classes);
    }
}
