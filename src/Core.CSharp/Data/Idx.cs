using System.IO.Compression;
using System.Security.Cryptography;

namespace VaeResearch.Data;

/// <summary>
/// Reader for IDX files of unsigned bytes (the MNIST format), raw or gzip-compressed.
/// </summary>
/// <remarks>
/// Every problem with the contents raises <see cref="FileFormatException"/> naming the file, the field
/// (<c>header</c>, <c>magic number</c>, <c>dimension i (name)</c>, <c>length</c>, <c>gzip data</c>)
/// and what was expected. The reader never allocates more than the data actually present (a header
/// that announces gigabytes for a short file fails on its length, not with an out-of-memory error),
/// and reads at most <see cref="ExtraBytesLimit"/> bytes past the announced end.
/// Gzip is recognised from the content (bytes 1f 8b), not from the file name.
/// </remarks>
public static class Idx
{
    /// <summary>Type code for unsigned bytes, the third byte of the magic number.</summary>
    public const byte UnsignedByteType = 0x08;

    /// <summary>How many bytes past the announced end the reader counts before reporting "more than".</summary>
    public const int ExtraBytesLimit = 1 << 20;

    const int InitialChunk = 1 << 22;
    static readonly string[] ImageDimensionNames = ["count", "rows", "columns"];
    static readonly string[] LabelDimensionNames = ["count"];

    /// <summary>Reads an IDX3 image file [count, rows, columns] (magic 0x00000803).</summary>
    /// <exception cref="FileFormatException">The contents are not a well-formed IDX3 file.</exception>
    public static IdxArray ReadImages(string path) => Read(path, ImageDimensionNames, "images");

    /// <summary>Reads an IDX1 label file [count] (magic 0x00000801).</summary>
    /// <exception cref="FileFormatException">The contents are not a well-formed IDX1 file.</exception>
    public static IdxArray ReadLabels(string path) => Read(path, LabelDimensionNames, "labels");

