namespace VaeResearch.Engine;

/// <summary>A fully connected layer y = x W^T + b with W [out, in] (PyTorch <c>nn.Linear</c> layout).</summary>
public sealed class Linear : Module
{
    /// <summary>A layer with Xavier-normal weights and zero bias.</summary>
    public Linear(int inFeatures, int outFeatures, Rng rng)
    {
        if (inFeatures < 1 || outFeatures < 1)
            throw new ArgumentOutOfRangeException(nameof(inFeatures), $"Linear needs positive sizes, got {inFeatures} -> {outFeatures}");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", Tensor.Parameter(Init.XavierNormal(outFeatures, inFeatures, rng), outFeatures, inFeatures));
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
