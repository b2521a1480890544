using TorchSharp;
using VaeResearch.Compute;
using static TorchSharp.torch;

namespace VaeResearch.Torch;

/// <summary>
/// libtorch (through TorchSharp) as a compute context: <see cref="TorchTensor"/>s on one device, libtorch's dispose
/// scopes as the step scope, its gradient mode for <see cref="NoGrad"/>, and <see cref="TorchAdam"/>.
/// </summary>
/// <remarks>
/// Parameters and state are made outside every dispose scope (they live as long as the model); uploads and zeros
/// belong to the current scope. libtorch's CPU thread count is process-wide (<c>torch.set_num_threads</c>), as the
/// native engine's is.
/// </remarks>
public sealed class TorchContext : ComputeContext<TorchTensor>
{
    readonly torch.Device device;

    /// <summary>A context on <paramref name="device"/> (cpu, cuda or cuda:N) with <paramref name="threads"/> CPU threads.</summary>
    /// <exception cref="ConfigException">The device is not cpu, cuda or cuda:N, or CUDA is not available to this build.</exception>
    /// <exception cref="VaeResearchException">libtorch cannot be loaded; the message says why and what to do.</exception>
    public TorchContext(string device, int threads)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!ComputeBackends.IsValidDevice(device))
            throw new ConfigException("device", $"must be cpu, cuda or cuda:N, got '{device}'");
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be at least 1");
        TorchBackend.EnsureLoaded();
        if (device != "cpu")
        {
            if (!torch.cuda.is_available())
                throw new ConfigException("device",
                    $"is '{device}', but CUDA is not available to this build (torch.cuda.is_available() is false): it needs the "
                    + "TorchSharp-cuda-linux package (or libtorch-cuda-12.8-linux-x64) in place of libtorch-cpu-linux-x64 in "
                    + "src/Torch.CSharp/Torch.CSharp.csproj, and an NVIDIA GPU with its driver; or use --device cpu");
            int count = torch.cuda.device_count();
            int index = device == "cuda" ? 0 : int.Parse(device.AsSpan(5), System.Globalization.CultureInfo.InvariantCulture);
            if (index >= count)
                throw new ConfigException("device", $"is '{device}', but this machine has {count} CUDA device{(count == 1 ? "" : "s")} (cuda:0 to cuda:{count - 1})");
        }
        this.device = torch.device(device);
        torch.set_num_threads(threads);
        Device = device;
    }

    /// <inheritdoc/>
    public override string Backend => ComputeBackends.Torch;

    /// <inheritdoc/>
    public override string Device { get; }

    /// <summary>The libtorch device the tensors live on.</summary>
    public torch.Device TorchDevice => device;

    /// <inheritdoc/>
    public override int Threads => torch.get_num_threads();

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, string> Versions => new Dictionary<string, string>
    {
        ["torchsharp"] = TorchBackend.TorchSharpVersion,
        ["libtorch"] = TorchBackend.LibTorchVersion,
    };

    /// <inheritdoc/>
    public override TorchTensor Parameter(ReadOnlySpan<float> values, params int[] shape)
    {
        var t = OnDevice(values, shape);
        t.requires_grad_(true);
        return new TorchTensor(t.DetachFromDisposeScope());
    }

    /// <inheritdoc/>
    public override TorchTensor State(ReadOnlySpan<float> values, params int[] shape) =>
        new(OnDevice(values, shape).DetachFromDisposeScope());

    /// <inheritdoc/>
    public override TorchTensor Upload(ReadOnlySpan<float> values, params int[] shape) => new(OnDevice(values, shape));

    /// <inheritdoc/>
    public override TorchTensor Zeros(params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        TorchTensor.ShapeSize(shape);
        return new(torch.zeros(TorchTensor.Longs(shape), ScalarType.Float32, device));
    }

    /// <inheritdoc/>
    /// <remarks>A libtorch dispose scope: every tensor made inside it, other than parameters and state, is disposed when it ends.</remarks>
    public override IDisposable Scope() => torch.NewDisposeScope();

    /// <inheritdoc/>
    public override IDisposable NoGrad() => torch.no_grad();

    /// <inheritdoc/>
    public override IOptimizer Adam(IReadOnlyList<TorchTensor> parameters, AdamSettings settings) => new TorchAdam(parameters, settings);

    /// <summary>A tensor on the device with these values (in the current dispose scope, if any).</summary>
    Tensor OnDevice(ReadOnlySpan<float> values, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var host = TorchTensor.Host(values, TorchTensor.Longs(shape));
        if (device.type == DeviceType.CPU) return host;
        using (host) return host.to(device);
    }
}
