namespace VaeResearch.Compute;

/// <summary>
/// The backends a program can run models on, by name: the native engine always, others (libtorch) once the program
/// that ships them registers them (the core never needs libtorch).
/// </summary>
public static class ComputeBackends
{
    /// <summary>The native engine's name.</summary>
    public const string Native = "native";

    /// <summary>The TorchSharp backend's name.</summary>
    public const string Torch = "torch";

    static readonly Dictionary<string, Func<string, int, IComputeContext>> factories = new()
    {
        [Native] = (device, threads) => device == "cpu"
            ? NativeContext.WithThreads(threads)
            : throw new ConfigException("device", $"must be cpu for the native backend, got '{device}' (backend torch runs on CUDA)"),
    };

    /// <summary>Makes <paramref name="name"/> available: <paramref name="factory"/>(device, threads) builds a context.</summary>
    public static void Register(string name, Func<string, int, IComputeContext> factory)
    {
        lock (factories) factories[name] = factory;
    }

    /// <summary>Whether <paramref name="name"/> is available in this program.</summary>
    public static bool IsAvailable(string name)
    {
        lock (factories) return factories.ContainsKey(name);
    }

    /// <summary>A context of backend <paramref name="name"/> on <paramref name="device"/> with <paramref name="threads"/> CPU workers.</summary>
    /// <exception cref="ConfigException">An unknown backend, one this program does not ship, or a device it cannot use.</exception>
    public static IComputeContext Create(string name, string device, int threads)
    {
        if (name is not (Native or Torch))
            throw new ConfigException("backend", $"must be native or torch, got '{name}'");
        if (!IsValidDevice(device))
            throw new ConfigException("device", $"must be cpu, cuda or cuda:N, got '{device}'");
        Func<string, int, IComputeContext>? factory;
        lock (factories) factories.TryGetValue(name, out factory);
        if (factory is null)
            throw new ConfigException("backend",
                $"{name} is not part of this program (the torch backend lives in VaeResearch.Torch: reference it and call TorchBackend.Register())");
        return factory(device, threads);
    }

    /// <summary>Whether <paramref name="device"/> is cpu, cuda or cuda:N.</summary>
    public static bool IsValidDevice(string device) =>
        device is "cpu" or "cuda" || (device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(device[5..], out int n) && n >= 0);
}
