using System.Numerics.Tensors;

namespace VaeResearch.Engine;

/// <summary>Sums and means over one axis or over everything.</summary>
public sealed partial class Tensor
{
    /// <summary>(outer, n, inner) such that the shape is outer x n x inner around <paramref name="axis"/>.</summary>
    internal (int Outer, int N, int Inner) AxisLayout(int axis)
    {
        int a = NormalizeAxis(axis);
        int outer = 1, inner = 1;
        for (int i = 0; i < a; i++) outer *= shape[i];
        for (int i = a + 1; i < shape.Length; i++) inner *= shape[i];
        return (outer, shape[a], inner);
    }

    internal int[] ShapeWithout(int axis)
    {
        int a = NormalizeAxis(axis);
        return [.. shape[..a], .. shape[(a + 1)..]];
    }

    /// <summary>Sum over <paramref name="axis"/> (negative counts from the end); that axis is removed.</summary>
    public Tensor Sum(int axis)
    {
        var x = this;
        var (outer, n, inner) = AxisLayout(axis);
        Node? node = Tracks(x)
            ? new Node([x], o =>
            {
                var gy = o.Grad;
                var gx = x.GradForAccumulation();
                for (int p = 0; p < outer; p++)
                    for (int j = 0; j < n; j++)
                    {
                        var dst = gx.Slice((p * n + j) * inner, inner);
                        TensorPrimitives.Add(dst, gy.Slice(p * inner, inner), dst);
                    }
            })
            : null;
        var y = Result(ShapeWithout(axis), node);
        var yd = y.Data;
        var xd = x.Data;
        if (inner == 1)
        {
            for (int p = 0; p < outer; p++) yd[p] = TensorPrimitives.Sum(xd.Slice(p * n, n));
        }
        else
        {
            yd.Clear();
            for (int p = 0; p < outer; p++)
                for (int j = 0; j < n; j++)
                {
                    var dst = yd.Slice(p * inner, inner);
                    TensorPrimitives.Add(dst, xd.Slice((p * n + j) * inner, inner), dst);
                }
        }
        return y;
    }

    /// <summary>Mean over <paramref name="axis"/>; that axis is removed.</summary>
    public Tensor Mean(int axis) => Sum(axis).Scale(1f / Dim(axis));

    /// <summary>Sum of all elements, as a scalar tensor (shape []).</summary>
    public Tensor Sum()
    {
        var x = this;
        Node? node = Tracks(x)
            ? new Node([x], o => TensorPrimitives.Add(x.GradForAccumulation(), o.Grad[0], x.GradForAccumulation()))
            : null;
        var y = Result([], node);
        // NOTE: float sums of 1024-value blocks (vectorized) are accumulated in double, so the rounding
        // error stays that of a 1024-term sum however large the tensor is.
        const int Block = 1024;
        var xd = x.Data;
        double s = 0;
        for (int i = 0; i < xd.Length; i += Block) s += TensorPrimitives.Sum(xd.Slice(i, Math.Min(Block, xd.Length - i)));
        y.Data[0] = (float)s;
        return y;
    }

    /// <summary>Mean of all elements, as a scalar tensor (shape []).</summary>
    public Tensor Mean() => Sum().Scale(1f / Math.Max(1, Size));
}
