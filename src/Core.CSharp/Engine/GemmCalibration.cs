using System.Text.Json;
using System.Text.Json.Nodes;
using VaeResearch.Bench;

namespace VaeResearch.Engine;

/// <summary>
/// The default GEMM kernel by measurement: the first time a machine runs with both kernels available, the GEMM calls of
/// the seed model's training step (784-200-200-50, batch 100, k = 5) are timed on each, and the faster one is kept in
/// the user's cache folder under a key naming the CPU, both kernels and the thread count; a changed key measures again.
/// </summary>
/// <remarks>
/// Why: which kernel is faster depends on the machine, not on which library loads. On the development machine
/// (AVX-512, Debian's OpenBLAS 0.3.21 running its older kernels) the managed kernel is 1.4-4x faster; where OpenBLAS
/// recognises the CPU it can win. <c>VAE_GEMM</c> still forces one.
/// </remarks>
public static class GemmCalibration
{
    /// <summary>The cache file's name inside <see cref="Data.DataDirectory.Default"/>.</summary>
    public const string FileName = "gemm-calibration.json";

    /// <summary>The cache file.</summary>
    public static string CachePath => Path.Combine(Data.DataDirectory.Default, FileName);

    /// <summary>What the choice depends on: the CPU model, both kernels as they describe themselves, and the thread count.</summary>
    public static string MachineKey() =>
        $"cpu {CpuModel()}; managed {ManagedGemm.Describe(ManagedGemm.Best)}; " +
        $"openblas {OpenBlas.LibraryName} core {OpenBlas.CoreName ?? "unknown"}; {Parallelism.Threads} threads";

    /// <summary>The faster kernel for this machine: from the cache when its key matches, else measured now and cached.</summary>
    public static GemmKernel Choose() => Choose(CachePath, MachineKey(), Time);

    /// <summary>How long a process waits for another one's measurement before it measures on its own.</summary>
    public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The kernel recorded in <paramref name="path"/> under <paramref name="key"/>, or the faster by <paramref name="time"/>
    /// (seconds per pass over the seed step's GEMMs), then recorded. A missing, unreadable or stale file is measured
    /// again and replaced atomically; a cache folder that cannot be written only costs a measurement next time.
    /// </summary>
    /// <remarks>
    /// The measurement holds an exclusive lock on <c>PATH.lock</c>, and the file is read again once the lock is taken: processes
    /// that start together on a new machine (a sweep's workers, a test program and the CLI it runs) measure one at a time and
    /// all take the first one's choice, so they multiply on the same kernel and get the same float32 sums. Without the lock
    /// each would keep its own measurement, and on a loaded machine where the kernels are close the choices can differ.
    /// </remarks>
    public static GemmKernel Choose(string path, string key, Func<GemmKernel, double> time)
    {
        if (Cached(path, key) is { } cached) return cached;
        using var held = Lock(path + ".lock");
        if (Cached(path, key) is { } measuredMeanwhile) return measuredMeanwhile;
        double managed = time(GemmKernel.Managed), openBlas = time(GemmKernel.OpenBlas);
        var choice = openBlas < managed ? GemmKernel.OpenBlas : GemmKernel.Managed;
        var record = new JsonObject
        {
            ["key"] = key,
            ["choice"] = choice == GemmKernel.OpenBlas ? "openblas" : "managed",
            ["managed_ms"] = managed * 1e3,
            ["openblas_ms"] = openBlas * 1e3,
            ["measured"] = DateTime.UtcNow.ToString("O"),
        };
        // NOTE: one entry per key, so processes at different thread counts do not measure again in turn. The file is read
        // again after the measurement: a process that could not take the lock in time may have added its key meanwhile.
        var kept = new JsonArray();
        foreach (var e in Entries(path))
            if (KeyOf(e) is { } other && other != key) kept.Add(e!.DeepClone());
        kept.Add(record);
        try
        {
            var file = new JsonObject { ["entries"] = kept };
            AtomicFile.WriteAllText(path, file.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // NOTE: a read-only cache is not an error: the next process measures again.
        }
        return choice;
    }

    /// <summary>The kernel recorded under <paramref name="key"/>, or null.</summary>
    static GemmKernel? Cached(string path, string key) =>
        Entries(path).FirstOrDefault(e => KeyOf(e) == key) is { } hit ? Choice(hit) : null;

    /// <summary>
    /// An exclusive lock on <paramref name="lockPath"/> (an OS file lock, released when the process dies), waiting up to
    /// <see cref="LockTimeout"/> for another holder; null when the folder cannot be written or the wait runs out, and the
    /// caller goes on without it.
    /// </summary>
    static FileStream? Lock(string lockPath)
    {
        var deadline = DateTime.UtcNow + LockTimeout;
        while (true)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(lockPath))!);
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (HeldByAnother(e) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }
    }

    /// <summary>Whether opening a file failed because another process holds its lock (EWOULDBLOCK on Linux and macOS, a sharing or lock violation on Windows).</summary>
    static bool HeldByAnother(IOException e) => e.HResult is 11 or 35 or unchecked((int)0x80070020) or unchecked((int)0x80070021);

    /// <summary>The recorded entries of <paramref name="path"/> (an earlier single-entry file counts as one); none when it is missing or unreadable.</summary>
    static List<JsonNode?> Entries(string path)
    {
        try
        {
            if (!File.Exists(path)) return [];
            var node = JsonNode.Parse(File.ReadAllText(path));
            if (node?["entries"] is JsonArray list) return [.. list];
            return node?["key"] is not null ? [node] : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException or FormatException)
        {
            return [];
        }
    }

    /// <summary>The kernel an entry names; null for anything else.</summary>
    static GemmKernel? Choice(JsonNode entry) => Text(entry["choice"]) switch
    {
        "managed" => GemmKernel.Managed,
        "openblas" => GemmKernel.OpenBlas,
        _ => null,
    };

    /// <summary>The key an entry is recorded under; null when it has none (a hand-edited entry is skipped, not an error).</summary>
    static string? KeyOf(JsonNode? entry) => Text(entry?["key"]);

    /// <summary>A JSON string's value; null for anything else.</summary>
    static string? Text(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    /// <summary>Median seconds of one pass over the seed step's GEMM calls (k = 5) on <paramref name="kernel"/>, over about 0.2 s.</summary>
    public static double Time(GemmKernel kernel) =>
        TrainingBenchmark.TimeGemms(TrainingBenchmark.VaeShapes(784, [200, 200], 50, TrainingBenchmark.DefaultBatch, 5, backward: true), 0.2, kernel);

    /// <summary>The CPU's model name (<c>/proc/cpuinfo</c> on Linux), else the processor architecture.</summary>
    static string CpuModel()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is int colon and > 0)
                        return line[(colon + 1)..].Trim();
        }
        catch (IOException)
        {
            // NOTE: fall through to the architecture.
        }
        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
    }
}
