using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace VaeResearch.Engine;

/// <summary>One validated header entry: a tensor's name, shape, element count and byte range in the data buffer.</summary>
internal sealed record SafetensorsEntry(string Name, int[] Shape, int Count, long Begin, long End, int Order);

/// <summary>A validated header: entries sorted by data offset (they tile the buffer exactly) and the metadata.</summary>
internal sealed record SafetensorsHeaderContent(List<SafetensorsEntry> Entries, Dictionary<string, string> Metadata);

/// <summary>Reads and validates a safetensors header; every failure is a <see cref="FileFormatException"/>.</summary>
internal static class SafetensorsHeader
{
    /// <summary>The largest header accepted (and written): 100 MB.</summary>
    internal const long MaxHeaderBytes = 100L * 1024 * 1024;

    internal const string MetadataKey = "__metadata__";

    const string LengthField = "header length (first 8 bytes)";

    /// <summary>
    /// The header length from the 8-byte <paramref name="prefix"/> of a file of <paramref name="fileLength"/> bytes,
    /// checked to fit in the file and to be at most <see cref="MaxHeaderBytes"/>.
    /// </summary>
    internal static long ReadHeaderLength(ReadOnlySpan<byte> prefix, long fileLength, string source)
    {
        if (prefix.Length < 8 || fileLength < 8)
            throw new FileFormatException(source, LengthField, "an 8-byte little-endian u64 header length",
                $"a file of only {fileLength} bytes");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (n > (ulong)MaxHeaderBytes)
            throw new FileFormatException(source, LengthField, $"at most {MaxHeaderBytes} bytes (100 MB)", $"{n} bytes");
        if (n > (ulong)(fileLength - 8))
            throw new FileFormatException(source, LengthField,
                $"at most {fileLength - 8} bytes (the rest of the file)", $"{n} bytes");
        return (long)n;
    }

