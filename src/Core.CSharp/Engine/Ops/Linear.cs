namespace VaeResearch.Engine;

/// <summary>The affine map y = x W^T + b (PyTorch's <c>F.linear</c>), GEMM-backed.</summary>
public sealed partial class Tensor
{
    /// <summary>
    /// y[..., out] = x[..., in] W^T + b with W of shape [out, in] (PyTorch <c>nn.Linear</c> layout)
    /// and optional bias b of shape [out]. Leading dimensions of x are flattened into rows.
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (weight.Rank != 2 || x.Rank < 1 || x.Dim(-1) != weight.Dim(1))
            throw new ArgumentException(
                $"Linear: input {ShapeString(x.ShapeSpan)} does not match weight {ShapeString(weight.ShapeSpan)} (expected input [..., {(weight.Rank == 2 ? weight.Dim(1) : -1)}])");
        int outDim = weight.Dim(0), inDim = weight.Dim(1);
        if (bias is not null && (bias.Rank != 1 || bias.Dim(0) != outDim))
            throw new ArgumentException($"Linear: bias {ShapeString(bias.ShapeSpan)} does not match weight {ShapeString(weight.ShapeSpan)} (expected [{outDim}])");
        int rows = x.Size / Math.Max(1, inDim);
        var outShape = x.Shape;
        outShape[^1] = outDim;

        bool tracks = Autograd.Enabled && (x.RequiresGrad || weight.RequiresGrad || (bias?.RequiresGrad ?? false));
        Node? node = tracks
            ? new Node(bias is null ? [x, weight] : [x, weight, bias], o => LinearBackward(x, weight, bias, o, rows, inDim, outDim))
            : null;
        var y = Result(outShape, node);
        var yd = y.Data;
        if (bias is not null)
            for (int r = 0; r < rows; r++) bias.Data.CopyTo(yd.Slice(r * outDim, outDim));
        Gemm.Sgemm(false, true, rows, outDim, inDim, 1f, x.Data, inDim, weight.Data, inDim, bias is null ? 0f : 1f, yd, outDim);
        return y;
    }

    static void LinearBackward(Tensor x, Tensor w, Tensor? b, Tensor o, int rows, int inDim, int outDim)
    {
        var gy = o.Grad;
        if (x.RequiresGrad) // dx += dy W (dx = dy W on the first contribution)
        {
            var gx = x.GradTarget(out bool fresh);
            Gemm.Sgemm(false, false, rows, inDim, outDim, 1f, gy, outDim, w.Data, inDim, fresh ? 0f : 1f, gx, inDim);
        }
        if (w.RequiresGrad) // dW += dy^T x
            Gemm.Sgemm(true, false, outDim, inDim, rows, 1f, gy, outDim, x.Data, inDim, 1f, w.GradForAccumulation(), inDim);
        if (b is not null && b.RequiresGrad) // db += column sums of dy
            Kernels.AddColumnSums(gy, rows, outDim, b.GradForAccumulation());
    }
}
