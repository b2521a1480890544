using VaeResearch.Compute;

namespace VaeResearch.Engine;

/// <summary>Batch normalization over features (PyTorch <c>nn.BatchNorm1d</c>: affine, running statistics).</summary>
public sealed class BatchNorm1d<T> : Module<T> where T : class, ITensor<T>
{
    /// <summary>A layer for <paramref name="features"/> columns: weight 1, bias 0, running mean 0, running variance 1.</summary>
    public BatchNorm1d(ComputeContext<T> context, int features, float momentum = 0.1f, float eps = 1e-5f) : base(context)
    {
        if (features < 1) throw new ArgumentOutOfRangeException(nameof(features), features, "must be positive");
        Momentum = momentum;
        Eps = eps;
        var ones = new float[features];
        Array.Fill(ones, 1f);
        Weight = RegisterParameter("weight", ones, features);
        Bias = RegisterParameter("bias", new float[features], features);
        RunningMean = RegisterBuffer("running_mean", new float[features], features);
        RunningVar = RegisterBuffer("running_var", ones, features);
    }

    /// <summary>Scale gamma [features].</summary>
    public T Weight { get; }

    /// <summary>Shift beta [features].</summary>
    public T Bias { get; }

    /// <summary>Running mean [features] (used in evaluation).</summary>
    public T RunningMean { get; }

    /// <summary>Running unbiased variance [features] (used in evaluation).</summary>
    public T RunningVar { get; }

    /// <summary>Weight of the newest batch in the running statistics.</summary>
    public float Momentum { get; }

    /// <summary>Variance floor added before the square root.</summary>
    public float Eps { get; }

    /// <summary>x [..., features] normalized per feature.</summary>
    public T Forward(T x) => T.BatchNorm(x, Weight, Bias, RunningMean, RunningVar, Training, Momentum, Eps);
}