    /// <summary>
    /// Reads an IDX file of unsigned bytes with <paramref name="dimensions"/> dimensions from a seekable
    /// stream holding raw or gzip-compressed IDX; <paramref name="path"/> names it in errors.
    /// </summary>
    /// <exception cref="FileFormatException">The contents are not a well-formed IDX file of that rank.</exception>
    public static IdxArray Read(Stream stream, string path, int dimensions)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (dimensions is < 1 or > 255) throw new ArgumentOutOfRangeException(nameof(dimensions), dimensions, "an IDX file has 1 to 255 dimensions");
        var names = dimensions switch
        {
            1 => LabelDimensionNames,
            3 => ImageDimensionNames,
            _ => Enumerable.Range(0, dimensions).Select(i => i == 0 ? "count" : $"size {i}").ToArray(),
        };
        return Read(stream, path, names, dimensions == 3 ? "images" : dimensions == 1 ? "labels" : $"{dimensions}-D array");
    }

    static IdxArray Read(string path, string[] names, string what)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(file, path, names, what);
    }

    static IdxArray Read(Stream stream, string path, string[] names, string what)
    {
        if (!stream.CanSeek) throw new ArgumentException("the stream must be seekable (to recognise gzip)", nameof(stream));
        long start = stream.Position;
        Span<byte> sniff = stackalloc byte[2];
        int sniffed = ReadFully(stream, sniff);
        stream.Position = start;
        bool gzip = sniffed == 2 && sniff[0] == 0x1f && sniff[1] == 0x8b;
        if (!gzip) return Parse(stream, path, names, what, compressed: false);
        using var inflated = new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true);
        try
        {
            return Parse(inflated, path, names, what, compressed: true);
        }
        catch (InvalidDataException e)
        {
            throw new FileFormatException(path, "gzip data", "a valid gzip stream", e.Message, e);
        }
    }

    static IdxArray Parse(Stream input, string path, string[] names, string what, bool compressed)
    {
        int rank = names.Length;
        int headerLength = 4 + 4 * rank;
        string unit = compressed ? " (uncompressed)" : "";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        var header = new byte[headerLength];
        int got = ReadFully(input, header);
        hash.AppendData(header, 0, got);
        if (got < 4)
            throw new FileFormatException(path, "header", $"at least {headerLength} bytes (IDX {what})", $"{got} bytes{unit}");
        uint magic = ReadBigEndian(header, 0);
        uint expectedMagic = ((uint)UnsignedByteType << 8) | (uint)rank;
        if (magic != expectedMagic)
            throw new FileFormatException(path, "magic number",
                $"0x{expectedMagic:X8} (IDX {what}: unsigned bytes, {rank} dimension{(rank == 1 ? "" : "s")})",
                $"0x{magic:X8}{Describe(magic)}");
        if (got < headerLength)
            throw new FileFormatException(path, "header", $"{headerLength} bytes (magic number and {rank} dimension size{(rank == 1 ? "" : "s")})", $"{got} bytes{unit}");

        var shape = new int[rank];
        long payload = 1;
        bool tooLarge = false;
        for (int d = 0; d < rank; d++)
        {
            uint size = ReadBigEndian(header, 4 + 4 * d);
            if (size > int.MaxValue)
                throw new FileFormatException(path, $"dimension {d} ({names[d]})", "a size below 2^31", size.ToString());
            shape[d] = (int)size;
            if (!tooLarge)
            {
                payload *= size;
                if (payload > Array.MaxLength) tooLarge = true;
            }
        }
        bool empty = shape.Contains(0);
        if (tooLarge && !empty)
            throw new FileFormatException(path, "dimensions", $"at most {Array.MaxLength} values in all", string.Join(" x ", shape));
        if (empty) payload = 0;
        long expectedLength = headerLength + payload;
        string expectedText = $"{expectedLength} bytes{unit} ({headerLength}-byte header + {string.Join(" x ", shape)})";

        // NOTE: grow the buffer as data arrives, so a header announcing a huge array cannot force a huge allocation.
        var data = new byte[(int)Math.Min(payload, InitialChunk)];
        long filled = 0;
        while (filled < payload)
        {
            if (filled == data.Length)
                Array.Resize(ref data, (int)Math.Min(payload, Math.Max(2L * data.Length, InitialChunk)));
            int n = input.Read(data, (int)filled, data.Length - (int)filled);
            if (n == 0)
                throw new FileFormatException(path, "length", expectedText, $"{headerLength + filled} bytes{unit} (truncated)");
            hash.AppendData(data, (int)filled, n);
            filled += n;
        }

        var probe = new byte[4096];
        long extra = 0;
        while (extra <= ExtraBytesLimit)
        {
            int n = input.Read(probe, 0, probe.Length);
            if (n == 0) break;
            extra += n;
        }
        if (extra > 0)
        {
            string found = extra > ExtraBytesLimit ? $"more than {expectedLength + ExtraBytesLimit} bytes{unit}" : $"{expectedLength + extra} bytes{unit}";
            throw new FileFormatException(path, "length", expectedText, found + " (trailing data)");
        }
        return new IdxArray(path, shape, data, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    static string Describe(uint magic)
    {
        if (magic >> 16 != 0) return " (not an IDX file: the first two bytes must be zero)";
        uint type = (magic >> 8) & 0xFF;
        uint rank = magic & 0xFF;
        string typeName = type switch
        {
            0x08 => "unsigned bytes",
            0x09 => "signed bytes",
            0x0B => "16-bit integers",
            0x0C => "32-bit integers",
            0x0D => "32-bit floats",
            0x0E => "64-bit floats",
            _ => $"unknown type 0x{type:X2}",
        };
        string content = rank switch { 1 => ", labels?", 3 => ", images?", _ => "" };
        return $" ({typeName}, {rank} dimension{(rank == 1 ? "" : "s")}{content})";
    }

    static uint ReadBigEndian(byte[] bytes, int offset) =>
        ((uint)bytes[offset] << 24) | ((uint)bytes[offset + 1] << 16) | ((uint)bytes[offset + 2] << 8) | bytes[offset + 3];

    static int ReadFully(Stream input, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = input.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }
}
