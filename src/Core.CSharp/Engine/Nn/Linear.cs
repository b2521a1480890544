namespace VaeResearch.Engine;

/// <summary>A fully connected layer y = x W^T + b with W [out, in] (PyTorch <c>nn.Linear</c> layout).</summary>
public sealed class Linear : Module
{
    /// <summary>A layer with weights drawn by <paramref name="init"/> (Xavier-normal by default) and zero bias.</summary>
    public Linear(int inFeatures, int outFeatures, Rng rng, WeightInit init = WeightInit.Normal)
    {
        if (inFeatures < 1 || outFeatures < 1)
            throw new ArgumentOutOfRangeException(nameof(inFeatures), $"Linear needs positive sizes, got {inFeatures} -> {outFeatures}");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", Tensor.Parameter(Init.Weights(init, outFeatures, inFeatures, rng), outFeatures, inFeatures));
        Bias = RegisterParameter("bias", Tensor.Parameter(new float[outFeatures], outFeatures));
    }

    /// <summary>Input width.</summary>
    public int InFeatures { get; }

    /// <summary>Output width.</summary>
    public int OutFeatures { get; }

    /// <summary>Weight [out, in].</summary>
    public Tensor Weight { get; }

    /// <summary>Bias [out].</summary>
    public Tensor Bias { get; }

    /// <summary>x [..., in] to [..., out].</summary>
    public Tensor Forward(Tensor x) => Tensor.Linear(x, Weight, Bias);
}
