using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeResearch.Training;

namespace VaeResearch.Experiments;

/// <summary>One run of a sweep: its index in sweep.json, its folder name, the hash of its configuration.</summary>
/// <param name="Index">0-based position in the plan (what <c>vae sweep task DIR --index I</c> takes).</param>
/// <param name="Name">Folder name under <c>DIR/runs/</c>, made of the settings that vary across the sweep.</param>
/// <param name="Hash">The first 16 hex digits of the SHA-256 of the configuration's JSON without its default settings (<see cref="SweepPlan.Hash"/>).</param>
/// <param name="Settings">Every key the spec set for this run, as the spec spells its value.</param>
/// <param name="Config">The full training configuration.</param>
public sealed record PlannedRun(int Index, string Name, string Hash, IReadOnlyDictionary<string, JsonNode?> Settings, TrainConfig Config)
{
    /// <summary>The run folder relative to the sweep folder.</summary>
    public string Folder => "runs/" + Name;
}

/// <summary>The evaluations a sweep runs after training: <c>vae eval --k K</c> when K is set, <c>vae parzen</c> when asked.</summary>
public sealed record EvalPlan(int? K, int? Subset, string? Binarize, ulong Seed, bool Parzen, string? Budget = null);

/// <summary>
/// A sweep spec expanded into runs (docs/contracts.md, "sweep.json"): the union over variants of the variant's
/// grid times <c>[grid]</c>, each run's configuration being <c>[base]</c> overridden by its grid values and
/// checked by <see cref="TrainConfig.Validate"/> before anything runs.
/// </summary>
public sealed class SweepPlan
{
    /// <summary>The plan file in a sweep folder.</summary>
    public const string FileName = "sweep.json";

    /// <summary>The sweep's name.</summary>
    public required string Name { get; init; }

    /// <summary>Free text from the spec.</summary>
    public required string Description { get; init; }

    /// <summary>The spec file it came from.</summary>
    public required string Spec { get; init; }

    /// <summary>Threads each run trains with (recorded, since bit-identical resume depends on it).</summary>
    public required int ThreadsPerRun { get; init; }

    /// <summary>The runs, in index order.</summary>
    public required IReadOnlyList<PlannedRun> Runs { get; init; }

    /// <summary>Evaluations after training.</summary>
    public required EvalPlan Eval { get; init; }

    /// <summary>The spec's <c>[table]</c> (null when it has none), as JSON for the table builder.</summary>
    public JsonObject? Table { get; init; }

    /// <summary>The spec's <c>[[published]]</c> entries as JSON.</summary>
    public JsonArray Published { get; init; } = [];

    /// <summary>The spec's <c>[slurm]</c> settings.</summary>
    public JsonObject Slurm { get; init; } = [];

    static readonly JsonSerializerOptions Compact = new(RunFolder.Json) { WriteIndented = false };

