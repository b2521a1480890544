namespace VaeResearch.Engine;

/// <summary>Weight initialization.</summary>
public static class Init
{
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
}
