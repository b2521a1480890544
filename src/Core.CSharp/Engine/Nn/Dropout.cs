using VaeResearch.Compute;

namespace VaeResearch.Engine;

/// <summary>Inverted dropout: in training, zeroes each value with probability p and scales the rest by 1/(1-p).</summary>
public sealed class Dropout<T> : Module<T> where T : class, ITensor<T>
{
    /// <summary>A dropout layer with drop probability <paramref name="p"/> in [0, 1).</summary>
    public Dropout(ComputeContext<T> context, float p) : base(context)
    {
        if (!(p >= 0f && p < 1f)) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability must be in [0, 1)");
        P = p;
    }

    /// <summary>Drop probability.</summary>
    public float P { get; }

    /// <summary>x with a fresh seeded mask from <paramref name="rng"/> in training; x itself in evaluation or when p = 0.</summary>
    public T Forward(T x, Rng rng)
    {
        if (!Training || P == 0f) return x;
        float keep = 1f - P;
        return x * Context.Fill(m =>
        {
            rng.FillBernoulli(m, keep);
            System.Numerics.Tensors.TensorPrimitives.Multiply(m, 1f / keep, m);
        }, x.Shape);
    }
}
