using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>
/// Epitomes of K contiguous latent units with stride s over D units (eVAE paper, section 4, Fig. 5):
/// epitome y covers units [y s, y s + K), and there are (D - K) / s + 1 of them.
/// </summary>
public sealed class EpitomeLayout
{
    EpitomeLayout(int latent, int size, int stride)
    {
        Latent = latent;
        Size = size;
        Stride = stride;
        Count = (latent - size) / stride + 1;
    }

    /// <summary>
    /// The layout for D = <paramref name="latent"/>, K = <paramref name="size"/>, s = <paramref name="stride"/>;
    /// the epitomes must tile the D units exactly ((D - K) divisible by s), else a clear error.
    /// </summary>
    public static EpitomeLayout Create(int latent, int size, int stride)
    {
        if (size < 1 || size > latent)
            throw new ConfigException("epitome_size", $"(K) must be between 1 and the latent size D = {latent}, got {size}");
        if (stride < 1 || stride > size)
            throw new ConfigException("epitome_stride", $"(s) must be between 1 and K = {size} (larger strides leave units unused), got {stride}");
        if ((latent - size) % stride != 0)
            throw new ConfigException("epitome_stride",
                $"s = {stride}: epitomes of size K = {size} do not tile D = {latent} units ((D - K) = {latent - size} must be a multiple of s)");
        return new EpitomeLayout(latent, size, stride);
    }

    /// <summary>Latent dimension D.</summary>
    public int Latent { get; }

    /// <summary>Units per epitome K.</summary>
    public int Size { get; }

    /// <summary>Stride s between epitome starts.</summary>
    public int Stride { get; }

    /// <summary>Number of epitomes (D - K) / s + 1.</summary>
    public int Count { get; }

    /// <summary>First unit of epitome <paramref name="y"/>.</summary>
    public int Start(int y)
    {
        if ((uint)y >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(y), y, $"epitome index must be in [0, {Count})");
        return y * Stride;
    }

    /// <summary>The mask m_y: 1 on units [y s, y s + K), 0 elsewhere; length D.</summary>
    public float[] Mask(int y)
    {
        var m = new float[Latent];
        m.AsSpan(Start(y), Size).Fill(1f);
        return m;
    }

    /// <summary>The masks of the given epitomes as a constant tensor [n, D] (pooled inside a workspace).</summary>
    public Tensor Masks(ReadOnlySpan<int> groups)
    {
        var t = Tensor.Zeros(groups.Length, Latent);
        var d = t.Data;
        for (int i = 0; i < groups.Length; i++) d.Slice(i * Latent + Start(groups[i]), Size).Fill(1f);
        return t;
    }
}