    /// <summary>Expands <paramref name="spec"/>; every mistake is a <see cref="SpecException"/> naming file, line and key.</summary>
    public static SweepPlan Expand(SweepSpec spec, int threadsPerRun)
    {
        var grid = spec.Grid.Entries;
        var variants = spec.Variants.Count > 0 ? spec.Variants : [SpecTable.Empty("variants")];
        var combos = new List<(SpecTable Source, List<(string Key, SpecValue Value, string Where)> Settings)>();
        foreach (var variant in variants)
        {
            foreach (var (key, value) in variant.Entries)
                if (spec.Grid[key] is not null)
                    throw spec.Error(value, $"{variant.Name}.{key}", "is also a [grid] axis; set it in one place");
            var axes = grid.Select(e => (e.Key, e.Value, Where: "grid"))
                .Concat(variant.Entries.Select(e => (e.Key, e.Value, Where: variant.Name)))
                .ToList();
            foreach (var (key, value, where) in axes)
                if (value.IsList && value.Items.Count == 0) throw spec.Error(value, $"{where}.{key}", "is an empty list: no runs");
            IEnumerable<List<(string, SpecValue, string)>> product = [[]];
            foreach (var (key, value, where) in axes)
                product = product.SelectMany(prefix => value.Items.Select(item => new List<(string, SpecValue, string)>(prefix) { (key, item, where) }));
            foreach (var combination in product)
            {
                var settings = spec.Base.Entries.Where(b => combination.All(c => c.Item1 != b.Key))
                    .Select(b => (b.Key, b.Value, "base")).Concat(combination).ToList();
                combos.Add((variant, settings));
            }
        }

        var order = ConfigKeys();
        var configs = combos.Select(c => BuildConfig(spec, c.Settings)).ToList();
        // The settings that vary across the sweep name the folders, in the configuration's key order.
        string Text(List<(string Key, SpecValue Value, string Where)> s, string key) =>
            s.FirstOrDefault(x => x.Key == key).Value?.ToString() ?? "";
        var varying = order.Where(key => combos.Select(c => Text(c.Settings, key)).Distinct().Count() > 1).ToList();
        var runs = new List<PlannedRun>();
        var byName = new Dictionary<string, int>();
        for (int i = 0; i < combos.Count; i++)
        {
            var (source, settings) = combos[i];
            var parts = varying.Where(key => settings.Any(s => s.Key == key)).Select(key => $"{key}={FolderSafe(Text(settings, key))}");
            var name = string.Join(",", parts);
            if (name.Length == 0) name = FolderSafe(spec.Name);
            if (byName.TryGetValue(name, out int other))
            {
                var last = settings.LastOrDefault(s => s.Where != "base");
                throw spec.Error(last.Value ?? new SpecValue("", source.Line), last.Key is null ? source.Name : $"{last.Where}.{last.Key}",
                    $"runs {other} and {i} expand to the same folder '{name}' (the same settings twice)");
            }
            byName[name] = i;
            var json = settings.ToDictionary(s => s.Key, s => ToJson(s.Value));
            runs.Add(new PlannedRun(i, name, Hash(configs[i]), json, configs[i]));
        }

        return new SweepPlan
        {
            Name = spec.Name,
            Description = spec.Description,
            Spec = spec.Path,
            ThreadsPerRun = threadsPerRun,
            Runs = runs,
            Eval = ReadEval(spec),
            Table = spec.Table.Entries.Count > 0 ? ToJsonObject(spec.Table.Entries) : null,
            Published = [.. spec.Published.Select(p => (JsonNode)ToJsonObject(p.Entries))],
            Slurm = ToJsonObject(spec.Slurm.Entries),
        };
    }

    /// <summary>The configuration keys in <c>config.json</c>'s order.</summary>
    static List<string> ConfigKeys() => JsonSerializer.SerializeToNode(new TrainConfig(), RunFolder.Json)!.AsObject().Select(kv => kv.Key).ToList();

    static TrainConfig BuildConfig(SweepSpec spec, List<(string Key, SpecValue Value, string Where)> settings)
    {
        var node = JsonSerializer.SerializeToNode(new TrainConfig(), RunFolder.Json)!.AsObject();
        foreach (var (key, value, where) in settings)
        {
            if (!node.ContainsKey(key))
                throw spec.Error(value, $"{where}.{key}", key == "threads"
                    ? "is set per sweep: vae sweep run --threads-per-run T"
                    : $"is not a training setting (settings: {string.Join(", ", node.Select(kv => kv.Key))})");
            node[key] = key == "hidden" ? HiddenJson(spec, value, $"{where}.{key}") : ToJson(value);
        }
        SpecException At(string key, string detail)
        {
            var (k, value, where) = settings.LastOrDefault(s => s.Key == key);
            return k is null ? new SpecException(spec.Path, 0, key, detail + " (the default; set it in [base])") : spec.Error(value, $"{where}.{key}", detail);
        }
        TrainConfig config;
        try
        {
            config = node.Deserialize<TrainConfig>(RunFolder.Json)!;
            if (!settings.Any(s => s.Key == "adam_beta1"))
                config = config with { AdamBeta1 = TrainConfig.DefaultAdamBeta1(config.Optimizer) };
        }
        catch (JsonException e)
        {
            var key = (e.Path ?? "$").TrimStart('$', '.').Split('.', '[')[0];
            throw At(key, $"has the wrong type for this setting, got {settings.LastOrDefault(s => s.Key == key).Value}");
        }
        try
        {
            return config.Validate();
        }
        catch (ConfigException e)
        {
            throw At(e.Key, e.Detail);
        }
    }

