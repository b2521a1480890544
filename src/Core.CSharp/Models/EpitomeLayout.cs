using VaeResearch.Compute;
using VaeResearch.Engine;

namespace VaeResearch.Models;

/// <summary>How the epitomes are placed when (D - K) is not a multiple of the stride s.</summary>
public enum EpitomeLayoutKind
{
    /// <summary>Strict: epitomes at y s, y = 0..(D - K)/s, and (D - K) must be a multiple of s, else an error.</summary>
    Tile,
    /// <summary>
    /// Epitomes at y s for y = 0..floor((D - K)/s), plus, when that leaves units uncovered, one last epitome
    /// aligned to the end, [D - K, D); every unit is covered and only the last two epitomes may overlap more
    /// than the stride says. Equals <see cref="Tile"/> whenever the epitomes tile D.
    /// </summary>
    Cover,
}

/// <summary>
/// Epitomes of K contiguous latent units with stride s over D units (eVAE paper, section 4, Fig. 5):
/// epitome y covers units [y s, y s + K), and there are (D - K) / s + 1 of them; with
/// <see cref="EpitomeLayoutKind.Cover"/> a last epitome [D - K, D) is added when these leave units uncovered.
/// </summary>
public sealed class EpitomeLayout
{
    readonly int[] starts;

    EpitomeLayout(int latent, int size, int stride, EpitomeLayoutKind kind)
    {
        Latent = latent;
        Size = size;
        Stride = stride;
        Kind = kind;
        int strided = (latent - size) / stride + 1;
        bool endAligned = kind == EpitomeLayoutKind.Cover && (latent - size) % stride != 0;
        starts = new int[strided + (endAligned ? 1 : 0)];
        for (int y = 0; y < strided; y++) starts[y] = y * stride;
        if (endAligned) starts[^1] = latent - size;
    }

    /// <summary>
    /// The layout for D = <paramref name="latent"/>, K = <paramref name="size"/>, s = <paramref name="stride"/>;
    /// with <see cref="EpitomeLayoutKind.Tile"/> (default) the epitomes must tile the D units exactly ((D - K)
    /// divisible by s), else a clear error; <see cref="EpitomeLayoutKind.Cover"/> accepts any s and adds an
    /// end-aligned epitome (e.g. D = 8, K = s = 3: [0, 3), [3, 6), [5, 8); eVAE paper, Table 4).
    /// </summary>
    public static EpitomeLayout Create(int latent, int size, int stride, EpitomeLayoutKind kind = EpitomeLayoutKind.Tile)
    {
        if (size < 1 || size > latent)
            throw new ConfigException("epitome_size", $"(K) must be between 1 and the latent size D = {latent}, got {size}");
        if (stride < 1 || stride > size)
            throw new ConfigException("epitome_stride", $"(s) must be between 1 and K = {size} (larger strides leave units unused), got {stride}");
        if (kind == EpitomeLayoutKind.Tile && (latent - size) % stride != 0)
            throw new ConfigException("epitome_stride",
                $"s = {stride}: epitomes of size K = {size} do not tile D = {latent} units ((D - K) = {latent - size} must be a multiple of s; " +
                "epitome_layout cover adds an epitome aligned to the end)");
        return new EpitomeLayout(latent, size, stride, kind);
    }

    /// <summary>Latent dimension D.</summary>
    public int Latent { get; }

    /// <summary>Units per epitome K.</summary>
    public int Size { get; }

    /// <summary>Stride s between epitome starts.</summary>
    public int Stride { get; }

    /// <summary>The placement rule.</summary>
    public EpitomeLayoutKind Kind { get; }

    /// <summary>Number of epitomes G: (D - K) / s + 1 when they tile D; with cover floor((D - K) / s) + 2 when they do not.</summary>
    public int Count => starts.Length;

    /// <summary>First unit of epitome <paramref name="y"/>.</summary>
    public int Start(int y)
    {
        if ((uint)y >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(y), y, $"epitome index must be in [0, {Count})");
        return starts[y];
    }

    /// <summary>The mask m_y: 1 on units [start_y, start_y + K), 0 elsewhere; length D.</summary>
    public float[] Mask(int y)
    {
        var m = new float[Latent];
        m.AsSpan(Start(y), Size).Fill(1f);
        return m;
    }

    /// <summary>The masks of the given epitomes, [n, D] row-major.</summary>
    public float[] Masks(ReadOnlySpan<int> groups)
    {
        var d = new float[groups.Length * Latent];
        WriteMasks(groups, d);
        return d;
    }

    /// <summary>The masks of the given epitomes as a constant tensor [n, D] of <paramref name="context"/> (valid in its current scope).</summary>
    // NOTE: written in place (the native engine's pooled buffer): the assignment pass builds one [500, D] mask per epitome and batch.
    public T Masks<T>(ComputeContext<T> context, ReadOnlySpan<int> groups) where T : class, ITensor<T>
    {
        var copy = groups.ToArray();
        return context.Fill(values => WriteMasks(copy, values), copy.Length, Latent);
    }

    void WriteMasks(ReadOnlySpan<int> groups, Span<float> destination)
    {
        destination.Clear();
        for (int i = 0; i < groups.Length; i++) destination.Slice(i * Latent + Start(groups[i]), Size).Fill(1f);
    }
}
