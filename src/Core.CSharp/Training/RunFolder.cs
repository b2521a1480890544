using System.Globalization;
using AssemblyInformationalVersionAttribute = System.Reflection.AssemblyInformationalVersionAttribute;

using System.Text.Json;
using System.Text.Json.Nodes;
using VaeResearch.Compute;
using VaeResearch.Models;
using System.Text.Json.Serialization;
using VaeResearch.Engine;

namespace VaeResearch.Training;

/// <summary>
/// A run folder (docs/contracts.md, "Run folder"): <c>config.json</c>, <c>metrics.csv</c>, <c>activity.csv</c>,
/// <c>assignments.csv</c> (eVAE and mVAE), <c>checkpoint.safetensors</c> (model and optimizer state), <c>eval.json</c>
/// and <c>parzen.json</c>. Every file is written atomically, so a killed process never leaves a half-written one.
/// </summary>
public sealed class RunFolder
{
    /// <summary>Checkpoint format tag stored in the safetensors metadata.</summary>
    public const string CheckpointFormat = "vaeresearch-checkpoint-1";

    /// <summary>JSON settings of the run files: snake_case keys and enum values, indented.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    RunFolder(string path) => Path = System.IO.Path.GetFullPath(path);

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>config.json.</summary>
    public string ConfigPath => System.IO.Path.Combine(Path, "config.json");

    /// <summary>metrics.csv.</summary>
    public string MetricsPath => System.IO.Path.Combine(Path, "metrics.csv");

    /// <summary>activity.csv.</summary>
    public string ActivityPath => System.IO.Path.Combine(Path, "activity.csv");

    /// <summary>assignments.csv (eVAE and mVAE only).</summary>
    public string AssignmentsPath => System.IO.Path.Combine(Path, "assignments.csv");

    /// <summary>checkpoint.safetensors.</summary>
    public string CheckpointPath => System.IO.Path.Combine(Path, "checkpoint.safetensors");

    /// <summary>eval.json.</summary>
    public string EvalPath => System.IO.Path.Combine(Path, "eval.json");

    /// <summary>Whether a checkpoint has been written.</summary>
    public bool HasCheckpoint => File.Exists(CheckpointPath);

    /// <summary>An existing run folder; a missing folder or one without config.json is a clear error.</summary>
    public static RunFolder Open(string path)
    {
        if (!Directory.Exists(path)) throw new VaeResearchException($"run folder '{path}' does not exist");
        var run = new RunFolder(path);
        if (!File.Exists(run.ConfigPath))
            throw new VaeResearchException($"'{path}' is not a run folder: it has no config.json (train one with `vae train --out {path}`)");
        return run;
    }

    /// <summary>
    /// A folder for a new run; refuses one that already holds a trained epoch (a checkpoint). A folder whose run
    /// stopped before its first epoch completed holds nothing to keep, and is reused.
    /// </summary>
    public static RunFolder Create(string path)
    {
        var run = new RunFolder(path);
        if (File.Exists(run.CheckpointPath))
            throw new VaeResearchException($"'{path}' already holds a trained run: continue it with --resume, or choose another --out");
        Directory.CreateDirectory(run.Path);
        return run;
    }

    /// <summary>Versions recorded with every run (the compute context adds its own: the GEMM kernel, or TorchSharp's and libtorch's).</summary>
    public static Dictionary<string, string> Versions() => new()
    {
        ["vaeresearch"] = typeof(RunFolder).Assembly.GetCustomAttributes(typeof(AssemblyInformationalVersionAttribute), false).OfType<AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown",
        ["dotnet"] = Environment.Version.ToString(),
        ["system_numerics_tensors"] = typeof(System.Numerics.Tensors.TensorPrimitives).Assembly.GetName().Version?.ToString() ?? "unknown",
        ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
    };

    /// <summary>Writes config.json: every setting, plus the threads used and the versions (the native engine's context).</summary>
    public void WriteConfig(TrainConfig config) => WriteConfig(config, NativeContext.Cpu);

    /// <summary>
    /// Writes config.json at the start of a run: every setting, plus the threads <paramref name="context"/> uses and the
    /// versions, its own included.
    /// </summary>
    public void WriteConfig(TrainConfig config, IComputeContext context)
    {
        var node = JsonSerializer.SerializeToNode(config, Json)!.AsObject();
        node["threads"] = context.Threads;
        node["versions"] = VersionsOf(context);
        AtomicFile.WriteAllText(ConfigPath, node.ToJsonString(Json) + "\n");
    }

