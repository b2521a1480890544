using VaeResearch.Compute;

namespace VaeResearch.Engine;

/// <summary>
/// What every module offers whatever its backend: the training mode and the named state a checkpoint holds.
/// </summary>
public abstract class Module
{
    readonly List<(string Name, Module Module)> children = [];

    /// <summary>Whether the module is in training mode (batch statistics, dropout on).</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Sets training mode on this module and every descendant.</summary>
    public void Train(bool on = true)
    {
        Training = on;
        foreach (var (_, child) in children) child.Train(on);
    }

    /// <summary>Sets evaluation mode (running statistics, no dropout) on this module and every descendant.</summary>
    public void Eval() => Train(false);

    /// <summary>The child modules with their names, in registration order.</summary>
    protected IReadOnlyList<(string Name, Module Module)> Children => children;

    /// <summary>Adds a child (its names are prefixed with <paramref name="name"/>; an empty name adds no prefix).</summary>
    protected void AddChild(string name, Module module) => children.Add((name, module));

    /// <summary>Parameters and buffers as named CPU copies, for <see cref="Safetensors.Save"/>.</summary>
    public abstract IEnumerable<NamedTensor> StateDict();

    /// <summary>
    /// Copies every parameter and buffer from <paramref name="content"/>; a missing tensor or a wrong
    /// shape is a <see cref="FileFormatException"/> naming it.
    /// </summary>
    public abstract void LoadStateDict(SafetensorsContent content);

    /// <summary>Total number of trainable values.</summary>
    public abstract long ParameterCount();
}

/// <summary>
/// A building block with named parameters, buffers (non-trainable state such as running statistics)
/// and child modules, like PyTorch's <c>nn.Module</c>, on the backend of <typeparamref name="T"/>.
/// Names are dotted paths ("hidden.0.weight").
/// </summary>
public abstract class Module<T> : Module where T : class, ITensor<T>
{
    readonly List<(string Name, T Tensor)> parameters = [];
    readonly List<(string Name, T Tensor)> buffers = [];

    /// <summary>A module whose tensors live in <paramref name="context"/>.</summary>
    protected Module(ComputeContext<T> context) => Context = context;

    /// <summary>The backend and device of the module's tensors.</summary>
    public ComputeContext<T> Context { get; }

    /// <summary>Registers a trainable tensor with these values under <paramref name="name"/>.</summary>
    protected T RegisterParameter(string name, ReadOnlySpan<float> values, params int[] shape)
    {
        var parameter = Context.Parameter(values, shape);
        parameters.Add((name, parameter));
        return parameter;
    }

    /// <summary>Registers non-trainable state (saved in checkpoints) with these values under <paramref name="name"/>.</summary>
    protected T RegisterBuffer(string name, ReadOnlySpan<float> values, params int[] shape)
    {
        var buffer = Context.State(values, shape);
        buffers.Add((name, buffer));
        return buffer;
    }

    /// <summary>Registers a child module whose names are prefixed with <paramref name="name"/> (an empty name adds no prefix).</summary>
    protected TModule RegisterModule<TModule>(string name, TModule module) where TModule : Module<T>
    {
        if (!ReferenceEquals(module.Context, Context))
            throw new ArgumentException($"module '{name}' lives in {module.Context}, its parent in {Context}", nameof(module));
        AddChild(name, module);
        return module;
    }

    /// <summary>Every parameter with its dotted name, this module's first, then each child's in registration order.</summary>
    public IEnumerable<(string Name, T Tensor)> NamedParameters() => Walk(m => m.parameters);

    /// <summary>Every buffer with its dotted name.</summary>
    public IEnumerable<(string Name, T Tensor)> NamedBuffers() => Walk(m => m.buffers);

    /// <summary>The parameters, in <see cref="NamedParameters"/> order.</summary>
    public IReadOnlyList<T> Parameters() => NamedParameters().Select(p => p.Tensor).ToList();

    /// <inheritdoc/>
    public override long ParameterCount() => NamedParameters().Sum(p => (long)p.Tensor.Size);

    IEnumerable<(string, T)> Walk(Func<Module<T>, List<(string, T)>> select, string prefix = "")
    {
        foreach (var (name, t) in select(this)) yield return (prefix + name, t);
        foreach (var (name, child) in Children)
            foreach (var item in ((Module<T>)child).Walk(select, name.Length == 0 ? prefix : prefix + name + "."))
                yield return item;
    }

    /// <inheritdoc/>
    public override IEnumerable<NamedTensor> StateDict() =>
        NamedParameters().Concat(NamedBuffers()).Select(p => new NamedTensor(p.Name, p.Tensor.Shape, p.Tensor.ToArray()));

    /// <inheritdoc/>
    public override void LoadStateDict(SafetensorsContent content)
    {
        foreach (var (name, t) in NamedParameters().Concat(NamedBuffers()))
            t.CopyFrom(content.Get(name, t.Shape).Data);
    }
}
