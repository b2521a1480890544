namespace VaeResearch.Engine;

/// <summary>The Bernoulli log-likelihood of binary data under logits, fused into one pass.</summary>
public sealed partial class Tensor
{
    /// <summary>
    /// log p(x | logits) = sum_d x_d l_d - softplus(l_d) for logits [..., n, d] and data x [n, d]
    /// (x is repeated over the leading dimensions, e.g. the importance samples); result [..., n].
    /// </summary>
    /// <remarks>
    /// x may hold any value in [0, 1] (then this is the negative binary cross-entropy). Only the
    /// logits receive a gradient: d/dl = x - sigmoid(l), computed in the forward pass from its exp and kept for
    /// backward, which then only scales it. Activity paper, eq. (2.10).
    /// </remarks>
    public static Tensor BernoulliLogLikelihood(Tensor logits, Tensor x)
    {
        if (x.Rank != 2 || !IsSuffix(x.ShapeSpan, logits.ShapeSpan))
            throw new ArgumentException(
                $"BernoulliLogLikelihood: data {ShapeString(x.ShapeSpan)} must be [n, d] and a suffix of logits {ShapeString(logits.ShapeSpan)}");
        int d = x.Dim(1);
        int n = x.Dim(0);
        int rows = logits.Size / Math.Max(1, d);
        var residual = Tracks(logits) ? Workspace.Rent(logits.Size) : null;
        Node? node = residual is null
            ? null
            : new Node([logits], o =>
            {
                logits.GradTarget(out bool fresh);
                Kernels.Chunked(rows * d, (s, e) =>
                {
                    for (int r = s / d; r < e / d; r++)
                        Kernels.ScaleInto(residual.AsSpan(r * d, d), o.gradBuffer![o.gradOffset + r],
                            logits.gradBuffer.AsSpan(logits.gradOffset + r * d, d), fresh);
                });
            });
        var y = Result(logits.Shape[..^1], node);
        Kernels.Chunked(rows * d, (s, e) =>
        {
            for (int r = s / d; r < e / d; r++)
                y.buffer[y.offset + r] = Kernels.BernoulliRow(
                    logits.buffer.AsSpan(logits.offset + r * d, d), x.buffer.AsSpan(x.offset + (r % n) * d, d),
                    residual is null ? default : residual.AsSpan(r * d, d));
        });
        return y;
    }
}
