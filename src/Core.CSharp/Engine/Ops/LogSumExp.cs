namespace VaeResearch.Engine;

/// <summary>log sum exp over an axis, e.g. over the importance samples of the IWAE bound ([k, batch] to [batch]).</summary>
public sealed partial class Tensor
{
    /// <summary>log(sum_j exp(x_j)) over <paramref name="axis"/>; that axis is removed.</summary>
    /// <remarks>
    /// Exact for extreme inputs: with m = max_j x_j the result is m + log(sum_j exp(x_j - m)); all
    /// entries -inf give -inf (with zero gradient), any +inf gives +inf. The gradient is the softmax
    /// exp(x_j - result).
    /// </remarks>
    public Tensor LogSumExp(int axis)
    {
        var x = this;
        var (outer, n, inner) = AxisLayout(axis);
        Node? node = Tracks(x)
            ? new Node([x], o =>
            {
                var xd = x.Data;
                var yd = o.Data;
                var gy = o.Grad;
                var gx = x.GradForAccumulation();
                for (int p = 0; p < outer; p++)
                    for (int i = 0; i < inner; i++)
                    {
                        int r = p * inner + i;
                        float y = yd[r];
                        // NOTE: when every entry is -inf, x - y is NaN: the softmax weights are defined as 0.
                        if (float.IsNegativeInfinity(y)) continue;
                        for (int j = 0; j < n; j++)
                        {
                            int idx = (p * n + j) * inner + i;
                            gx[idx] += gy[r] * MathF.Exp(xd[idx] - y);
                        }
                    }
            })
            : null;
        var result = Result(ShapeWithout(axis), node);
        var src = x.Data;
        var dst = result.Data;
        for (int p = 0; p < outer; p++)
            for (int i = 0; i < inner; i++)
            {
                float m = float.NegativeInfinity;
                for (int j = 0; j < n; j++) m = MathF.Max(m, src[(p * n + j) * inner + i]);
                if (float.IsInfinity(m))
                {
                    dst[p * inner + i] = m;
                    continue;
                }
                // NOTE: shifting by the max keeps every exp in (0, 1]; accumulate in double.
                double s = 0;
                for (int j = 0; j < n; j++) s += Math.Exp(src[(p * n + j) * inner + i] - m);
                dst[p * inner + i] = m + (float)Math.Log(s);
            }
        return result;
    }
}
