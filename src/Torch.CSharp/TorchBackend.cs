using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;
using VaeResearch.Compute;

namespace VaeResearch.Torch;

/// <summary>The torch backend's entry point: registers it with <see cref="ComputeBackends"/> and says whether libtorch loads.</summary>
public static class TorchBackend
{
    /// <summary>The libtorch version the project references (libtorch-cpu-linux-x64), used when TorchSharp names none.</summary>
    const string ReferencedLibTorch = "2.10.0";

    static readonly Lazy<string?> loadError = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes backend <c>torch</c> available to <see cref="ComputeBackends.Create"/> (a <see cref="TorchContext"/> per call).</summary>
    public static void Register() =>
        ComputeBackends.Register(ComputeBackends.Torch, (device, threads) => new TorchContext(device, threads));

    /// <summary>Null when libtorch loads in this process; otherwise why it does not (the first attempt's answer, kept).</summary>
    public static string? LoadError => loadError.Value;

    /// <summary>TorchSharp's version (its assembly's informational version, e.g. 0.107.0).</summary>
    public static string TorchSharpVersion
    {
        get
        {
            var assembly = typeof(torch).Assembly;
            string? version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
            version ??= assembly.GetName().Version?.ToString() ?? "unknown";
            int plus = version.IndexOf('+', StringComparison.Ordinal);
            return plus < 0 ? version : version[..plus];
        }
    }

    /// <summary>The libtorch version TorchSharp reports (<c>torch.__version__</c>), else the referenced package's.</summary>
    public static string LibTorchVersion
    {
        get
        {
            string? reported = LoadError is null ? torch.__version__ : null;
            return string.IsNullOrWhiteSpace(reported) ? ReferencedLibTorch : reported;
        }
    }

    /// <summary>Throws unless libtorch loads.</summary>
    /// <exception cref="VaeResearchException">libtorch cannot be loaded; the message says why and what to do.</exception>
    internal static void EnsureLoaded()
    {
        if (LoadError is { } why)
            throw new VaeResearchException(
                $"the torch backend cannot load libtorch: {why}. Rebuild the program (dotnet build) so that its output folder holds "
                + "libtorch's libraries from the libtorch-cpu-linux-x64 package (runtimes/linux-x64/native/libtorch_cpu.so) and the "
                + "libstdc++ patch of build/Torch.targets runs on libLibTorchSharp.so (`readelf -V` on the copy under bin/ then shows "
                + "GLIBCXX_3.4.32 with flag WEAK); or use --backend native");
    }

    /// <summary>Loads libtorch's CPU backend and makes one tensor; null on success, else the reason.</summary>
    static string? Probe()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            using var t = torch.zeros(1);
            return null;
        }
        // NOTE: any failure here means the backend is unusable (DllNotFoundException, TypeInitializationException,
        // NotSupportedException from TorchSharp's loader, EntryPointNotFoundException, ...); the reason is kept for the message.
        catch (Exception e)
        {
            string? loader = LoaderError();
            return Describe(e) + (loader is null ? "" : $"; the dynamic loader says: {loader}");
        }
    }

    /// <summary>The first line of the message of an exception and of each inner exception, outermost first.</summary>
    // NOTE: TorchSharp's NotSupportedException carries its whole load trace; its first line is the summary.
    static string Describe(Exception e)
    {
        var parts = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            string message = x.Message.Trim();
            int newline = message.IndexOf('\n', StringComparison.Ordinal);
            if (newline >= 0) message = message[..newline].TrimEnd();
            if (message.Length > 0 && seen.Add(message)) parts.Add($"{x.GetType().Name}: {message}");
        }
        return string.Join(" <- ", parts);
    }

    /// <summary>
    /// Why the dynamic loader refuses the program's copy of libLibTorchSharp.so (e.g. a missing GLIBCXX version),
    /// which TorchSharp's own message does not say; null when there is no copy or it loads.
    /// </summary>
    static string? LoaderError()
    {
        if (!OperatingSystem.IsLinux()) return null;
        string baseDir = AppContext.BaseDirectory;
        foreach (string path in new[] { Path.Combine(baseDir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"), Path.Combine(baseDir, "libLibTorchSharp.so") })
        {
            if (!File.Exists(path)) continue;
            try
            {
                NativeLibrary.Free(NativeLibrary.Load(path));
                return null;
            }
            catch (DllNotFoundException e)
            {
                // NOTE: .NET puts advice first and dlerror()'s text on the last line.
                var lines = e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                return lines.Length == 0 ? e.GetType().Name : lines[^1];
            }
        }
        return null;
    }
}
