using System.Runtime.InteropServices;
using TorchSharp;
using VaeResearch.Compute;
using static TorchSharp.torch;

namespace VaeResearch.Torch;

/// <summary>
/// A float32 libtorch tensor behind the research code's tensor interface: every operation is one or a few
/// TorchSharp calls, recorded by libtorch's autograd.
/// </summary>
/// <remarks>
/// Shapes follow the native engine's rules, checked before libtorch sees them: a binary operation broadcasts the
/// smaller operand over the leading dimensions of the larger one (its shape must be a suffix of the larger one's,
/// which is where libtorch's trailing-dimension broadcasting agrees), and a one-element operand of rank 0 or 1
/// (what <see cref="Sum()"/> returns) acts as a scalar. <see cref="Sum()"/> and <see cref="Mean()"/> have shape
/// [1]. Tensors made inside a <see cref="TorchContext.Scope"/> are disposed when it ends; intermediate handles of
/// an operation are disposed at once (libtorch's autograd keeps what it saved).
/// </remarks>
public sealed class TorchTensor : ITensor<TorchTensor>
{
    /// <summary>Wraps <paramref name="value"/> (no copy); it must be float32.</summary>
    public TorchTensor(Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.dtype != ScalarType.Float32)
            throw new ArgumentException($"TorchTensor holds float32 tensors, got {value.dtype}", nameof(value));
        Value = value;
    }

    /// <summary>The wrapped libtorch tensor.</summary>
    public Tensor Value { get; }

    /// <inheritdoc/>
    public int[] Shape => Array.ConvertAll(Value.shape, d => checked((int)d));

    /// <inheritdoc/>
    public int Size => checked((int)Value.numel());

    /// <inheritdoc/>
    public int Rank => (int)Value.dim();

    /// <inheritdoc/>
    public int Dim(int axis) => (int)Value.size(NormalizeAxis(axis));

    /// <inheritdoc/>
    public bool RequiresGrad => Value.requires_grad;

    /// <inheritdoc/>
    public override string ToString() => $"TorchTensor{ShapeString(Shape)} on {Value.device}{(RequiresGrad ? " requires_grad" : "")}";

    // ---- elementwise --------------------------------------------------------------------------------------

    /// <inheritdoc/>
    public static TorchTensor operator +(TorchTensor a, TorchTensor b)
    {
        CheckBroadcast(a, b, "Add");
        return new(a.Value.add(b.Value));
    }

    /// <inheritdoc/>
    public static TorchTensor operator -(TorchTensor a, TorchTensor b)
    {
        CheckBroadcast(a, b, "Sub");
        return new(a.Value.sub(b.Value));
    }

    /// <inheritdoc/>
    public static TorchTensor operator *(TorchTensor a, TorchTensor b)
    {
        CheckBroadcast(a, b, "Mul");
        return new(a.Value.mul(b.Value));
    }

    /// <inheritdoc/>
    public static TorchTensor operator *(TorchTensor a, float c)
    {
        using var s = c.ToScalar();
        return new(a.Value.mul(s));
    }

    /// <inheritdoc/>
    public static TorchTensor operator *(float c, TorchTensor a) => a * c;

    /// <inheritdoc/>
    public static TorchTensor operator +(TorchTensor a, float c)
    {
        using var s = c.ToScalar();
        return new(a.Value.add(s));
    }

    /// <inheritdoc/>
    public static TorchTensor operator -(TorchTensor a, float c) => a + (-c);

    /// <inheritdoc/>
    public static TorchTensor operator -(TorchTensor a) => new(a.Value.neg());

    /// <inheritdoc/>
    public TorchTensor Exp() => new(Value.exp());

    /// <inheritdoc/>
    public TorchTensor Square() => new(Value.square());

    /// <inheritdoc/>
    public TorchTensor Sigmoid() => new(Value.sigmoid());

    /// <inheritdoc/>
    public TorchTensor Tanh() => new(Value.tanh());

    /// <inheritdoc/>
    public TorchTensor Softplus() => new(nn.functional.softplus(Value));

    /// <inheritdoc/>
    public TorchTensor Relu() => new(Value.relu());

    // ---- reductions ---------------------------------------------------------------------------------------

    /// <inheritdoc/>
    public TorchTensor Sum(int axis) => new(Value.sum(NormalizeAxis(axis)));

    /// <inheritdoc/>
    public TorchTensor Sum()
    {
        using var total = Value.sum();
        return new(total.reshape(1));
    }

    /// <inheritdoc/>
    public TorchTensor Mean(int axis) => new(Value.mean([NormalizeAxis(axis)]));

    /// <inheritdoc/>
    public TorchTensor Mean()
    {
        using var mean = Value.mean();
        return new(mean.reshape(1));
    }

    /// <inheritdoc/>
    public TorchTensor LogSumExp(int axis) => new(Value.logsumexp(NormalizeAxis(axis), false));

    // ---- shape and rows -----------------------------------------------------------------------------------

    /// <inheritdoc/>
    public TorchTensor Reshape(params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var resolved = (int[])shape.Clone();
        int infer = Array.IndexOf(resolved, -1);
        if (infer >= 0 && Array.IndexOf(resolved, -1, infer + 1) >= 0)
            throw new ArgumentException($"Reshape: at most one dimension may be -1, got {ShapeString(shape)}");
        if (infer >= 0)
        {
            long known = 1;
            for (int i = 0; i < resolved.Length; i++) if (i != infer) known *= resolved[i];
            resolved[infer] = known == 0 ? 0 : (int)(Size / known);
        }
        if (resolved.Any(d => d < 0) || ShapeSize(resolved) != Size)
            throw new ArgumentException($"Reshape: cannot view {ShapeString(Shape)} ({Size} values) as {ShapeString(shape)}");
        return new(Value.reshape(Longs(resolved)));
    }

    /// <inheritdoc/>
    public TorchTensor SelectRows(ReadOnlySpan<int> rows)
    {
        if (Rank < 1) throw new ArgumentException("SelectRows needs a tensor of rank >= 1");
        long n = Value.size(0);
        var index = new long[rows.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            if ((uint)rows[i] >= (ulong)n)
                throw new ArgumentOutOfRangeException(nameof(rows), rows[i], $"row index outside [0, {n}) for shape {ShapeString(Shape)}");
            index[i] = rows[i];
        }
        using var indexTensor = torch.tensor(index, ScalarType.Int64, Value.device);
        return new(Value.index_select(0, indexTensor));
    }

    /// <inheritdoc/>
    public static TorchTensor ConcatRows(IReadOnlyList<TorchTensor> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new ArgumentException("ConcatRows needs at least one part");
        var first = parts[0].Shape;
        if (first.Length < 1) throw new ArgumentException("ConcatRows needs tensors of rank >= 1");
        var values = new Tensor[parts.Count];
        for (int i = 0; i < parts.Count; i++)
        {
            var shape = parts[i].Shape;
            if (shape.Length != first.Length || !shape.AsSpan(1).SequenceEqual(first.AsSpan(1)))
                throw new ArgumentException($"ConcatRows: shapes {ShapeString(first)} and {ShapeString(shape)} differ beyond the first axis");
            values[i] = parts[i].Value;
        }
        return new(torch.cat(values, 0));
    }

    // ---- fused layers and terms ---------------------------------------------------------------------------

    /// <inheritdoc/>
    public static TorchTensor Linear(TorchTensor x, TorchTensor weight, TorchTensor? bias)
    {
        if (weight.Rank != 2 || x.Rank < 1 || x.Dim(-1) != weight.Dim(1))
            throw new ArgumentException(
                $"Linear: input {ShapeString(x.Shape)} does not match weight {ShapeString(weight.Shape)} (expected input [..., {(weight.Rank == 2 ? weight.Dim(1) : -1)}])");
        if (bias is not null && (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0)))
            throw new ArgumentException($"Linear: bias {ShapeString(bias.Shape)} does not match weight {ShapeString(weight.Shape)} (expected [{weight.Dim(0)}])");
        return new(nn.functional.linear(x.Value, weight.Value, bias?.Value));
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Computed in float64 as 1/2 (mu^2 + (expm1(logVar) - logVar)) and rounded to float32, like the native engine:
    /// exactly 0 at mu = 0, logVar = 0, and without float32's cancellation in exp(v) - 1 - v near v = 0.
    /// </remarks>
    public static TorchTensor GaussianKl(TorchTensor mu, TorchTensor logVar)
    {
        if (!mu.Shape.AsSpan().SequenceEqual(logVar.Shape))
            throw new ArgumentException($"GaussianKl: mu {ShapeString(mu.Shape)} and logVar {ShapeString(logVar.Shape)} must have the same shape");
        using var m = mu.Value.to_type(ScalarType.Float64);
        using var v = logVar.Value.to_type(ScalarType.Float64);
        using var m2 = m.square();
        using var e = v.expm1();
        using var excess = e.sub(v);
        using var sum = m2.add(excess);
        using var half = 0.5.ToScalar();
        using var kl = sum.mul(half);
        return new(kl.to_type(ScalarType.Float32));
    }

    /// <inheritdoc/>
    public static TorchTensor BernoulliLogLikelihood(TorchTensor logits, TorchTensor x)
    {
        if (x.Rank != 2 || !IsSuffix(x.Shape, logits.Shape))
            throw new ArgumentException(
                $"BernoulliLogLikelihood: data {ShapeString(x.Shape)} must be [n, d] and a suffix of logits {ShapeString(logits.Shape)}");
        using var xl = logits.Value.mul(x.Value);
        using var sp = nn.functional.softplus(logits.Value);
        using var terms = xl.sub(sp);
        return new(terms.sum(-1));
    }

    /// <inheritdoc/>
    /// <remarks>
    /// libtorch's batch_norm over the rows of x reshaped to [rows, d]: in training the batch mean and biased
    /// variance normalize, and the running statistics are updated in place with the unbiased variance
    /// (running = (1 - momentum) running + momentum batch); in evaluation the running statistics normalize.
    /// </remarks>
    public static TorchTensor BatchNorm(TorchTensor x, TorchTensor gamma, TorchTensor beta, TorchTensor runningMean, TorchTensor runningVar,
        bool training, float momentum, float eps)
    {
        if (x.Rank < 1) throw new ArgumentException("BatchNorm needs an input of rank >= 1");
        int d = x.Dim(-1);
        foreach (var (t, name) in new[] { (gamma, "gamma"), (beta, "beta"), (runningMean, "running mean"), (runningVar, "running variance") })
            if (t.Rank != 1 || t.Dim(0) != d)
                throw new ArgumentException($"BatchNorm: {name} {ShapeString(t.Shape)} does not match input {ShapeString(x.Shape)} (expected [{d}])");
        int n = d == 0 ? 0 : x.Size / d;
        if (training && n < 2)
            throw new ArgumentException($"BatchNorm: training needs at least 2 rows to estimate a variance, got {n}");
        using var rows = x.Value.reshape(-1, d);
        using var y = nn.functional.batch_norm(rows, runningMean.Value, runningVar.Value, gamma.Value, beta.Value, training, momentum, eps);
        return new(y.reshape(x.Value.shape));
    }

    // ---- autograd and transfers ---------------------------------------------------------------------------

    /// <inheritdoc/>
    public void Backward()
    {
        if (Size != 1)
            throw new InvalidOperationException($"Backward() needs a one-element result, got shape {ShapeString(Shape)}");
        if (!RequiresGrad)
            throw new InvalidOperationException("Backward() on a tensor that does not require a gradient");
        Value.backward();
    }

    /// <inheritdoc/>
    public float Item() =>
        Size == 1 ? Value.item<float>() : throw new InvalidOperationException($"Item() needs one element, tensor has shape {ShapeString(Shape)}");

    /// <inheritdoc/>
    public void CopyTo(Span<float> destination)
    {
        if (destination.Length != Size)
            throw new ArgumentException($"a tensor of shape {ShapeString(Shape)} copies to {Size} values, not {destination.Length}", nameof(destination));
        Download(Value, destination);
    }

    /// <inheritdoc/>
    public void CopyFrom(ReadOnlySpan<float> source)
    {
        if (source.Length != Size)
            throw new ArgumentException($"a tensor of shape {ShapeString(Shape)} takes {Size} values, not {source.Length}", nameof(source));
        using var host = Host(source, Value.shape);
        using var noGrad = torch.no_grad();
        Value.copy_(host);
    }

    /// <inheritdoc/>
    public float[] GradToArray()
    {
        var values = new float[Size];
        using var grad = Value.grad;
        if (grad is not null) Download(grad, values);
        return values;
    }

    // ---- helpers ------------------------------------------------------------------------------------------

    /// <summary>A new CPU float32 tensor of shape <paramref name="shape"/> holding <paramref name="values"/>.</summary>
    internal static Tensor Host(ReadOnlySpan<float> values, long[] shape)
    {
        var dims = Array.ConvertAll(shape, d => checked((int)d));
        int size = ShapeSize(dims);
        if (size != values.Length)
            throw new ArgumentException($"shape {ShapeString(dims)} needs {size} values, got {values.Length}");
        var host = torch.empty(shape, ScalarType.Float32, CPU);
        values.CopyTo(MemoryMarshal.Cast<byte, float>(host.bytes));
        return host;
    }

    /// <summary>Copies the values of <paramref name="tensor"/> (any device, any layout) to <paramref name="destination"/>.</summary>
    internal static void Download(Tensor tensor, Span<float> destination)
    {
        using var detached = tensor.detach();
        using var host = detached.cpu();
        using var contiguous = host.contiguous();
        MemoryMarshal.Cast<byte, float>(contiguous.bytes).CopyTo(destination);
    }

    int NormalizeAxis(int axis)
    {
        int rank = Rank;
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"axis out of range for shape {ShapeString(Shape)}");
        return a;
    }

    static void CheckBroadcast(TorchTensor a, TorchTensor b, string op)
    {
        var sa = a.Shape;
        var sb = b.Shape;
        // NOTE: the native engine's rule: with equal sizes the operand of higher rank is the larger.
        int na = a.Size, nb = b.Size;
        bool aBig = na > nb || (na == nb && sa.Length >= sb.Length);
        var (big, small, smallSize) = aBig ? (sa, sb, nb) : (sb, sa, na);
        if (IsSuffix(small, big) || (smallSize == 1 && small.Length <= 1)) return;
        throw new ArgumentException(
            $"{op}: shapes {ShapeString(sa)} and {ShapeString(sb)} do not broadcast (the smaller must be a suffix of the larger)");
    }

    static bool IsSuffix(int[] small, int[] big) =>
        small.Length <= big.Length && small.AsSpan().SequenceEqual(big.AsSpan(big.Length - small.Length));

    internal static long[] Longs(int[] shape) => Array.ConvertAll(shape, d => (long)d);

    internal static int ShapeSize(int[] shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension {d} in shape {ShapeString(shape)}");
            n *= d;
            if (n > Array.MaxLength) throw new ArgumentException($"shape {ShapeString(shape)} has more elements than an array can hold");
        }
        return (int)n;
    }

    internal static string ShapeString(int[] shape) => "[" + string.Join(", ", shape) + "]";
}