    /// <summary><c>hidden</c> as the CLI spells it ("500,500"), an integer, or a list of integers.</summary>
    static JsonNode HiddenJson(SweepSpec spec, SpecValue value, string key)
    {
        IEnumerable<long> widths = value.Value switch
        {
            string s => s.Split(',', StringSplitOptions.TrimEntries).Select(p =>
                long.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out long w) ? w
                    : throw spec.Error(value, key, $"must be widths such as \"500,500\", got \"{s}\"")),
            long l => [l],
            IReadOnlyList<SpecValue> list => list.Select(v => spec.Integer(v, key)),
            _ => throw spec.Error(value, key, $"must be widths such as \"500,500\", got {value}"),
        };
        return new JsonArray([.. widths.Select(w => (JsonNode)w)]);
    }

    static EvalPlan ReadEval(SweepSpec spec)
    {
        var e = spec.Eval;
        return new EvalPlan(
            e["k"] is { } k ? (int)spec.Integer(k, "eval.k") : null,
            e["subset"] is { } subset ? (int)spec.Integer(subset, "eval.subset") : null,
            e["binarize"] is { } b ? spec.Text(b, "eval.binarize") : null,
            e["seed"] is { } seed ? (ulong)spec.Integer(seed, "eval.seed") : 0,
            e["parzen"] is { Value: true },
            e["budget"] is { } budget ? spec.Text(budget, "eval.budget") : null);
    }

    static string FolderSafe(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char c in text)
            sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : c == ',' ? 'x' : '_');
        return sb.ToString();
    }

    static JsonNode? ToJson(SpecValue value) => value.Value switch
    {
        string s => s,
        long l => l,
        double d => d,
        bool b => b,
        IReadOnlyList<SpecValue> list => new JsonArray([.. list.Select(ToJson)]),
        IReadOnlyDictionary<string, SpecValue> table => ToJsonObject(table),
        _ => null,
    };

    static JsonObject ToJsonObject(IEnumerable<KeyValuePair<string, SpecValue>> entries)
    {
        var result = new JsonObject();
        foreach (var (key, value) in entries) result[key] = ToJson(value);
        return result;
    }

    /// <summary>
    /// The first 16 hex digits of the SHA-256 of the configuration's compact JSON without the settings left at
    /// their defaults, so that a setting added to the library later (with its default) keeps every hash.
    /// </summary>
    public static string Hash(TrainConfig config)
    {
        var node = JsonSerializer.SerializeToNode(config, RunFolder.Json)!.AsObject();
        foreach (var (key, value) in Defaults)
            if (JsonNode.DeepEquals(node[key], value)) node.Remove(key);
        var bytes = Encoding.UTF8.GetBytes(node.ToJsonString(Compact));
        return Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];
    }

    static readonly JsonObject Defaults = JsonSerializer.SerializeToNode(new TrainConfig(), RunFolder.Json)!.AsObject();

    /// <summary>The plan as sweep.json.</summary>
    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["description"] = Description,
        ["spec"] = Spec,
        ["threads_per_run"] = ThreadsPerRun,
        ["eval"] = JsonSerializer.SerializeToNode(Eval, RunFolder.Json),
        ["table"] = Table?.DeepClone(),
        ["published"] = Published.DeepClone(),
        ["slurm"] = Slurm.DeepClone(),
        ["runs"] = new JsonArray([.. Runs.Select(r => (JsonNode)new JsonObject
        {
            ["index"] = r.Index,
            ["name"] = r.Name,
            ["folder"] = r.Folder,
            ["hash"] = r.Hash,
            ["settings"] = new JsonObject(r.Settings.Select(kv => KeyValuePair.Create(kv.Key, kv.Value?.DeepClone()))),
            ["config"] = JsonSerializer.SerializeToNode(r.Config, RunFolder.Json),
        })]),
    };

    /// <summary>Writes <c>DIR/sweep.json</c> atomically.</summary>
    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, FileName), ToJson().ToJsonString(RunFolder.Json) + "\n");
    }

    /// <summary>Reads <c>DIR/sweep.json</c>; a missing or malformed file is a clear error naming it.</summary>
    public static SweepPlan Load(string dir)
    {
        var path = Path.Combine(Path.GetFullPath(dir), FileName);
        if (!File.Exists(path)) throw new VaeResearchException($"{dir} is not a sweep folder: {FileName} is missing (run `vae sweep run SPEC --out {dir}` first)");
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var runs = root["runs"]!.AsArray().Select(n =>
            {
                var o = n!.AsObject();
                var settings = o["settings"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value?.DeepClone());
                return new PlannedRun((int)o["index"]!, (string)o["name"]!, (string)o["hash"]!, settings,
                    o["config"].Deserialize<TrainConfig>(RunFolder.Json)!);
            }).ToList();
            return new SweepPlan
            {
                Name = (string)root["name"]!,
                Description = (string?)root["description"] ?? "",
                Spec = (string?)root["spec"] ?? "",
                ThreadsPerRun = (int)root["threads_per_run"]!,
                Runs = runs,
                Eval = root["eval"].Deserialize<EvalPlan>(RunFolder.Json)!,
                Table = root["table"]?.AsObject().DeepClone().AsObject(),
                Published = root["published"]?.AsArray().DeepClone().AsArray() ?? [],
                Slurm = root["slurm"]?.AsObject().DeepClone().AsObject() ?? [],
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new VaeResearchException($"{path}: not a valid sweep plan ({e.Message})", e);
        }
    }
}
