namespace VaeResearch.Data;

/// <summary>Which part of a data set an example set is; it also selects the binarization stream.</summary>
public enum SplitKind
{
    /// <summary>Training examples.</summary>
    Train,
    /// <summary>Validation examples (carved from the end of train).</summary>
    Validation,
    /// <summary>Test examples.</summary>
    Test,
}

/// <summary>
/// A set of images with grey levels in [0, 1] (row-major [Count, Dim]) and integer labels.
/// </summary>
/// <remarks>
/// For MNIST the grey levels are byte / 255. For the synthetic data set they are the Bernoulli means
/// sigmoid(f(z)) and <see cref="Latents"/> holds the true z of every example.
/// </remarks>
public sealed class Dataset
{
    /// <summary>Wraps arrays without copying them.</summary>
    /// <param name="name">Data set name, e.g. <c>mnist</c> or <c>synthetic-d5-seed0</c>.</param>
    /// <param name="split">Which split these examples are.</param>
    /// <param name="images">Grey levels in [0, 1], [count, height * width].</param>
    /// <param name="labels">One label in [0, classes) per example, [count].</param>
    /// <param name="height">Image height in pixels.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="classes">Number of distinct labels.</param>
    /// <param name="latents">The true latent vectors [count, trueLatentDimension] of a synthetic set, else null.</param>
    /// <param name="trueLatentDimension">The dimension of <paramref name="latents"/> (0 when unknown).</param>
    public Dataset(string name, SplitKind split, float[] images, int[] labels, int height, int width, int classes,
        float[]? latents = null, int trueLatentDimension = 0)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (height <= 0 || width <= 0) throw new ArgumentException($"image size must be positive, got {height} x {width}");
        int dim = height * width;
        if (images.Length != labels.Length * dim)
            throw new ArgumentException($"{name} {split}: {images.Length} grey levels for {labels.Length} labels of {dim} pixels each");
        if ((latents is null) != (trueLatentDimension == 0) || (latents is not null && latents.Length != labels.Length * trueLatentDimension))
            throw new ArgumentException($"{name} {split}: latents must be [count, trueLatentDimension] or absent");
        Name = name;
        Split = split;
        Images = images;
        Labels = labels;
        Height = height;
        Width = width;
        Classes = classes;
        Latents = latents;
        TrueLatentDimension = trueLatentDimension;
    }

    /// <summary>Data set name, e.g. <c>mnist</c> or <c>synthetic-d5-seed0</c>.</summary>
    public string Name { get; }

    /// <summary>Which split these examples are.</summary>
    public SplitKind Split { get; }

    /// <summary>Grey levels in [0, 1], row-major [<see cref="Count"/>, <see cref="Dim"/>].</summary>
    public float[] Images { get; }

    /// <summary>Labels in [0, <see cref="Classes"/>), [<see cref="Count"/>].</summary>
    public int[] Labels { get; }

    /// <summary>Image height in pixels (28 for MNIST).</summary>
    public int Height { get; }

    /// <summary>Image width in pixels (28 for MNIST).</summary>
    public int Width { get; }

    /// <summary>Number of distinct labels (10 for MNIST).</summary>
    public int Classes { get; }

    /// <summary>True latent vectors [<see cref="Count"/>, <see cref="TrueLatentDimension"/>] of a synthetic set, else null.</summary>
    public float[]? Latents { get; }

    /// <summary>The true latent dimension d of a synthetic set; 0 when unknown (MNIST).</summary>
    public int TrueLatentDimension { get; }

    /// <summary>Number of examples.</summary>
    public int Count => Labels.Length;

    /// <summary>Pixels per example (<see cref="Height"/> x <see cref="Width"/>).</summary>
    public int Dim => Height * Width;

    /// <summary>The grey levels of example <paramref name="index"/>, [Dim].</summary>
    public ReadOnlySpan<float> Image(int index) => Images.AsSpan(checked(index * Dim), Dim);

    /// <summary>A copy of examples [start, start + count) as a set of kind <paramref name="split"/> (default: the same kind).</summary>
    public Dataset Slice(int start, int count, SplitKind? split = null)
    {
        if (start < 0 || count < 0 || start > Count - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"examples [{start}, {start} + {count}) are outside [0, {Count}) of {Name} {Split}");
        int d = TrueLatentDimension;
        return new Dataset(Name, split ?? Split, Images.AsSpan(start * Dim, count * Dim).ToArray(), Labels.AsSpan(start, count).ToArray(),
            Height, Width, Classes, Latents?.AsSpan(start * d, count * d).ToArray(), d);
    }

    /// <summary>The first <paramref name="count"/> examples (<c>--train-subset</c>, <c>--subset</c>); the set itself when count >= Count.</summary>
    public Dataset Take(int count)
    {
        if (count < 0) throw new VaeResearchException($"the subset size must be non-negative, got {count}");
        return count >= Count ? this : Slice(0, count);
    }

    /// <summary>How many examples carry each label, [<see cref="Classes"/>].</summary>
    public int[] ClassCounts()
    {
        var counts = new int[Classes];
        foreach (int label in Labels) counts[label]++;
        return counts;
    }

    /// <summary>The mean grey level over all pixels of all examples (accumulated in double).</summary>
    public double MeanGreyLevel()
    {
        double sum = 0;
        foreach (float v in Images) sum += v;
        return Images.Length == 0 ? 0 : sum / Images.Length;
    }
}