    /// <summary>Parses and validates the header JSON for a data buffer of <paramref name="bufferLength"/> bytes.</summary>
    internal static SafetensorsHeaderContent Parse(ReadOnlySpan<byte> json, long bufferLength, string source)
    {
        if (!Utf8.IsValid(json))
            throw new FileFormatException(source, "header", "UTF-8 JSON text", "bytes that are not valid UTF-8");
        JsonDocument document;
        try
        {
            // NOTE: the default MaxDepth (64) bounds recursion, so deeply nested garbage is a JsonException,
            // not a stack overflow.
            document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions
            {
                AllowTrailingCommas = false,
                CommentHandling = JsonCommentHandling.Disallow,
            });
        }
        catch (JsonException e)
        {
            throw new FileFormatException(source, "header", "a valid JSON object", $"invalid JSON ({e.Message})", e);
        }
        using (document)
        {
            try
            {
                return Validate(document.RootElement, bufferLength, source);
            }
            catch (InvalidOperationException e)
            {
                // NOTE: System.Text.Json only decodes escapes when a string is read; an escaped lone surrogate
                // ("\ud800") surfaces here rather than at parse time.
                throw new FileFormatException(source, "header", "JSON strings that decode to valid Unicode",
                    $"an invalid string ({e.Message})", e);
            }
        }
    }

    static SafetensorsHeaderContent Validate(JsonElement root, long bufferLength, string source)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new FileFormatException(source, "header", "a JSON object mapping tensor names to entries", Describe(root));
        var entries = new List<SafetensorsEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        Dictionary<string, string>? metadata = null;
        foreach (var property in root.EnumerateObject())
        {
            string name = property.Name;
            if (name == MetadataKey)
            {
                if (metadata is not null)
                    throw new FileFormatException(source, MetadataKey, "at most one metadata entry", "a duplicate \"__metadata__\" key");
                metadata = ReadMetadata(property.Value, source);
                continue;
            }
            if (name.Length == 0)
                throw new FileFormatException(source, "tensor name", "a non-empty name", "\"\"");
            if (!names.Add(name))
                throw new FileFormatException(source, $"tensor {SafetensorsText.Quote(name)}", "a unique tensor name", "a duplicate entry");
            entries.Add(ReadEntry(name, property.Value, entries.Count, bufferLength, source));
        }
        CheckTiling(entries, bufferLength, source);
        return new SafetensorsHeaderContent(entries, metadata ?? new Dictionary<string, string>(StringComparer.Ordinal));
    }

    static Dictionary<string, string> ReadMetadata(JsonElement value, string source)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new FileFormatException(source, MetadataKey, "a JSON object of string values", Describe(value));
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in value.EnumerateObject())
        {
            string field = $"{MetadataKey} {SafetensorsText.Quote(entry.Name)}";
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new FileFormatException(source, field, "a string value", Describe(entry.Value));
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new FileFormatException(source, field, "a unique metadata key", "a duplicate entry");
        }
        return metadata;
    }

    static SafetensorsEntry ReadEntry(string name, JsonElement value, int order, long bufferLength, string source)
    {
        string tensor = $"tensor {SafetensorsText.Quote(name)}";
        if (value.ValueKind != JsonValueKind.Object)
            throw new FileFormatException(source, tensor, "an object with dtype, shape and data_offsets", Describe(value));
        JsonElement? dtype = null, shape = null, offsets = null;
        foreach (var field in value.EnumerateObject())
        {
            // NOTE: unknown keys are ignored, as the reference reader does; known keys must not repeat.
            ref JsonElement? slot = ref dtype;
            if (field.NameEquals("dtype")) slot = ref dtype;
            else if (field.NameEquals("shape")) slot = ref shape;
            else if (field.NameEquals("data_offsets")) slot = ref offsets;
            else continue;
            if (slot is not null)
                throw new FileFormatException(source, $"{tensor} {field.Name}", "a single entry", "a duplicate key");
            slot = field.Value;
        }
        // NOTE: dtype first, so a valid file of another dtype is reported as exactly that.
        if (dtype is not { } dtypeValue)
            throw new FileFormatException(source, $"{tensor} dtype", "\"F32\"", "no dtype");
        if (dtypeValue.ValueKind != JsonValueKind.String || !dtypeValue.ValueEquals("F32"))
            throw new FileFormatException(source, $"{tensor} dtype",
                "\"F32\" (the only dtype supported: checkpoints here are float32)", Describe(dtypeValue));

        if (shape is not { } shapeValue)
            throw new FileFormatException(source, $"{tensor} shape", "an array of dimensions", "no shape");
        int[] dims = ReadShape(shapeValue, $"{tensor} shape", source);
        int count = ElementCount(dims, $"{tensor} shape", source);

        if (offsets is not { } offsetsValue)
            throw new FileFormatException(source, $"{tensor} data_offsets", "[begin, end]", "no data_offsets");
        string offsetsField = $"{tensor} data_offsets";
        if (offsetsValue.ValueKind != JsonValueKind.Array || offsetsValue.GetArrayLength() != 2)
            throw new FileFormatException(source, offsetsField, "an array [begin, end] of two integers", Describe(offsetsValue));
        long begin = ReadOffset(offsetsValue[0], offsetsField, source);
        long end = ReadOffset(offsetsValue[1], offsetsField, source);
        if (end < begin)
            throw new FileFormatException(source, offsetsField, "begin <= end", $"[{begin}, {end}] (reversed)");
        if (end > bufferLength)
            throw new FileFormatException(source, offsetsField,
                $"a range inside the data buffer of {bufferLength} bytes", $"[{begin}, {end}]");
        long expectedBytes = 4L * count;
        if (end - begin != expectedBytes)
            throw new FileFormatException(source, offsetsField,
                $"{expectedBytes} bytes (4 bytes x {count} F32 values of shape {SafetensorsText.Shape(dims)})",
                $"{end - begin} bytes ([{begin}, {end}])");
        return new SafetensorsEntry(name, dims, count, begin, end, order);
    }

    static int[] ReadShape(JsonElement value, string field, string source)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw new FileFormatException(source, field, "an array of non-negative integers", Describe(value));
        var dims = new int[value.GetArrayLength()];
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long d) || d < 0 || d > int.MaxValue)
                throw new FileFormatException(source, $"{field}[{i}]",
                    $"a non-negative integer dimension (at most {int.MaxValue})", Describe(item));
            dims[i++] = (int)d;
        }
        return dims;
    }

    /// <summary>The product of <paramref name="dims"/>, checked to fit a float array.</summary>
    static int ElementCount(int[] dims, string field, string source)
    {
        // NOTE: any zero dimension makes the tensor empty whatever the others are, so check that first;
        // otherwise multiply with an overflow check against the largest float array.
        if (Array.IndexOf(dims, 0) >= 0) return 0;
        long product = 1;
        foreach (int d in dims)
        {
            if (product > Array.MaxLength / d)
                throw new FileFormatException(source, field,
                    $"at most {Array.MaxLength} elements in total", $"{SafetensorsText.Shape(dims)} (the element count overflows)");
            product *= d;
        }
        return (int)product;
    }

    static long ReadOffset(JsonElement item, string field, string source)
    {
        if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
            throw new FileFormatException(source, field, "non-negative integer byte offsets", Describe(item));
        return v;
    }

    /// <summary>Sorts the entries by offset and checks that they tile [0, bufferLength) without overlap or gap.</summary>
    static void CheckTiling(List<SafetensorsEntry> entries, long bufferLength, string source)
    {
        // NOTE: empty tensors have begin == end; ordering by (begin, end, header order) keeps a writer's order
        // when empty tensors sit at the same offset as the next tensor.
        entries.Sort((a, b) =>
        {
            int c = a.Begin.CompareTo(b.Begin);
            if (c == 0) c = a.End.CompareTo(b.End);
            return c != 0 ? c : a.Order.CompareTo(b.Order);
        });
        long next = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in entries)
        {
            if (e.Begin != next)
            {
                string field = $"tensor {SafetensorsText.Quote(e.Name)} data_offsets";
                string after = previous is null ? "the start of the data buffer" : $"the end of tensor {SafetensorsText.Quote(previous.Name)}";
                string found = e.Begin < next
                    ? $"[{e.Begin}, {e.End}], overlapping tensor {SafetensorsText.Quote(previous!.Name)}"
                    : $"[{e.Begin}, {e.End}], leaving a hole of {e.Begin - next} bytes";
                throw new FileFormatException(source, field, $"to start at byte {next} ({after})", found);
            }
            next = e.End;
            previous = e;
        }
        if (next != bufferLength)
            throw new FileFormatException(source, "data buffer",
                $"{next} bytes (exactly the bytes the tensors cover)", $"{bufferLength} bytes");
    }

    /// <summary>Converts little-endian F32 data read into <paramref name="data"/> to the machine's byte order.</summary>
    internal static void FromLittleEndian(float[] data)
    {
        if (!BitConverter.IsLittleEndian)
        {
            var bits = MemoryMarshal.Cast<float, int>(data.AsSpan());
            BinaryPrimitives.ReverseEndianness(bits, bits);
        }
    }

    /// <summary>A short description of a JSON value for error messages (kind plus clipped raw text).</summary>
    static string Describe(JsonElement value)
    {
        string kind = value.ValueKind switch
        {
            JsonValueKind.Object => "a JSON object",
            JsonValueKind.Array => "a JSON array",
            JsonValueKind.String => "the string",
            JsonValueKind.Number => "the number",
            _ => "",
        };
        if (value.ValueKind is JsonValueKind.Object or JsonValueKind.Array) return kind;
        // NOTE: read the raw UTF-8 without materializing it: a corrupt header may hold a multi-megabyte token.
        ReadOnlySpan<byte> raw = JsonMarshal.GetRawUtf8Value(value);
        string text = SafetensorsText.Clip(raw);
        return kind.Length == 0 ? text : $"{kind} {text}";
    }
}

