using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace VaeResearch.Engine;

/// <summary>
/// A validated plan for writing a safetensors file: the padded header and the tensors in layout order.
/// </summary>
internal sealed class SafetensorsWriter
{
    readonly NamedTensor[] tensors;
    readonly byte[] header; // padded with spaces to a multiple of 8 bytes

    SafetensorsWriter(NamedTensor[] tensors, byte[] header, long totalLength)
    {
        this.tensors = tensors;
        this.header = header;
        TotalLength = totalLength;
    }

    /// <summary>The file size in bytes: 8 + header + data.</summary>
    internal long TotalLength { get; }

    /// <summary>
    /// Validates the arguments (<see cref="ArgumentException"/> on any problem) and builds the header.
    /// </summary>
    internal static SafetensorsWriter Plan(IEnumerable<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata, long maxTotalLength)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToArray();
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < list.Length; i++)
        {
            var t = list[i] ?? throw new ArgumentException($"tensors[{i}] is null", nameof(tensors));
            if (string.IsNullOrEmpty(t.Name))
                throw new ArgumentException($"tensors[{i}] has an empty name", nameof(tensors));
            string quoted = SafetensorsText.Quote(t.Name);
            if (t.Name == SafetensorsHeader.MetadataKey)
                throw new ArgumentException($"tensors[{i}]: the name {quoted} is reserved for metadata", nameof(tensors));
            if (!IsWellFormed(t.Name))
                throw new ArgumentException($"tensor {quoted}: the name is not well-formed UTF-16 (lone surrogate)", nameof(tensors));
            if (!names.Add(t.Name))
                throw new ArgumentException($"tensor {quoted} appears more than once", nameof(tensors));
            if (t.Shape is null) throw new ArgumentException($"tensor {quoted} has a null shape", nameof(tensors));
            if (t.Data is null) throw new ArgumentException($"tensor {quoted} has null data", nameof(tensors));
            long count = 1;
            foreach (int d in t.Shape)
            {
                if (d < 0)
                    throw new ArgumentException($"tensor {quoted} has a negative dimension in shape {SafetensorsText.Shape(t.Shape)}", nameof(tensors));
                // NOTE: saturate instead of overflowing; any count above the data length is a mismatch anyway.
                count = count > int.MaxValue ? count : count * d;
            }
            // NOTE: a zero dimension empties the tensor even after the product saturated.
            if (Array.IndexOf(t.Shape, 0) >= 0) count = 0;
            if (count != t.Data.Length)
                throw new ArgumentException(
                    $"tensor {quoted}: shape {SafetensorsText.Shape(t.Shape)} has {(count > int.MaxValue ? "more than " + int.MaxValue : count)} elements but the data has {t.Data.Length}",
                    nameof(tensors));
        }
        if (metadata is not null)
        {
            foreach (var (key, value) in metadata)
            {
                if (key is null || value is null)
                    throw new ArgumentException("metadata keys and values must not be null", nameof(metadata));
                if (!IsWellFormed(key) || !IsWellFormed(value))
                    throw new ArgumentException($"metadata {SafetensorsText.Quote(key)}: not well-formed UTF-16 (lone surrogate)", nameof(metadata));
            }
        }

        var json = new ArrayBufferWriter<byte>();
        long offset = 0;
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions
        {
            // NOTE: keep non-ASCII names readable (raw UTF-8) instead of \u escapes; readers decode both.
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            Indented = false,
        }))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            foreach (var t in list)
            {
                writer.WriteStartObject(t.Name);
                writer.WriteString("dtype", "F32");
                writer.WriteStartArray("shape");
                foreach (int d in t.Shape) writer.WriteNumberValue(d);
                writer.WriteEndArray();
                long bytes = 4L * t.Data.Length;
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + bytes);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += bytes;
            }
            writer.WriteEndObject();
        }
        // NOTE: pad with spaces (valid trailing JSON whitespace) so the data buffer starts 8-byte aligned,
        // as the reference writer does.
        int padded = (json.WrittenCount + 7) / 8 * 8;
        if (padded > SafetensorsHeader.MaxHeaderBytes)
            throw new ArgumentException(
                $"the header would be {padded} bytes; readers accept at most {SafetensorsHeader.MaxHeaderBytes} (shorten names or metadata)",
                nameof(metadata));
        var header = new byte[padded];
        json.WrittenSpan.CopyTo(header);
        header.AsSpan(json.WrittenCount).Fill((byte)' ');
        long total = 8 + (long)padded + offset;
        if (total > maxTotalLength)
            throw new ArgumentException($"the serialized size ({total} bytes) exceeds the limit of {maxTotalLength} bytes; use Save", nameof(tensors));
        return new SafetensorsWriter(list, header, total);
    }

    /// <summary>Writes the length prefix, the header and the data (little-endian F32) to <paramref name="stream"/>.</summary>
    internal void WriteTo(Stream stream)
    {
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
        stream.Write(prefix);
        stream.Write(header);
        byte[]? chunk = BitConverter.IsLittleEndian ? null : new byte[1 << 16];
        foreach (var t in tensors)
        {
            if (chunk is null)
            {
                stream.Write(MemoryMarshal.AsBytes(t.Data.AsSpan()));
                continue;
            }
            // NOTE: big-endian machines: convert through a bounded buffer so the file is still little-endian.
            for (int start = 0; start < t.Data.Length; start += chunk.Length / 4)
            {
                int n = Math.Min(chunk.Length / 4, t.Data.Length - start);
                for (int i = 0; i < n; i++) BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(4 * i), t.Data[start + i]);
                stream.Write(chunk, 0, 4 * n);
            }
        }
    }

    static bool IsWellFormed(string s)
    {
        ReadOnlySpan<char> rest = s;
        while (!rest.IsEmpty)
        {
            if (Rune.DecodeFromUtf16(rest, out _, out int consumed) != OperationStatus.Done) return false;
            rest = rest[consumed..];
        }
        return true;
    }
}
