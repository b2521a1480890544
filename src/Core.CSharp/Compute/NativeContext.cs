using VaeResearch.Engine;

namespace VaeResearch.Compute;

/// <summary>
/// The native engine as a compute context: the CPU, the engine's <see cref="Tensor"/>, its buffer pool
/// (<see cref="Workspace"/>) as the step scope, and its fused <see cref="Engine.Adam"/>.
/// </summary>
/// <remarks>
/// The engine's worker count is process-wide (<see cref="Parallelism.Threads"/>); a context made with a thread
/// count sets it, and the trainer makes one context per run.
/// </remarks>
public sealed class NativeContext : ComputeContext<Tensor>
{
    /// <summary>The CPU with the engine's current thread count.</summary>
    public static readonly NativeContext Cpu = new();

    NativeContext() { }

    /// <summary>A context on the CPU with <paramref name="threads"/> workers (sets <see cref="Parallelism.Threads"/>).</summary>
    public static NativeContext WithThreads(int threads)
    {
        Parallelism.Threads = threads;
        return Cpu;
    }

    /// <inheritdoc/>
    public override string Backend => ComputeBackends.Native;

    /// <inheritdoc/>
    public override string Device => "cpu";

    /// <inheritdoc/>
    public override int Threads => Parallelism.Threads;

    /// <inheritdoc/>
    /// <remarks><c>gemm</c>: the GEMM kernel in words (a resumed run reads it back to continue on the same kernel).</remarks>
    public override IReadOnlyDictionary<string, string> Versions =>
        new Dictionary<string, string> { ["gemm"] = Gemm.KernelDescription };

    /// <inheritdoc/>
    public override Tensor Parameter(ReadOnlySpan<float> values, params int[] shape) => Tensor.Parameter(values.ToArray(), shape);

    /// <inheritdoc/>
    public override Tensor State(ReadOnlySpan<float> values, params int[] shape) => Tensor.FromArray(values.ToArray(), shape);

    /// <inheritdoc/>
    public override Tensor Upload(ReadOnlySpan<float> values, params int[] shape)
    {
        var t = Tensor.Empty(shape);
        if (values.Length != t.Size)
            throw new ArgumentException($"shape {Tensor.ShapeString(shape)} needs {t.Size} values, got {values.Length}");
        values.CopyTo(t.Data);
        return t;
    }

    /// <inheritdoc/>
    public override Tensor Fill(FillValues fill, params int[] shape)
    {
        var t = Tensor.Empty(shape);
        fill(t.Data);
        return t;
    }

    /// <inheritdoc/>
    public override Tensor Zeros(params int[] shape) => Tensor.Zeros(shape);

    /// <inheritdoc/>
    public override IDisposable Scope() => Workspace.Begin();

    /// <inheritdoc/>
    public override IDisposable NoGrad() => Autograd.NoGrad();

    /// <inheritdoc/>
    public override IOptimizer Adam(IReadOnlyList<Tensor> parameters, AdamSettings settings) =>
        new Adam(parameters, settings.LearningRate, settings.Beta1, settings.Beta2, settings.Eps, settings.Kind);
}
