using VaeResearch.Engine;

namespace VaeResearch.Compute;

/// <summary>Adam's settings (see <see cref="Adam"/> for the two update rules).</summary>
/// <param name="LearningRate">Step size.</param>
/// <param name="Beta1">First-moment decay.</param>
/// <param name="Beta2">Second-moment decay.</param>
/// <param name="Eps">Denominator floor.</param>
/// <param name="Kind">PyTorch's Adam, or the Adam of Burda et al.'s code.</param>
public sealed record AdamSettings(float LearningRate, float Beta1 = 0.9f, float Beta2 = 0.999f, float Eps = 1e-8f,
    OptimizerKind Kind = OptimizerKind.Adam)
{
    /// <summary>These settings, after checking each: an impossible one is an <see cref="ArgumentOutOfRangeException"/> naming it.</summary>
    public AdamSettings Validated()
    {
        if (!Enum.IsDefined(Kind)) throw new ArgumentOutOfRangeException("kind", Kind, "unknown optimizer");
        if (!(LearningRate >= 0f)) throw new ArgumentOutOfRangeException("lr", LearningRate, "learning rate must be >= 0");
        if (!(Beta1 >= 0f && Beta1 < 1f)) throw new ArgumentOutOfRangeException("beta1", Beta1, "beta1 must be in [0, 1)");
        if (!(Beta2 >= 0f && Beta2 < 1f)) throw new ArgumentOutOfRangeException("beta2", Beta2, "beta2 must be in [0, 1)");
        if (!(Eps > 0f)) throw new ArgumentOutOfRangeException("eps", Eps, "eps must be > 0");
        return this;
    }
}

/// <summary>An optimizer over a model's parameters; its state is saved in the checkpoint as flat tensors in parameter order.</summary>
public interface IOptimizer
{
    /// <summary>The step size of the next step.</summary>
    float LearningRate { get; set; }

    /// <summary>Steps taken (t).</summary>
    long StepCount { get; }

    /// <summary>One update from the accumulated gradients.</summary>
    void Step();

    /// <summary>Clears the accumulated gradients.</summary>
    void ZeroGrad();

    /// <summary>The state for a checkpoint: <c>optimizer.exp_avg</c> and <c>optimizer.exp_avg_sq</c>, each [total parameters].</summary>
    IEnumerable<NamedTensor> StateDict();

    /// <summary>Restores the state saved by <see cref="StateDict"/> and the step count.</summary>
    void LoadStateDict(SafetensorsContent content, long stepCount);
}

/// <summary>Writes a tensor's values (C order) on the CPU.</summary>
public delegate void FillValues(Span<float> values);

/// <summary>What every compute context says about itself, whatever its tensor type.</summary>
public interface IComputeContext
{
    /// <summary>The backend's name: <c>native</c> or <c>torch</c>.</summary>
    string Backend { get; }

    /// <summary>The device: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    string Device { get; }

    /// <summary>Worker threads of CPU work.</summary>
    int Threads { get; }

    /// <summary>Library versions worth recording with a run (name to version).</summary>
    IReadOnlyDictionary<string, string> Versions { get; }

    /// <summary>Calls <paramref name="function"/> with this context at its tensor type.</summary>
    TResult Apply<TResult>(IContextFunction<TResult> function);
}

/// <summary>A computation written once for every backend, run by <see cref="IComputeContext.Apply{TResult}"/>.</summary>
public interface IContextFunction<out TResult>
{
    /// <summary>Runs on the context's tensor type.</summary>
    TResult Invoke<T>(ComputeContext<T> context) where T : class, ITensor<T>;
}

/// <summary>
/// A backend on a device: it makes tensors (parameters, state, uploads), scopes a step's temporaries, switches
/// the autodiff recording off, and builds the optimizer. The models hold one and make every tensor through it.
/// </summary>
public abstract class ComputeContext<T> : IComputeContext where T : class, ITensor<T>
{
    /// <inheritdoc/>
    public abstract string Backend { get; }

    /// <inheritdoc/>
    public abstract string Device { get; }

    /// <inheritdoc/>
    public abstract int Threads { get; }

    /// <inheritdoc/>
    public abstract IReadOnlyDictionary<string, string> Versions { get; }

    /// <summary>A trainable leaf with these values (copied to the device).</summary>
    public abstract T Parameter(ReadOnlySpan<float> values, params int[] shape);

    /// <summary>Non-trainable state saved in checkpoints (running statistics), updated in place by the ops that own it.</summary>
    public abstract T State(ReadOnlySpan<float> values, params int[] shape);

    /// <summary>A constant with these values (a batch, noise, a mask), valid until the current scope ends.</summary>
    public abstract T Upload(ReadOnlySpan<float> values, params int[] shape);

    /// <summary>
    /// A constant whose values <paramref name="fill"/> writes on the CPU (a batch of images, noise), valid until the current
    /// scope ends. The native engine lets it write into the tensor itself; other backends upload a filled CPU buffer.
    /// </summary>
    public virtual T Fill(FillValues fill, params int[] shape)
    {
        int size = Tensor.ShapeSize(shape);
        var values = System.Buffers.ArrayPool<float>.Shared.Rent(size);
        try
        {
            fill(values.AsSpan(0, size));
            return Upload(values.AsSpan(0, size), shape);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(values);
        }
    }

    /// <summary>Standard normal noise drawn from <paramref name="rng"/> in C order (the same draws on every backend).</summary>
    public T Normal(Rng rng, params int[] shape) => Fill(values => rng.FillNormal(values), shape);

    /// <summary>A constant of zeros, valid until the current scope ends.</summary>
    public abstract T Zeros(params int[] shape);

    /// <summary>
    /// A scope for one step's temporaries (the native engine's buffer pool, libtorch's dispose scope): tensors made inside
    /// it must not be used after it ends; copy out what must survive.
    /// </summary>
    public abstract IDisposable Scope();

    /// <summary>Switches the autodiff recording off on this thread until the returned scope ends.</summary>
    public abstract IDisposable NoGrad();

    /// <summary>An optimizer over <paramref name="parameters"/> (each a distinct parameter of this context).</summary>
    public abstract IOptimizer Adam(IReadOnlyList<T> parameters, AdamSettings settings);

    /// <inheritdoc/>
    public TResult Apply<TResult>(IContextFunction<TResult> function) => function.Invoke(this);

    /// <inheritdoc/>
    public override string ToString() => $"{Backend} on {Device} ({Threads} thread{(Threads == 1 ? "" : "s")})";
}
