namespace VaeResearch.Data;

/// <summary>The contents of an IDX file of unsigned bytes: its shape, its values and its checksum.</summary>
/// <remarks>
/// IDX (LeCun et al.) is a big-endian header of a 4-byte magic number and one 32-bit size per
/// dimension, followed by the values in row-major order. MNIST images are [count, 28, 28] and
/// labels are [count].
/// </remarks>
public sealed class IdxArray
{
    internal IdxArray(string path, int[] shape, byte[] data, string sha256)
    {
        Path = path;
        Shape = shape;
        Data = data;
        Sha256 = sha256;
    }

    /// <summary>The file the array was read from (as given to the reader).</summary>
    public string Path { get; }

    /// <summary>The sizes of the dimensions, outermost first (e.g. [60000, 28, 28]).</summary>
    public int[] Shape { get; }

    /// <summary>The values in row-major order; length is the product of <see cref="Shape"/>.</summary>
    public byte[] Data { get; }

    /// <summary>Lower-case hex SHA-256 of the whole uncompressed file (header and values).</summary>
    public string Sha256 { get; }

    /// <summary>The size of the outermost dimension (the number of examples).</summary>
    public int Count => Shape.Length == 0 ? 0 : Shape[0];
}
