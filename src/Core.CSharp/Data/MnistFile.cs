namespace VaeResearch.Data;

/// <summary>One of the four original MNIST files: its standard name, rank and SHA-256.</summary>
/// <param name="Name">Standard file name without <c>.gz</c>, e.g. <c>train-images-idx3-ubyte</c>.</param>
/// <param name="IsImages">True for the [count, 28, 28] image files, false for the [count] label files.</param>
/// <param name="Count">Number of examples in the file.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the uncompressed file.</param>
public sealed record MnistFile(string Name, bool IsImages, int Count, string Sha256)
{
    /// <summary>Training images, 60,000 x 28 x 28.</summary>
    public static MnistFile TrainImages { get; } =
        new("train-images-idx3-ubyte", true, 60_000, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db");

    /// <summary>Training labels, 60,000.</summary>
    public static MnistFile TrainLabels { get; } =
        new("train-labels-idx1-ubyte", false, 60_000, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5");

    /// <summary>Test images, 10,000 x 28 x 28.</summary>
    public static MnistFile TestImages { get; } =
        new("t10k-images-idx3-ubyte", true, 10_000, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7");

    /// <summary>Test labels, 10,000.</summary>
    public static MnistFile TestLabels { get; } =
        new("t10k-labels-idx1-ubyte", false, 10_000, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2");

    /// <summary>The four files in the order train images, train labels, test images, test labels.</summary>
    public static IReadOnlyList<MnistFile> All { get; } = [TrainImages, TrainLabels, TestImages, TestLabels];

    /// <summary>The compressed name a user may use instead (<c>Name.gz</c>).</summary>
    public string GzipName => Name + ".gz";

    /// <summary>
    /// The file in <paramref name="dataDirectory"/> under its raw name, else under its <c>.gz</c> name;
    /// null when neither exists.
    /// </summary>
    public string? Find(string dataDirectory)
    {
        var raw = Path.Combine(dataDirectory, Name);
        if (File.Exists(raw)) return raw;
        var gz = Path.Combine(dataDirectory, GzipName);
        return File.Exists(gz) ? gz : null;
    }

    /// <summary>
    /// Reads <paramref name="path"/> as this file (raw or gzip) and checks its format, dimensions and
    /// SHA-256.
    /// </summary>
    /// <exception cref="FileFormatException">The file is not an IDX file of the expected shape.</exception>
    /// <exception cref="VaeResearchException">The contents differ from the original MNIST file.</exception>
    public IdxArray ReadVerified(string path)
    {
        var array = IsImages ? Idx.ReadImages(path) : Idx.ReadLabels(path);
        var dimensionNames = IsImages ? new[] { "count", "rows", "columns" } : ["count"];
        int[] expected = IsImages ? [Count, Mnist.Rows, Mnist.Columns] : [Count];
        for (int d = 0; d < expected.Length; d++)
            if (array.Shape[d] != expected[d])
                throw new FileFormatException(path, $"dimension {d} ({dimensionNames[d]})", $"{expected[d]} ({Name})", array.Shape[d].ToString());
        if (array.Sha256 != Sha256)
            throw new VaeResearchException(ChecksumMessage(path, array.Sha256) +
                " The file is corrupt or not the original MNIST: delete it and run `vae data fetch` to download a verified copy.");
        return array;
    }

    internal string ChecksumMessage(string path, string actual) =>
        $"{path}: SHA-256 checksum mismatch: expected {Sha256} ({Name}), found {actual}.";
}