    /// <summary>
    /// Rewrites config.json once a resume has completed an epoch: the settings as resumed (a new <c>epochs</c>), the
    /// start's <c>threads</c> and <c>versions</c> kept (what an uninterrupted run would have used), and the resume
    /// appended to <c>resumes</c> with the epoch it continued after and its own threads and versions.
    /// </summary>
    public void RecordResume(TrainConfig config, IComputeContext context, int afterEpoch)
    {
        var saved = JsonNode.Parse(File.ReadAllText(ConfigPath))?.AsObject()
            ?? throw new FileFormatException(ConfigPath, "document", "a JSON object", "null");
        var node = JsonSerializer.SerializeToNode(config, Json)!.AsObject();
        node["threads"] = saved["threads"]?.DeepClone() ?? context.Threads;
        node["versions"] = saved["versions"]?.DeepClone() ?? VersionsOf(context);
        var resumes = saved["resumes"]?.DeepClone() as JsonArray ?? [];
        resumes.Add(new JsonObject { ["after_epoch"] = afterEpoch, ["threads"] = context.Threads, ["versions"] = VersionsOf(context) });
        node["resumes"] = resumes;
        AtomicFile.WriteAllText(ConfigPath, node.ToJsonString(Json) + "\n");
    }

    static JsonNode VersionsOf(IComputeContext context)
    {
        var versions = Versions();
        foreach (var (name, version) in context.Versions) versions[name] = version;
        return JsonSerializer.SerializeToNode(versions, Json)!;
    }

    /// <summary>Reads config.json; an unknown key or a bad value is a <see cref="FileFormatException"/>.</summary>
    public TrainConfig ReadConfig() => ParseConfig(ConfigPath);

    /// <summary>
    /// A configuration file: a run's config.json, or one run entry of a sweep's sweep.json (an object with a
    /// <c>config</c> member). An unknown key or a bad value is a <see cref="FileFormatException"/> naming it.
    /// </summary>
    public static TrainConfig ParseConfig(string path)
    {
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path))?.AsObject()
                ?? throw new FileFormatException(path, "document", "a JSON object", "null");
            if (node["config"] is JsonObject entry) node = entry;
            node.Remove("versions");
            node.Remove("threads");
            node.Remove("resumes");
            return node.Deserialize<TrainConfig>(Json) ?? throw new FileFormatException(path, "document", "a JSON object", "null");
        }
        catch (JsonException e)
        {
            throw new FileFormatException(path, e.Path ?? "document", "a valid run configuration", e.Message, e);
        }
        catch (InvalidOperationException e)
        {
            throw new FileFormatException(path, "document", "a JSON object", e.Message, e);
        }
    }

    /// <summary>The GEMM kernel recorded in config.json (<c>versions.gemm</c>), if any.</summary>
    public GemmKernel? ReadGemmKernel()
    {
        var gemm = JsonNode.Parse(File.ReadAllText(ConfigPath))?["versions"]?["gemm"]?.GetValue<string>();
        return gemm is null ? null
            : gemm.StartsWith("openblas", StringComparison.Ordinal) ? GemmKernel.OpenBlas
            : gemm.StartsWith("managed", StringComparison.Ordinal) ? GemmKernel.Managed
            : null;
    }

    /// <summary>The thread count recorded in config.json, if any.</summary>
    public int? ReadThreads() =>
        JsonNode.Parse(File.ReadAllText(ConfigPath))?["threads"]?.GetValue<int>();

    /// <summary>Saves model and optimizer state with the number of completed epochs (atomic).</summary>
    public void SaveCheckpoint(IGenerativeModel model, IOptimizer optimizer, int epoch)
    {
        var metadata = new Dictionary<string, string>
        {
            ["format"] = CheckpointFormat,
            ["epoch"] = epoch.ToString(CultureInfo.InvariantCulture),
            ["adam_step"] = optimizer.StepCount.ToString(CultureInfo.InvariantCulture),
        };
        Safetensors.Save(CheckpointPath, model.StateDict().Concat(optimizer.StateDict()), metadata);
    }

    /// <summary>Loads the checkpoint's model weights (and, when given, the optimizer state); returns the completed epochs.</summary>
    public int LoadCheckpoint(IGenerativeModel model, IOptimizer? optimizer = null)
    {
        if (!HasCheckpoint)
            throw new VaeResearchException($"run '{Path}' has no checkpoint yet (no epoch has completed)");
        var content = Safetensors.Load(CheckpointPath);
        string Meta(string key) =>
            content.Metadata.TryGetValue(key, out var v) ? v : throw new FileFormatException(CheckpointPath, $"__metadata__.{key}", "present", "missing");
        if (Meta("format") != CheckpointFormat)
            throw new FileFormatException(CheckpointPath, "__metadata__.format", CheckpointFormat, Meta("format"));
        if (!int.TryParse(Meta("epoch"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int epoch) || epoch < 0)
            throw new FileFormatException(CheckpointPath, "__metadata__.epoch", "a non-negative integer", Meta("epoch"));
        model.LoadStateDict(content);
        if (optimizer is not null)
        {
            if (!long.TryParse(Meta("adam_step"), NumberStyles.Integer, CultureInfo.InvariantCulture, out long step) || step < 0)
                throw new FileFormatException(CheckpointPath, "__metadata__.adam_step", "a non-negative integer", Meta("adam_step"));
            optimizer.LoadStateDict(content, step);
        }
        return epoch;
    }
}
