using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace VaeResearch.Engine;

/// <summary>
/// A contiguous float32 tensor in C order, with an optional gradient and the autodiff node that
/// produced it (reverse mode, like PyTorch's <c>torch.Tensor</c>).
/// </summary>
/// <remarks>
/// Values live in <c>buffer[offset .. offset + Size)</c>. Tensors created inside a
/// <see cref="Workspace"/> take their buffers from a pool and give them back when the workspace
/// ends, so a training step allocates no large arrays once its shapes have been seen.
/// Ops are instance methods defined one concept per file under <c>Engine/Ops</c>.
/// </remarks>
public sealed partial class Tensor : Compute.ITensor<Tensor>
{
    internal float[] buffer;
    internal int offset;
    internal float[]? gradBuffer;
    internal int gradOffset;
    internal Node? gradFn;
    readonly int[] shape;

    internal Tensor(float[] buffer, int offset, int[] shape, bool requiresGrad)
    {
        this.buffer = buffer;
        this.offset = offset;
        this.shape = shape;
        Size = ShapeSize(shape);
        RequiresGrad = requiresGrad;
        if (offset < 0 || offset + Size > buffer.Length)
            throw new ArgumentException($"buffer of length {buffer.Length} cannot hold {Size} values at offset {offset}");
    }

    /// <summary>Number of elements.</summary>
    public int Size { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => shape.Length;

    /// <summary>The shape (a copy).</summary>
    public int[] Shape => (int[])shape.Clone();

    /// <summary>Length of dimension <paramref name="axis"/> (negative counts from the end).</summary>
    public int Dim(int axis) => shape[NormalizeAxis(axis)];

    /// <summary>Whether gradients flow to (or through) this tensor.</summary>
    public bool RequiresGrad { get; }

    /// <summary>Whether this is a leaf that accumulates a gradient (a parameter), not an op result.</summary>
    public bool IsLeaf => gradFn is null;

    /// <summary>The values.</summary>
    public Span<float> Data => buffer.AsSpan(offset, Size);

    /// <summary>Whether a gradient buffer has been attached (after <see cref="Backward(float)"/> reached it).</summary>
    public bool HasGrad => gradBuffer is not null;

    /// <summary>The gradient (same shape as the values). Throws if no gradient has been computed.</summary>
    public Span<float> Grad =>
        gradBuffer is null
            ? throw new InvalidOperationException("this tensor has no gradient: call Backward() on a result that depends on it")
            : gradBuffer.AsSpan(gradOffset, Size);

    /// <summary>The single value of a one-element tensor.</summary>
    public float Item() =>
        Size == 1 ? buffer[offset] : throw new InvalidOperationException($"Item() needs one element, tensor has shape {ShapeString(shape)}");

    /// <summary>A copy of the values.</summary>
    public float[] ToArray() => Data.ToArray();

    /// <inheritdoc/>
    public void CopyTo(Span<float> destination)
    {
        if (destination.Length != Size)
            throw new ArgumentException($"a tensor of shape {ShapeString(shape)} copies to {Size} values, not {destination.Length}", nameof(destination));
        Data.CopyTo(destination);
    }

    /// <inheritdoc/>
    public void CopyFrom(ReadOnlySpan<float> source)
    {
        if (source.Length != Size)
            throw new ArgumentException($"a tensor of shape {ShapeString(shape)} takes {Size} values, not {source.Length}", nameof(source));
        source.CopyTo(Data);
    }

    /// <inheritdoc/>
    public float[] GradToArray() => gradBuffer is null ? new float[Size] : Grad.ToArray();

    /// <inheritdoc/>
    public override string ToString() => $"Tensor{ShapeString(shape)}{(RequiresGrad ? " requires_grad" : "")}";

    // ---- creation -------------------------------------------------------------------------------

    /// <summary>An uninitialized tensor (pooled inside a <see cref="Workspace"/>).</summary>
    public static Tensor Empty(params int[] shape) => new(Workspace.Rent(ShapeSize(shape)), 0, (int[])shape.Clone(), false);

    /// <summary>A tensor of zeros (pooled inside a <see cref="Workspace"/>).</summary>
    public static Tensor Zeros(params int[] shape)
    {
        var t = Empty(shape);
        t.Data.Clear();
        return t;
    }

    /// <summary>A tensor filled with <paramref name="value"/> (pooled inside a <see cref="Workspace"/>).</summary>
    public static Tensor Full(float value, params int[] shape)
    {
        var t = Empty(shape);
        t.Data.Fill(value);
        return t;
    }

    /// <summary>A constant tensor that wraps <paramref name="data"/> without copying.</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        if (ShapeSize(shape) != data.Length)
            throw new ArgumentException($"shape {ShapeString(shape)} needs {ShapeSize(shape)} values, array has {data.Length}");
        return new Tensor(data, 0, (int[])shape.Clone(), false);
    }

