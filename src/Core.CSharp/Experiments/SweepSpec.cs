using System.Globalization;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace VaeResearch.Experiments;

/// <summary>A mistake in a sweep spec, named by file, line and key: <c>spec.toml:12: grid.latent: must be ...</c>.</summary>
public sealed class SpecException : VaeResearchException
{
    /// <summary>Creates the error at <paramref name="line"/> (1-based; 0 when the whole file is meant).</summary>
    public SpecException(string path, int line, string key, string detail)
        : base(line > 0 ? $"{path}:{line}: {key}: {detail}" : $"{path}: {key}: {detail}")
    {
        File = path;
        Line = line;
        Key = key;
    }

    /// <summary>The spec file.</summary>
    public string File { get; }

    /// <summary>1-based line of the offending key (0: not tied to a line).</summary>
    public int Line { get; }

    /// <summary>The key, with its table: <c>grid.latent</c>, <c>variants[2].epitome_size</c>.</summary>
    public string Key { get; }
}

/// <summary>
/// One value of a spec with the line it sits on: a scalar (<see cref="string"/>, <see cref="long"/>,
/// <see cref="double"/>, <see cref="bool"/>), a list (<see cref="IReadOnlyList{T}"/> of values) or an
/// inline table (<see cref="IReadOnlyDictionary{TKey, TValue}"/> of values).
/// </summary>
public sealed record SpecValue(object Value, int Line)
{
    /// <summary>The items of a list, or the value itself as a one-item list (a scalar in a grid is a fixed value).</summary>
    public IReadOnlyList<SpecValue> Items => Value as IReadOnlyList<SpecValue> ?? [this];

    /// <summary>Whether the value is a list.</summary>
    public bool IsList => Value is IReadOnlyList<SpecValue>;

    /// <summary>The value as the spec spells it, for names and messages: <c>500,500</c>, <c>3</c>, <c>true</c>.</summary>
    public override string ToString() => Value switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        long l => l.ToString(CultureInfo.InvariantCulture),
        IReadOnlyList<SpecValue> list => "[" + string.Join(", ", list) + "]",
        IReadOnlyDictionary<string, SpecValue> table => "{" + string.Join(", ", table.Select(kv => $"{kv.Key} = {kv.Value}")) + "}",
        var other => other.ToString() ?? "",
    };
}

/// <summary>A table of a spec (<c>[base]</c>, one <c>[[variants]]</c> entry, ...): its keys in file order, with lines.</summary>
public sealed record SpecTable(string Name, int Line, IReadOnlyList<KeyValuePair<string, SpecValue>> Entries)
{
    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    public SpecValue? this[string key] => Entries.FirstOrDefault(e => e.Key == key).Value;

    /// <summary>An empty table (a section the spec leaves out).</summary>
    public static SpecTable Empty(string name) => new(name, 0, []);
}

/// <summary>
/// A sweep spec as written (TOML, read with Tomlyn's syntax tree so every value keeps its line):
/// <c>name</c>, <c>description</c>, <c>[base]</c>, <c>[grid]</c>, <c>[[variants]]</c>, <c>[eval]</c>,
/// <c>[table]</c>, <c>[[published]]</c> and <c>[slurm]</c>. Structure and types of the sections are checked
/// here; the training settings are checked when <see cref="SweepPlan.Expand"/> builds each run's configuration.
/// </summary>
public sealed class SweepSpec
{
    static readonly string[] Tables = ["base", "grid", "eval", "table", "slurm"];
    static readonly string[] TableArrays = ["variants", "published"];

    SweepSpec(string path) => Path = path;

    /// <summary>The spec file (full path).</summary>
    public string Path { get; }

    /// <summary>The sweep's name.</summary>
    public string Name { get; private set; } = "";

    /// <summary>Free text.</summary>
    public string Description { get; private set; } = "";

    /// <summary>Settings shared by every run.</summary>
    public SpecTable Base { get; private set; } = SpecTable.Empty("base");

    /// <summary>Axes of the Cartesian product (a scalar is a fixed value).</summary>
    public SpecTable Grid { get; private set; } = SpecTable.Empty("grid");

    /// <summary>Variants: the runs are the union over variants of (variant grid x <see cref="Grid"/>); none means one empty variant.</summary>
    public IReadOnlyList<SpecTable> Variants { get; private set; } = [];

    /// <summary>Evaluations after training (<c>k</c>, <c>subset</c>, <c>binarize</c>, <c>seed</c>, <c>budget</c>, <c>parzen</c>).</summary>
    public SpecTable Eval { get; private set; } = SpecTable.Empty("eval");

