namespace VaeResearch.Engine;

/// <summary>How the weights of a Linear layer are drawn (biases always start at 0).</summary>
public enum WeightInit
{
    /// <summary>Xavier-Glorot normal, N(0, 2 / (fan_in + fan_out)) (activity paper, section 2.2).</summary>
    Normal,
    /// <summary>Glorot-uniform, U(-sqrt(6 / (fan_in + fan_out)), +sqrt(6 / (fan_in + fan_out))) (Burda et al.'s code; Glorot and Bengio 2010, eq. 16).</summary>
    Uniform,
}

/// <summary>Weight initialization.</summary>
public static class Init
{
    /// <summary>A [fanOut, fanIn] weight matrix (row-major) drawn from <paramref name="rng"/> by <paramref name="kind"/>.</summary>
    public static float[] Weights(WeightInit kind, int fanOut, int fanIn, Rng rng) => kind switch
    {
        WeightInit.Normal => XavierNormal(fanOut, fanIn, rng),
        WeightInit.Uniform => XavierUniform(fanOut, fanIn, rng),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown weight initialization"),
    };

    /// <summary>
    /// Xavier-Glorot normal: values ~ N(0, 2 / (fanIn + fanOut)) (Glorot and Bengio 2010), drawn from <paramref name="rng"/>.
    /// </summary>
    public static float[] XavierNormal(int fanOut, int fanIn, Rng rng)
    {
        var w = new float[checked(fanOut * fanIn)];
        rng.FillNormal(w);
        float std = MathF.Sqrt(2f / (fanIn + fanOut));
        System.Numerics.Tensors.TensorPrimitives.Multiply(w, std, w);
        return w;
    }

    /// <summary>
    /// Glorot-uniform: values ~ U(-a, a) with a = sqrt(6 / (fanIn + fanOut)), so Var(w) = a^2 / 3 = 2 / (fanIn + fanOut),
    /// the same variance as <see cref="XavierNormal"/> (Glorot and Bengio 2010, eq. 16; Burda et al.'s code).
    /// </summary>
    public static float[] XavierUniform(int fanOut, int fanIn, Rng rng)
    {
        var w = new float[checked(fanOut * fanIn)];
        rng.FillUniform(w);
        float a = MathF.Sqrt(6f / (fanIn + fanOut));
        // NOTE: 2u - 1 is exact in float32 for the generator's u in [0, 1) (multiples of 2^-24) and lies in [-1, 1),
        // so its rounded product with a stays within [-a, a].
        for (int i = 0; i < w.Length; i++) w[i] = a * (2f * w[i] - 1f);
        return w;
    }
}