    /// <summary>A trainable leaf (owns its values and gradient; never pooled).</summary>
    public static Tensor Parameter(float[] data, params int[] shape)
    {
        if (ShapeSize(shape) != data.Length)
            throw new ArgumentException($"shape {ShapeString(shape)} needs {ShapeSize(shape)} values, array has {data.Length}");
        return new Tensor(data, 0, (int[])shape.Clone(), true)
        {
            gradBuffer = new float[data.Length],
        };
    }

    /// <summary>A copy of the values as a new constant tensor (pooled inside a <see cref="Workspace"/>).</summary>
    public Tensor Detach()
    {
        var t = Empty(shape);
        Data.CopyTo(t.Data);
        return t;
    }

    // ---- helpers shared by ops ------------------------------------------------------------------

    /// <summary>Product of the dimensions (1 for a scalar shape []).</summary>
    public static int ShapeSize(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension {d} in shape");
            n *= d;
            if (n > Array.MaxLength) throw new ArgumentException("shape has more elements than an array can hold");
        }
        return (int)n;
    }

    /// <summary>Formats a shape as [a, b, c].</summary>
    public static string ShapeString(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    internal ReadOnlySpan<int> ShapeSpan => shape;

    internal int NormalizeAxis(int axis)
    {
        int a = axis < 0 ? axis + shape.Length : axis;
        if (a < 0 || a >= shape.Length)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"axis out of range for shape {ShapeString(shape)}");
        return a;
    }

    /// <summary>Creates the gradient buffer (zeroed, pooled) if there is none yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    [MemberNotNull(nameof(gradBuffer))]
    internal void EnsureGrad()
    {
        if (gradBuffer is not null) return;
        gradBuffer = Workspace.Rent(Size);
        gradOffset = 0;
        gradBuffer.AsSpan(0, Size).Clear();
    }

    /// <summary>
    /// The gradient for a backward step to add its contribution into, or, when <paramref name="fresh"/> is true (the first
    /// contribution), to write over: then it is newly rented and holds garbage, and every element must be written.
    /// </summary>
    // NOTE: the first contribution writing instead of adding saves clearing the buffer and reading the zeros back:
    // at k = 50 the decoder's activations and logits take 33 MB of gradients per step.
    internal Span<float> GradTarget(out bool fresh)
    {
        fresh = gradBuffer is null;
        if (fresh)
        {
            gradBuffer = Workspace.Rent(Size);
            gradOffset = 0;
        }
        return gradBuffer.AsSpan(gradOffset, Size);
    }

    /// <summary>The gradient to accumulate into, created (zeroed, pooled) on first use.</summary>
    internal Span<float> GradForAccumulation()
    {
        EnsureGrad();
        return gradBuffer.AsSpan(gradOffset, Size);
    }

    /// <summary>Whether an op with these inputs records a node for backward.</summary>
    internal static bool Tracks(Tensor a) => a.RequiresGrad && Autograd.Enabled;

    internal static bool Tracks(Tensor a, Tensor b) => (a.RequiresGrad || b.RequiresGrad) && Autograd.Enabled;

    /// <summary>A pooled result tensor; <paramref name="node"/> (null when nothing needs a gradient) is its backward step.</summary>
    internal static Tensor Result(int[] shape, Node? node)
    {
        var t = new Tensor(Workspace.Rent(ShapeSize(shape)), 0, shape, node is not null);
        t.gradFn = node;
        return t;
    }
}
