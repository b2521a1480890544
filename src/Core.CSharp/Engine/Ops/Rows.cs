namespace VaeResearch.Engine;

/// <summary>Selecting and concatenating along the first axis (rows), e.g. to route examples to mixture components.</summary>
public sealed partial class Tensor
{
    /// <summary>Rows <paramref name="rows"/> of this tensor, in that order (repeats allowed): [rows.Length, ...].</summary>
    public Tensor SelectRows(ReadOnlySpan<int> rows)
    {
        if (Rank < 1) throw new ArgumentException("SelectRows needs a tensor of rank >= 1");
        int n = shape[0];
        int width = n == 0 ? 0 : Size / n;
        var index = rows.ToArray();
        foreach (int r in index)
            if ((uint)r >= (uint)n) throw new ArgumentOutOfRangeException(nameof(rows), r, $"row index outside [0, {n}) for shape {ShapeString(shape)}");
        var x = this;
        Node? node = Tracks(x)
            ? new Node([x], o =>
            {
                var gx = x.GradForAccumulation();
                var gy = o.Grad;
                for (int i = 0; i < index.Length; i++)
                {
                    var dst = gx.Slice(index[i] * width, width);
                    System.Numerics.Tensors.TensorPrimitives.Add(dst, gy.Slice(i * width, width), dst);
                }
            })
            : null;
        var outShape = Shape;
        outShape[0] = index.Length;
        var y = Result(outShape, node);
        var src = x.Data;
        var yd = y.Data;
        for (int i = 0; i < index.Length; i++) src.Slice(index[i] * width, width).CopyTo(yd.Slice(i * width, width));
        return y;
    }

    /// <summary>The parts stacked along the first axis; all other dimensions must agree.</summary>
    public static Tensor ConcatRows(IReadOnlyList<Tensor> parts)
    {
        if (parts.Count == 0) throw new ArgumentException("ConcatRows needs at least one part");
        var first = parts[0];
        if (first.Rank < 1) throw new ArgumentException("ConcatRows needs tensors of rank >= 1");
        int rows = 0;
        foreach (var p in parts)
        {
            if (p.Rank != first.Rank || !p.ShapeSpan[1..].SequenceEqual(first.ShapeSpan[1..]))
                throw new ArgumentException($"ConcatRows: shapes {ShapeString(first.ShapeSpan)} and {ShapeString(p.ShapeSpan)} differ beyond the first axis");
            rows += p.Dim(0);
        }
        var outShape = first.Shape;
        outShape[0] = rows;
        var inputs = parts.ToArray();
        bool tracks = Autograd.Enabled && inputs.Any(p => p.RequiresGrad);
        Node? node = tracks
            ? new Node(inputs, o =>
            {
                var g = o.Grad;
                int at = 0;
                foreach (var p in inputs)
                {
                    if (p.RequiresGrad)
                    {
                        var gp = p.GradForAccumulation();
                        System.Numerics.Tensors.TensorPrimitives.Add(gp, g.Slice(at, p.Size), gp);
                    }
                    at += p.Size;
                }
            })
            : null;
        var y = Result(outShape, node);
        int offset = 0;
        foreach (var p in inputs)
        {
            p.Data.CopyTo(y.Data[offset..]);
            offset += p.Size;
        }
        return y;
    }
}