    /// <summary>The layout of <c>vae sweep table</c>.</summary>
    public SpecTable Table { get; private set; } = SpecTable.Empty("table");

    /// <summary>The papers' numbers, shown beside ours.</summary>
    public IReadOnlyList<SpecTable> Published { get; private set; } = [];

    /// <summary>Settings of the Slurm executor.</summary>
    public SpecTable Slurm { get; private set; } = SpecTable.Empty("slurm");

    /// <summary>The error at <paramref name="value"/>'s line.</summary>
    public SpecException Error(SpecValue? value, string key, string detail) => new(Path, value?.Line ?? 0, key, detail);

    /// <summary>Reads and checks a spec file; a syntax error, an unknown key or a value of the wrong type names the line.</summary>
    public static SweepSpec Load(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full)) throw new VaeResearchException($"sweep spec '{path}' does not exist");
        return Parse(File.ReadAllText(full), full);
    }

    /// <summary>Parses spec text; <paramref name="path"/> names it in errors.</summary>
    public static SweepSpec Parse(string text, string path)
    {
        var document = SyntaxParser.Parse(text, path);
        var spec = new SweepSpec(path);
        if (document.HasErrors)
        {
            var first = document.Diagnostics.First(d => d.Kind == DiagnosticMessageKind.Error);
            throw new SpecException(path, first.Span.Start.Line + 1, "syntax", first.Message);
        }
        foreach (var entry in document.KeyValues)
        {
            var (key, value) = spec.Read(entry, "");
            switch (key)
            {
                case "name": spec.Name = spec.Text(value, key); break;
                case "description": spec.Description = spec.Text(value, key); break;
                default:
                    throw spec.Error(value, key, $"unknown key (top-level keys: name, description; tables: {string.Join(", ", Tables.Concat(TableArrays))})");
            }
        }
        var variants = new List<SpecTable>();
        var published = new List<SpecTable>();
        var seen = new HashSet<string>();
        foreach (var table in document.Tables)
        {
            var name = KeyText(table.Name!, path);
            int line = table.Span.Start.Line + 1;
            bool array = table is TableArraySyntax;
            if (!(array ? TableArrays : Tables).Contains(name))
                throw new SpecException(path, line, name, array && Tables.Contains(name) ? $"is a table: write [{name}]"
                    : !array && TableArrays.Contains(name) ? $"is a list of tables: write [[{name}]]"
                    : $"unknown table (tables: {string.Join(", ", Tables.Select(t => $"[{t}]").Concat(TableArrays.Select(t => $"[[{t}]]")))})");
            if (!array && !seen.Add(name)) throw new SpecException(path, line, name, "appears twice");
            var label = array ? $"{name}[{(name == "variants" ? variants.Count : published.Count) + 1}]" : name;
            var entries = new List<KeyValuePair<string, SpecValue>>();
            foreach (var item in table.Items)
            {
                var (key, value) = spec.Read(item, label + ".");
                if (entries.Any(e => e.Key == key)) throw spec.Error(value, $"{label}.{key}", "appears twice");
                entries.Add(new(key, value));
            }
            var result = new SpecTable(label, line, entries);
            switch (name)
            {
                case "base": spec.Base = result; break;
                case "grid": spec.Grid = result; break;
                case "eval": spec.Eval = result; break;
                case "table": spec.Table = result; break;
                case "slurm": spec.Slurm = result; break;
                case "variants": variants.Add(result); break;
                case "published": published.Add(result); break;
            }
        }
        spec.Variants = variants;
        spec.Published = published;
        if (spec.Name.Length == 0) throw new SpecException(path, 0, "name", "is required (name = \"...\")");
        spec.CheckSections();
        return spec;
    }

    (string Key, SpecValue Value) Read(KeyValueSyntax entry, string prefix)
    {
        var key = KeyText(entry.Key!, Path);
        return (key, Value(entry.Value!, prefix + key));
    }

    static string KeyText(KeySyntax key, string path)
    {
        if (key.DotKeys.ChildrenCount > 0)
            throw new SpecException(path, key.Span.Start.Line + 1, key.ToString()!.Trim(), "dotted keys are not supported; write the table out");
        return key.Key switch
        {
            BareKeySyntax bare => bare.Key!.Text!,
            StringValueSyntax quoted => quoted.Value!,
            var other => throw new SpecException(path, key.Span.Start.Line + 1, other?.ToString() ?? "?", "unsupported key"),
        };
    }

    SpecValue Value(ValueSyntax syntax, string key)
    {
        int line = syntax.Span.Start.Line + 1;
        return syntax switch
        {
            StringValueSyntax s => new SpecValue(s.Value!, line),
            IntegerValueSyntax i => new SpecValue(i.Value, line),
            FloatValueSyntax f => new SpecValue(f.Value, line),
            BooleanValueSyntax b => new SpecValue(b.Value, line),
            ArraySyntax a => new SpecValue(a.Items.Select(item => Value(item.Value!, key)).ToList(), line),
            InlineTableSyntax t => new SpecValue(t.Items.Select(item => Read(item.KeyValue!, key + ".")).ToDictionary(kv => kv.Key, kv => kv.Value), line),
            _ => throw new SpecException(Path, line, key, "dates and times are not settings"),
        };
    }

    /// <summary>The value as a string; another type is an error naming the key.</summary>
    public string Text(SpecValue value, string key) =>
        value.Value as string ?? throw Error(value, key, $"must be a string, got {value}");

    /// <summary>The value as an integer; another type is an error naming the key.</summary>
    public long Integer(SpecValue value, string key) =>
        value.Value is long l ? l : throw Error(value, key, $"must be an integer, got {value}");

    /// <summary>The value as a number (integer or float).</summary>
    public double Number(SpecValue value, string key) => value.Value switch
    {
        long l => l,
        double d => d,
        _ => throw Error(value, key, $"must be a number, got {value}"),
    };

    /// <summary>The value as a list of strings (a single string is a one-item list).</summary>
    public IReadOnlyList<string> Strings(SpecValue value, string key) => value.Items.Select(v => Text(v, key)).ToList();

    void CheckSections()
    {
        CheckKeys(Eval, ["k", "subset", "binarize", "seed", "budget", "parzen"]);
        if (Eval["budget"] is { } budget && Text(budget, "eval.budget") is not ("per_epitome" or "total" or "ystar"))
            throw Error(budget, "eval.budget", $"must be per_epitome, total or ystar, got {budget}");
        if (Eval["k"] is { } k && Integer(k, "eval.k") < 1) throw Error(k, "eval.k", "must be >= 1");
        if (Eval["subset"] is { } subset && Integer(subset, "eval.subset") < 1) throw Error(subset, "eval.subset", "must be >= 1");
        if (Eval["binarize"] is { } binarize) Text(binarize, "eval.binarize");
        if (Eval["seed"] is { } seed) Integer(seed, "eval.seed");
        if (Eval["parzen"] is { } parzen && parzen.Value is not bool) throw Error(parzen, "eval.parzen", $"must be true or false, got {parzen}");

        CheckKeys(Table, ["rows", "columns", "value", "annotate", "reduce", "threshold"]);
        if (Table["rows"] is { } rows) Strings(rows, "table.rows");
        if (Table["columns"] is { } columns) Strings(columns, "table.columns");
        if (Table["value"] is { } value) Text(value, "table.value");
        if (Table["annotate"] is { } annotate) Text(annotate, "table.annotate");
        if (Table["reduce"] is { } reduce && Text(reduce, "table.reduce") is not ("mean" or "max" or "min"))
            throw Error(reduce, "table.reduce", $"must be mean, max or min, got {reduce}");
        if (Table["threshold"] is { } threshold && Number(threshold, "table.threshold") is not > 0)
            throw Error(threshold, "table.threshold", "must be positive");

        foreach (var entry in Published)
        {
            CheckKeys(entry, ["where", "value", "annotate"]);
            if (entry["where"] is not { Value: IReadOnlyDictionary<string, SpecValue> })
                throw new SpecException(Path, entry.Line, $"{entry.Name}.where", "is required: an inline table such as { model = \"vae\", latent = 8 }");
            if (entry["value"] is not { } v) throw new SpecException(Path, entry.Line, $"{entry.Name}.value", "is required");
            Number(v, $"{entry.Name}.value");
            if (entry["annotate"] is { } a) Number(a, $"{entry.Name}.annotate");
        }

        CheckKeys(Slurm, ["cpus_per_task", "time", "extra"]);
        if (Slurm["cpus_per_task"] is { } cpus && Integer(cpus, "slurm.cpus_per_task") < 1) throw Error(cpus, "slurm.cpus_per_task", "must be >= 1");
        if (Slurm["time"] is { } time) Text(time, "slurm.time");
        if (Slurm["extra"] is { } extra) Strings(extra, "slurm.extra");
    }

    void CheckKeys(SpecTable table, string[] allowed)
    {
        foreach (var (key, value) in table.Entries)
            if (!allowed.Contains(key))
                throw Error(value, $"{table.Name}.{key}", $"unknown key (allowed: {string.Join(", ", allowed)})");
    }
}