/// <summary>Formatting helpers for safetensors error messages.</summary>
internal static class SafetensorsText
{
    const int MaxChars = 80;

    /// <summary>A name in quotes, control characters escaped, clipped to a readable length.</summary>
    internal static string Quote(string s)
    {
        var sb = new StringBuilder(Math.Min(s.Length, MaxChars) + 8);
        sb.Append('"');
        int n = Math.Min(s.Length, MaxChars);
        for (int i = 0; i < n; i++)
        {
            char c = s[i];
            if (c == '"' || c == '\\') sb.Append('\\').Append(c);
            else if (char.IsControl(c)) sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        if (s.Length > MaxChars) sb.Append("...");
        sb.Append('"');
        return sb.ToString();
    }

    /// <summary>Raw UTF-8 JSON text, clipped to a readable length.</summary>
    internal static string Clip(ReadOnlySpan<byte> raw)
    {
        bool clipped = raw.Length > MaxChars;
        string text = Encoding.UTF8.GetString(clipped ? raw[..MaxChars] : raw);
        var sb = new StringBuilder(text.Length + 3);
        foreach (char c in text) sb.Append(char.IsControl(c) ? ' ' : c);
        if (clipped) sb.Append("...");
        return sb.ToString();
    }

    /// <summary>A shape as <c>[a, b, c]</c>.</summary>
    internal static string Shape(int[] dims) => "[" + string.Join(", ", dims) + "]";
}
