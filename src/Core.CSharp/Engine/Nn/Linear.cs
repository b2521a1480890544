using VaeResearch.Compute;

namespace VaeResearch.Engine;

/// <summary>A fully connected layer y = x W^T + b with W [out, in] (PyTorch <c>nn.Linear</c> layout).</summary>
public sealed class Linear<T> : Module<T> where T : class, ITensor<T>
{
    /// <summary>A layer with weights drawn by <paramref name="init"/> (Xavier-normal by default) and zero bias.</summary>
    public Linear(ComputeContext<T> context, int inFeatures, int outFeatures, Rng rng, WeightInit init = WeightInit.Normal) : base(context)
    {
        if (inFeatures < 1 || outFeatures < 1)
            throw new ArgumentOutOfRangeException(nameof(inFeatures), $"Linear needs positive sizes, got {inFeatures} -> {outFeatures}");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", Init.Weights(init, outFeatures, inFeatures, rng), outFeatures, inFeatures);
        Bias = RegisterParameter("bias", new float[outFeatures], outFeatures);
    }

    /// <summary>Input width.</summary>
    public int InFeatures { get; }

    /// <summary>Output width.</summary>
    public int OutFeatures { get; }

    /// <summary>Weight [out, in].</summary>
    public T Weight { get; }

    /// <summary>Bias [out].</summary>
    public T Bias { get; }

    /// <summary>x [..., in] to [..., out].</summary>
    public T Forward(T x) => T.Linear(x, Weight, Bias);
}
