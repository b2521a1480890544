using System.Numerics.Tensors;

namespace VaeResearch.Engine;

/// <summary>
/// Elementwise add, subtract, multiply and divide with suffix broadcasting: the smaller operand's
/// shape must equal the trailing dimensions of the larger one, and it is repeated over the leading
/// ones. This covers a bias row against a batch ([n, d] with [d]), a batch against importance
/// samples ([k, n, d] with [n, d]) and a scalar ([]) against anything. Masking by a constant
/// tensor (one that does not require a gradient) is a <see cref="Mul(Tensor, Tensor)"/>.
/// </summary>
public sealed partial class Tensor
{
    enum BinaryOp { Add, Sub, Mul, Div }

    /// <summary>a + b (suffix broadcasting).</summary>
    public static Tensor Add(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Add);

    /// <summary>a - b (suffix broadcasting).</summary>
    public static Tensor Sub(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Sub);

    /// <summary>a * b (suffix broadcasting).</summary>
    public static Tensor Mul(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Mul);

    /// <summary>a / b (suffix broadcasting).</summary>
    public static Tensor Div(Tensor a, Tensor b) => Binary(a, b, BinaryOp.Div);

    /// <summary>a + b (suffix broadcasting).</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Add(a, b);

    /// <summary>a - b (suffix broadcasting).</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Sub(a, b);

    /// <summary>a * b (suffix broadcasting).</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Mul(a, b);

    /// <summary>a / b (suffix broadcasting).</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Div(a, b);

    static bool IsSuffix(ReadOnlySpan<int> small, ReadOnlySpan<int> big) =>
        small.Length <= big.Length && small.SequenceEqual(big[(big.Length - small.Length)..]);

    static Tensor Binary(Tensor a, Tensor b, BinaryOp op)
    {
        // NOTE: with equal sizes the operand of higher rank is the larger ([1, n, d] against [n, d]; [1] against []).
        bool aBig = a.Size > b.Size || (a.Size == b.Size && a.Rank >= b.Rank);
        var big = aBig ? a : b;
        var small = aBig ? b : a;
        if (!IsSuffix(small.ShapeSpan, big.ShapeSpan))
            throw new ArgumentException(
                $"{op}: shapes {ShapeString(a.ShapeSpan)} and {ShapeString(b.ShapeSpan)} do not broadcast (the smaller must be a suffix of the larger)");
        int m = small.Size;
        int tiles = m == 0 ? 0 : big.Size / m;

        Node? node = Tracks(a, b) ? new Node([a, b], o => BinaryBackward(a, b, o, op, aBig, m, tiles)) : null;
        var y = Result(big.Shape, node);
        Parallelism.For(tiles, Math.Max(1, Kernels.ParallelMin / Math.Max(1, m)), (t0, t1) =>
        {
            for (int t = t0; t < t1; t++)
            {
                var sa = a.buffer.AsSpan(a.offset + (aBig ? t * m : 0), m);
                var sb = b.buffer.AsSpan(b.offset + (aBig ? 0 : t * m), m);
                var dst = y.buffer.AsSpan(y.offset + t * m, m);
                switch (op)
                {
                    case BinaryOp.Add: TensorPrimitives.Add(sa, sb, dst); break;
                    case BinaryOp.Sub: TensorPrimitives.Subtract(sa, sb, dst); break;
                    case BinaryOp.Mul: TensorPrimitives.Multiply(sa, sb, dst); break;
                    default: TensorPrimitives.Divide(sa, sb, dst); break;
                }
            }
        });
        return y;
    }

    static void BinaryBackward(Tensor a, Tensor b, Tensor o, BinaryOp op, bool aBig, int m, int tiles)
    {
        float[] gBuf = o.gradBuffer!;
        // The larger operand's gradient is per element; the smaller one's sums over the tiles.
        for (int t = 0; t < tiles; t++)
        {
            var gt = gBuf.AsSpan(o.gradOffset + t * m, m);
            var at = a.buffer.AsSpan(a.offset + (aBig ? t * m : 0), m);
            var bt = b.buffer.AsSpan(b.offset + (aBig ? 0 : t * m), m);
            if (a.RequiresGrad)
            {
                var ga = a.GradForAccumulation().Slice(aBig ? t * m : 0, m);
                switch (op)
                {
                    case BinaryOp.Add:
                    case BinaryOp.Sub: TensorPrimitives.Add(ga, gt, ga); break;
                    case BinaryOp.Mul: TensorPrimitives.MultiplyAdd(gt, bt, ga, ga); break;
                    default: for (int i = 0; i < m; i++) ga[i] += gt[i] / bt[i]; break;
                }
            }
            if (b.RequiresGrad)
            {
                var gb = b.GradForAccumulation().Slice(aBig ? 0 : t * m, m);
                switch (op)
                {
                    case BinaryOp.Add: TensorPrimitives.Add(gb, gt, gb); break;
                    case BinaryOp.Sub: TensorPrimitives.Subtract(gb, gt, gb); break;
                    case BinaryOp.Mul: TensorPrimitives.MultiplyAdd(gt, at, gb, gb); break;
                    default:
                        // NOTE: d(a/b)/db = -(a/b)/b, read from the saved output.
                        var yt = o.buffer.AsSpan(o.offset + t * m, m);
                        for (int i = 0; i < m; i++) gb[i] -= gt[i] * yt[i] / bt[i];
                        break;
                }
            }
        }
    }
}
