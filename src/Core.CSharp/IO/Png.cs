using System.Buffers.Binary;
using System.IO.Compression;

namespace VaeResearch.IO;

/// <summary>A minimal PNG writer (8-bit greyscale or RGB, zlib-compressed) on System.IO.Compression.</summary>
public static class Png
{
    static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Writes a greyscale image from values in [0, 1] (clamped), row-major [height, width], atomically.</summary>
    public static void SaveGrey(string path, ReadOnlySpan<float> pixels, int width, int height)
    {
        if (pixels.Length != width * height) throw new ArgumentException($"{pixels.Length} pixels for a {width} x {height} image");
        var bytes = new byte[pixels.Length];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = ToByte(pixels[i]);
        Save(path, bytes, width, height, channels: 1);
    }

    /// <summary>Writes an RGB image from bytes [height, width, 3], atomically.</summary>
    public static void SaveRgb(string path, ReadOnlySpan<byte> rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3) throw new ArgumentException($"{rgb.Length} bytes for a {width} x {height} RGB image");
        Save(path, rgb.ToArray(), width, height, channels: 3);
    }

    /// <summary>Maps [0, 1] to 0..255 with rounding; NaN becomes 0.</summary>
    public static byte ToByte(float v) => float.IsNaN(v) ? (byte)0 : (byte)Math.Clamp(MathF.Round(v * 255f), 0f, 255f);

    static void Save(string path, byte[] samples, int width, int height, int channels)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"image size must be positive, got {width} x {height}");
        int stride = width * channels;
        var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (int y = 0; y < height; y++)
            {
                z.WriteByte(0); // filter: none
                z.Write(samples, y * stride, stride);
            }
        }
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[9] = (byte)(channels == 1 ? 0 : 2); // colour type: greyscale or truecolour
        AtomicFile.Write(path, s =>
        {
            s.Write(Signature);
            Chunk(s, "IHDR", header);
            Chunk(s, "IDAT", raw.ToArray());
            Chunk(s, "IEND", []);
        });
    }

    static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        s.Write(word);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        uint crc = Crc32(Crc32(0xFFFFFFFFu, typeBytes), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(word, crc);
        s.Write(word);
    }

    static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>Continues the PNG (ISO 3309) CRC-32 register <paramref name="crc"/> over <paramref name="bytes"/>.</summary>
    public static uint Crc32(uint crc, ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }
}
