namespace VaeResearch.Engine;

/// <summary>Inverted dropout: in training, zeroes each value with probability p and scales the rest by 1/(1-p).</summary>
public sealed class Dropout : Module
{
    /// <summary>A dropout layer with drop probability <paramref name="p"/> in [0, 1).</summary>
    public Dropout(float p)
    {
        if (!(p >= 0f && p < 1f)) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability must be in [0, 1)");
        P = p;
    }

    /// <summary>Drop probability.</summary>
    public float P { get; }

    /// <summary>x with a fresh seeded mask from <paramref name="rng"/> in training; x itself in evaluation or when p = 0.</summary>
    public Tensor Forward(Tensor x, Rng rng)
    {
        if (!Training || P == 0f) return x;
        var mask = Tensor.Empty(x.Shape);
        var m = mask.Data;
        rng.FillBernoulli(m, 1f - P);
        System.Numerics.Tensors.TensorPrimitives.Multiply(m, 1f / (1f - P), m);
        return x * mask;
    }
}
