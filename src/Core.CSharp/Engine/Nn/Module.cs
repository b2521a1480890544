namespace VaeResearch.Engine;

/// <summary>
/// A building block with named parameters, buffers (non-trainable state such as running statistics)
/// and child modules, like PyTorch's <c>nn.Module</c>. Names are dotted paths ("hidden.0.weight").
/// </summary>
public abstract class Module
{
    readonly List<(string Name, Tensor Tensor)> parameters = [];
    readonly List<(string Name, Tensor Tensor)> buffers = [];
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

    /// <summary>Registers a trainable tensor under <paramref name="name"/>.</summary>
    protected Tensor RegisterParameter(string name, Tensor parameter)
    {
        if (!parameter.RequiresGrad) throw new ArgumentException($"parameter '{name}' must require a gradient");
        parameters.Add((name, parameter));
        return parameter;
    }

    /// <summary>Registers non-trainable state (saved in checkpoints) under <paramref name="name"/>.</summary>
    protected Tensor RegisterBuffer(string name, Tensor buffer)
    {
        buffers.Add((name, buffer));
        return buffer;
    }

    /// <summary>Registers a child module whose names are prefixed with <paramref name="name"/> (an empty name adds no prefix).</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        children.Add((name, module));
        return module;
    }

    /// <summary>Every parameter with its dotted name, this module's first, then each child's in registration order.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> NamedParameters() => Walk(m => m.parameters);

    /// <summary>Every buffer with its dotted name.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> NamedBuffers() => Walk(m => m.buffers);

    /// <summary>The parameters, in <see cref="NamedParameters"/> order.</summary>
    public IReadOnlyList<Tensor> Parameters() => NamedParameters().Select(p => p.Tensor).ToList();

    /// <summary>Total number of trainable values.</summary>
    public long ParameterCount() => NamedParameters().Sum(p => (long)p.Tensor.Size);

    IEnumerable<(string, Tensor)> Walk(Func<Module, List<(string, Tensor)>> select, string prefix = "")
    {
        foreach (var (name, t) in select(this)) yield return (prefix + name, t);
        foreach (var (name, child) in children)
            foreach (var item in child.Walk(select, name.Length == 0 ? prefix : prefix + name + "."))
                yield return item;
    }

    /// <summary>Parameters and buffers as named copies, for <see cref="Safetensors.Save"/>.</summary>
    public IEnumerable<NamedTensor> StateDict() =>
        NamedParameters().Concat(NamedBuffers()).Select(p => new NamedTensor(p.Name, p.Tensor.Shape, p.Tensor.ToArray()));

    /// <summary>
    /// Copies every parameter and buffer from <paramref name="content"/>; a missing tensor or a wrong
    /// shape is a <see cref="FileFormatException"/> naming it.
    /// </summary>
    public void LoadStateDict(SafetensorsContent content)
    {
        foreach (var (name, t) in NamedParameters().Concat(NamedBuffers()))
            content.Get(name, t.Shape).Data.CopyTo(t.Data);
    }
}
