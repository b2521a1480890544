using System.Collections.ObjectModel;
using System.Runtime.InteropServices;

namespace VaeResearch.Engine;

/// <summary>A named float32 tensor as stored in a safetensors file.</summary>
/// <param name="Name">The tensor's name, e.g. <c>encoder.hidden.0.weight</c>; non-empty and unique within a file.</param>
/// <param name="Shape">The dimensions, outermost first; empty for a scalar.</param>
/// <param name="Data">The values in C (row-major) order; its length is the product of <paramref name="Shape"/>.</param>
public sealed record NamedTensor(string Name, int[] Shape, float[] Data);

/// <summary>The tensors and metadata read from a safetensors file.</summary>
/// <remarks>Produced by <see cref="Safetensors.Load"/> and <see cref="Safetensors.Parse"/>.</remarks>
public sealed class SafetensorsContent
{
    readonly Dictionary<string, NamedTensor> byName;

    internal SafetensorsContent(List<NamedTensor> tensors, Dictionary<string, string> metadata, string source)
    {
        byName = new Dictionary<string, NamedTensor>(tensors.Count, StringComparer.Ordinal);
        foreach (var t in tensors) byName.Add(t.Name, t);
        Tensors = tensors.AsReadOnly();
        Metadata = new ReadOnlyDictionary<string, string>(metadata);
        Source = source;
    }

    /// <summary>The tensors in file order (ascending data offset).</summary>
    public IReadOnlyList<NamedTensor> Tensors { get; }

    /// <summary>The <c>__metadata__</c> entries (string to string); empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The file path (or the name given to <see cref="Safetensors.Parse"/>) used in error messages.</summary>
    public string Source { get; }

    /// <summary>Whether the file has a tensor called <paramref name="name"/>.</summary>
    public bool Contains(string name) => byName.ContainsKey(name);

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="FileFormatException">The file has no tensor of that name; the message names it.</exception>
    public NamedTensor this[string name] =>
        byName.TryGetValue(name, out var tensor) ? tensor : throw Missing(name);

    /// <summary>The tensor called <paramref name="name"/>, checked to have shape <paramref name="expectedShape"/>.</summary>
    /// <param name="name">The tensor's name.</param>
    /// <param name="expectedShape">The shape the caller needs, e.g. <c>[out, in]</c> for a linear weight; none for a scalar.</param>
    /// <exception cref="FileFormatException">
    /// The tensor is missing, or its shape differs; the message names the tensor, the expected and the found shape.
    /// </exception>
    public NamedTensor Get(string name, params int[] expectedShape)
    {
        ArgumentNullException.ThrowIfNull(expectedShape);
        var tensor = this[name];
        if (!tensor.Shape.AsSpan().SequenceEqual(expectedShape))
            throw new FileFormatException(Source, $"tensor {SafetensorsText.Quote(name)} shape",
                SafetensorsText.Shape(expectedShape), SafetensorsText.Shape(tensor.Shape));
        return tensor;
    }

    FileFormatException Missing(string name)
    {
        const int Listed = 8;
        string found = Tensors.Count == 0
            ? "no tensors in the file"
            : $"no such tensor; the file has {Tensors.Count}: "
              + string.Join(", ", Tensors.Take(Listed).Select(t => SafetensorsText.Quote(t.Name)))
              + (Tensors.Count > Listed ? ", ..." : "");
        return new FileFormatException(Source, $"tensor {SafetensorsText.Quote(name)}", "a tensor of that name", found);
    }
}

