using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace VaeResearch.IO;

/// <summary>
/// NumPy <c>.npy</c> files (format 1.0) of float32 in C order, as <c>numpy.save</c> writes and <c>numpy.load</c> reads.
/// </summary>
public static partial class Npy
{
    static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Writes <paramref name="data"/> with <paramref name="shape"/> to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, ReadOnlySpan<float> data, params int[] shape)
    {
        long size = 1;
        foreach (int d in shape) size *= d;
        if (size != data.Length) throw new ArgumentException($"shape ({string.Join(", ", shape)}) needs {size} values, got {data.Length}");
        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        // NOTE: magic (6) + version (2) + length (2) + header + '\n' is padded with spaces to a multiple of 64.
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        var bytes = new byte[10 + header.Length + data.Length * 4L];
        Magic.CopyTo(bytes, 0);
        bytes[6] = 1;
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        Encoding.ASCII.GetBytes(header, bytes.AsSpan(10));
        var body = bytes.AsSpan(10 + header.Length);
        for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(body[(4 * i)..], data[i]);
        var copy = bytes;
        AtomicFile.Write(path, s => s.Write(copy));
    }

    /// <summary>Reads a float32 (or float64, converted) C-order <c>.npy</c> file; anything else is a <see cref="FileFormatException"/>.</summary>
    public static (float[] Data, int[] Shape) Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VaeResearchException($"cannot read {path}: {e.Message}", e);
        }
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw new FileFormatException(path, "magic", "\\x93NUMPY", "other bytes (not a .npy file)");
        int major = bytes[6];
        int headerLength, start;
        if (major == 1) { headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)); start = 10; }
        else if (major is 2 or 3 && bytes.Length >= 12) { headerLength = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8))); start = 12; }
        else throw new FileFormatException(path, "version", "1.0, 2.0 or 3.0", $"{major}.{bytes[7]}");
        if (headerLength > bytes.Length - start) throw new FileFormatException(path, "header length", $"at most {bytes.Length - start}", headerLength.ToString(CultureInfo.InvariantCulture));
        var header = Encoding.ASCII.GetString(bytes, start, headerLength);
        var descr = DescrPattern().Match(header);
        var order = FortranPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success) throw new FileFormatException(path, "descr", "'<f4' or '<f8'", "no descr entry");
        if (!order.Success || order.Groups[1].Value != "False") throw new FileFormatException(path, "fortran_order", "False (C order)", order.Success ? order.Groups[1].Value : "missing");
        if (!shapeMatch.Success) throw new FileFormatException(path, "shape", "a tuple of integers", "missing");
        var shape = shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : throw new FileFormatException(path, "shape", "non-negative integers", s))
            .ToArray();
        long count = 1;
        foreach (int d in shape) count = checked(count * d);
        int width = descr.Groups[1].Value switch
        {
            "<f4" => 4,
            "<f8" => 8,
            var other => throw new FileFormatException(path, "descr", "'<f4' (float32) or '<f8' (float64)", $"'{other}'"),
        };
        long available = bytes.Length - start - headerLength;
        if (available != count * width)
            throw new FileFormatException(path, "data", $"{count * width} bytes for shape ({string.Join(", ", shape)})", $"{available} bytes");
        var data = new float[count];
        var body = bytes.AsSpan(start + headerLength);
        for (long i = 0; i < count; i++)
            data[i] = width == 4
                ? BinaryPrimitives.ReadSingleLittleEndian(body[(int)(4 * i)..])
                : (float)BinaryPrimitives.ReadDoubleLittleEndian(body[(int)(8 * i)..]);
        return (data, shape);
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
