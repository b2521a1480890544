using System.Numerics.Tensors;

namespace VaeResearch.Engine;

/// <summary>Batch normalization over the rows of [n, d] (Ioffe and Szegedy 2015), fused forward and backward.</summary>
public sealed partial class Tensor
{
    /// <summary>
    /// y = gamma * (x - mean) / sqrt(var + eps) + beta per column of x [..., d] (leading dimensions are rows).
    /// </summary>
    /// <remarks>
    /// Training: mean and the biased variance come from this batch, and the running statistics are
    /// updated in place as PyTorch does: running = (1 - momentum) running + momentum * batch, with the
    /// unbiased variance. Evaluation: the running statistics are used, so each row's output does not
    /// depend on the other rows. Activity paper, section 2.5.
    /// </remarks>
    public static Tensor BatchNorm(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
        bool training, float momentum, float eps)
    {
        int d = x.Dim(-1);
        foreach (var (t, name) in new[] { (gamma, "gamma"), (beta, "beta"), (runningMean, "running mean"), (runningVar, "running variance") })
            if (t.Rank != 1 || t.Dim(0) != d)
                throw new ArgumentException($"BatchNorm: {name} {ShapeString(t.ShapeSpan)} does not match input {ShapeString(x.ShapeSpan)} (expected [{d}])");
        int n = x.Size / Math.Max(1, d);
        if (training && n < 2)
            throw new ArgumentException($"BatchNorm: training needs at least 2 rows to estimate a variance, got {n}");

        // Per-column mean and 1/sqrt(var + eps), kept for backward.
        var mean = new float[d];
        var invStd = new float[d];
        var xd = x.Data;
        if (training)
        {
            var sum = new double[d];
            var sq = new double[d];
            for (int r = 0; r < n; r++)
            {
                var row = xd.Slice(r * d, d);
                for (int j = 0; j < d; j++) sum[j] += row[j];
            }
            for (int j = 0; j < d; j++) mean[j] = (float)(sum[j] / n);
            for (int r = 0; r < n; r++)
            {
                var row = xd.Slice(r * d, d);
                for (int j = 0; j < d; j++)
                {
                    double c = row[j] - mean[j];
                    sq[j] += c * c;
                }
            }
            var rm = runningMean.Data;
            var rv = runningVar.Data;
            for (int j = 0; j < d; j++)
            {
                double biased = sq[j] / n;
                // NOTE: eps floors the variance so a constant column normalizes to 0, not NaN.
                invStd[j] = (float)(1.0 / Math.Sqrt(biased + eps));
                rm[j] = (1 - momentum) * rm[j] + momentum * mean[j];
                rv[j] = (float)((1 - momentum) * rv[j] + momentum * sq[j] / (n - 1));
            }
        }
        else
        {
            runningMean.Data.CopyTo(mean);
            for (int j = 0; j < d; j++) invStd[j] = 1f / MathF.Sqrt(runningVar.Data[j] + eps);
        }

        var xhat = Empty(x.Shape);
        var xh = xhat.Data;
        for (int r = 0; r < n; r++)
        {
            var src = xd.Slice(r * d, d);
            var dst = xh.Slice(r * d, d);
            TensorPrimitives.Subtract(src, mean, dst);
            TensorPrimitives.Multiply(dst, invStd, dst);
        }

        bool tracks = Autograd.Enabled && (x.RequiresGrad || gamma.RequiresGrad || beta.RequiresGrad);
        Node? node = tracks
            ? new Node([x, gamma, beta], o => BatchNormBackward(x, gamma, beta, xhat, invStd, o, n, d, training))
            : null;
        var y = Result(x.Shape, node);
        var yd = y.Data;
        for (int r = 0; r < n; r++)
        {
            var dst = yd.Slice(r * d, d);
            TensorPrimitives.MultiplyAdd(xh.Slice(r * d, d), gamma.Data, beta.Data, dst);
        }
        return y;
    }

    static void BatchNormBackward(Tensor x, Tensor gamma, Tensor beta, Tensor xhat, float[] invStd, Tensor o, int n, int d, bool training)
    {
        var gy = o.Grad;
        var xh = xhat.Data;
        var sumG = new float[d];
        var sumGX = new float[d];
        for (int r = 0; r < n; r++)
        {
            var g = gy.Slice(r * d, d);
            TensorPrimitives.Add(sumG, g, sumG);
            TensorPrimitives.MultiplyAdd(g, xh.Slice(r * d, d), sumGX, sumGX);
        }
        if (gamma.RequiresGrad) TensorPrimitives.Add(gamma.GradForAccumulation(), sumGX, gamma.GradForAccumulation());
        if (beta.RequiresGrad) TensorPrimitives.Add(beta.GradForAccumulation(), sumG, beta.GradForAccumulation());
        if (!x.RequiresGrad) return;
        var gx = x.GradForAccumulation();
        var scale = new float[d];
        TensorPrimitives.Multiply(gamma.Data, invStd, scale);
        for (int r = 0; r < n; r++)
        {
            var g = gy.Slice(r * d, d);
            var dst = gx.Slice(r * d, d);
            var xr = xh.Slice(r * d, d);
            for (int j = 0; j < d; j++)
            {
                // Training: dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)); evaluation: gamma * invstd * g.
                float centered = training ? g[j] - sumG[j] / n - xr[j] * sumGX[j] / n : g[j];
                dst[j] += scale[j] * centered;
            }
        }
    }
}