/// <summary>
/// Reads and writes the Hugging Face safetensors format for float32 tensors (checkpoints).
/// </summary>
/// <remarks>
/// Layout: an 8-byte little-endian u64 header length N; N bytes of UTF-8 JSON mapping each tensor name to
/// <c>{"dtype":"F32","shape":[...],"data_offsets":[begin,end]}</c>, plus an optional
/// <c>"__metadata__"</c> object of strings; then the data buffer, offsets relative to its start.
/// Values are little-endian F32 in C order. Only F32 is supported. The writer lays the tensors out
/// contiguously in the order given and pads the header with spaces to a multiple of 8 bytes, as the
/// reference writer does; the reader checks every field and rejects anything malformed with a
/// <see cref="FileFormatException"/> that names the file and the field.
/// </remarks>
public static class Safetensors
{
    /// <summary>
    /// Writes <paramref name="tensors"/> (in order) and <paramref name="metadata"/> to <paramref name="path"/> atomically.
    /// </summary>
    /// <remarks>
    /// The file is written to a temporary file in the same directory, flushed to disk and then renamed over
    /// <paramref name="path"/>; on any failure the temporary file is deleted and an existing file at
    /// <paramref name="path"/> is left untouched. All arguments are validated before anything is written.
    /// </remarks>
    /// <exception cref="ArgumentException">
    /// A name is null, empty, not well-formed UTF-16, the reserved <c>__metadata__</c> or repeated; a shape has a
    /// negative dimension or does not match its data length; a metadata key or value is null or not well-formed;
    /// or the header would exceed 100 MB.
    /// </exception>
    /// <exception cref="VaeResearchException">The file could not be written (I/O error, permissions, missing directory).</exception>
    public static void Save(string path, IEnumerable<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var plan = SafetensorsWriter.Plan(tensors, metadata, long.MaxValue);
        string full = System.IO.Path.GetFullPath(path);
        string fileName = System.IO.Path.GetFileName(full);
        if (fileName.Length == 0) throw new ArgumentException($"{path}: expected a file path, not a directory", nameof(path));
        string directory = System.IO.Path.GetDirectoryName(full) ?? ".";
        // NOTE: same directory as the target, so the final File.Move is a rename on one file system (atomic).
        string temp = System.IO.Path.Combine(directory, $".{fileName}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                plan.WriteTo(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e)
        {
            TryDelete(temp);
            if (e is IOException or UnauthorizedAccessException)
                throw new VaeResearchException($"{path}: cannot write the safetensors file: {e.Message}", e);
            throw;
        }
    }

    /// <summary>The safetensors bytes for <paramref name="tensors"/> (in order) and <paramref name="metadata"/>.</summary>
    /// <exception cref="ArgumentException">
    /// As for <see cref="Save"/>, and when the result would not fit in one array.
    /// </exception>
    public static byte[] Serialize(IEnumerable<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var plan = SafetensorsWriter.Plan(tensors, metadata, Array.MaxLength);
        var bytes = new byte[plan.TotalLength];
        using (var stream = new MemoryStream(bytes, writable: true)) plan.WriteTo(stream);
        return bytes;
    }

    /// <summary>Reads the safetensors file at <paramref name="path"/>.</summary>
    /// <remarks>
    /// The header is validated completely before any tensor data is allocated, so a corrupt file cannot
    /// cause a large allocation; tensor data is read straight into the returned arrays.
    /// </remarks>
    /// <exception cref="FileFormatException">The file is not a valid F32 safetensors file; the message names the field.</exception>
    /// <exception cref="VaeResearchException">The file could not be read (missing, permissions, I/O error).</exception>
    public static SafetensorsContent Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            long length = stream.Length;
            Span<byte> prefix = stackalloc byte[8];
            int got = stream.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false);
            long headerLength = SafetensorsHeader.ReadHeaderLength(prefix[..got], length, path);
            var headerBytes = new byte[headerLength];
            stream.ReadExactly(headerBytes);
            var header = SafetensorsHeader.Parse(headerBytes, length - 8 - headerLength, path);
            // NOTE: the header check guarantees the entries tile the buffer in this order, so the data
            // can be read sequentially with no seeking.
            var tensors = new List<NamedTensor>(header.Entries.Count);
            foreach (var entry in header.Entries)
            {
                var data = new float[entry.Count];
                stream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
                SafetensorsHeader.FromLittleEndian(data);
                tensors.Add(new NamedTensor(entry.Name, entry.Shape, data));
            }
            return new SafetensorsContent(tensors, header.Metadata, path);
        }
        catch (EndOfStreamException e)
        {
            // NOTE: only reachable if the file shrank while being read: the length was checked up front.
            throw new FileFormatException(path, "data buffer", "as many bytes as the header declares", "a truncated file", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new VaeResearchException($"{path}: cannot read the safetensors file: {e.Message}", e);
        }
    }

    /// <summary>Reads safetensors content from <paramref name="bytes"/>.</summary>
    /// <param name="bytes">The whole file.</param>
    /// <param name="source">The name to use in error messages and <see cref="SafetensorsContent.Source"/>.</param>
    /// <exception cref="FileFormatException">The bytes are not a valid F32 safetensors file; the message names the field.</exception>
    public static SafetensorsContent Parse(ReadOnlySpan<byte> bytes, string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        long headerLength = SafetensorsHeader.ReadHeaderLength(bytes[..Math.Min(8, bytes.Length)], bytes.Length, source);
        int dataStart = 8 + (int)headerLength;
        var header = SafetensorsHeader.Parse(bytes[8..dataStart], bytes.Length - dataStart, source);
        var tensors = new List<NamedTensor>(header.Entries.Count);
        foreach (var entry in header.Entries)
        {
            var data = new float[entry.Count];
            bytes.Slice(dataStart + (int)entry.Begin, (int)(entry.End - entry.Begin)).CopyTo(MemoryMarshal.AsBytes(data.AsSpan()));
            SafetensorsHeader.FromLittleEndian(data);
            tensors.Add(new NamedTensor(entry.Name, entry.Shape, data));
        }
        return new SafetensorsContent(tensors, header.Metadata, source);
    }

    static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the original error is the one worth reporting.
        }
    }
}
