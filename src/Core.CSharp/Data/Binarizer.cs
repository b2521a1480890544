using System.Runtime.CompilerServices;
using VaeResearch.Engine;

namespace VaeResearch.Data;

/// <summary>
/// Produces the observed pixels of a split for an epoch under a <see cref="Binarization"/> mode.
/// </summary>
/// <remarks>
/// <para>Every sampled pixel is a pure function of (seed, split, epoch, example, pixel): example i
/// draws from blocks [i B, (i + 1) B) of the Philox stream for (seed, split, epoch), B = ceil(Dim / 8),
/// so a batch gathered in any order, a subset of the first N examples, a resumed run and an
/// uninterrupted run all see the same values, whatever the thread count.</para>
/// <para><see cref="Binarization.Dynamic"/> resamples every epoch on the training split only; on
/// validation and test splits it is one fixed seeded sample, the same for every epoch.
/// <see cref="Binarization.Fixed"/> uses one sample per split for all epochs.</para>
/// <para>Each pixel uses 16 random bits: x = 1 when u &lt; round(65536 g), u uniform on
/// {0, ..., 65535}; so P(x = 1) is within 2^-17 of the grey level g, exactly 0 at g = 0 and exactly 1
/// at g = 1. The fill methods allocate nothing.</para>
/// </remarks>
public sealed class Binarizer
{
    /// <summary>Random bits per sampled pixel.</summary>
    public const int BitsPerPixel = 16;

    const int PixelsPerBlock = 128 / BitsPerPixel;

    readonly ulong blocksPerExample;

    /// <summary>A binarizer for <paramref name="data"/> with the run's <paramref name="seed"/>.</summary>
    public Binarizer(Dataset data, Binarization mode, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!Enum.IsDefined(mode)) throw new ArgumentOutOfRangeException(nameof(mode), mode, null);
        Data = data;
        Mode = mode;
        Seed = seed;
        blocksPerExample = (ulong)((data.Dim + PixelsPerBlock - 1) / PixelsPerBlock);
    }

    /// <summary>The examples being binarized.</summary>
    public Dataset Data { get; }

    /// <summary>The mode.</summary>
    public Binarization Mode { get; }

    /// <summary>The seed of the sampled modes.</summary>
    public ulong Seed { get; }

    /// <summary>True when the pixels differ between epochs (dynamic binarization of the training split).</summary>
    public bool ResamplesEachEpoch => Mode == Binarization.Dynamic && Data.Split == SplitKind.Train;

    /// <summary>
    /// Writes the pixels of examples <paramref name="indices"/> for <paramref name="epoch"/> into
    /// <paramref name="destination"/>, row-major [indices.Length, Dim] (one training batch).
    /// </summary>
    public void Fill(ReadOnlySpan<int> indices, int epoch, Span<float> destination)
    {
        CheckDestination(indices.Length, epoch, destination);
        int dim = Data.Dim;
        ulong stream = Stream(epoch);
        for (int r = 0; r < indices.Length; r++)
        {
            int i = indices[r];
            if ((uint)i >= (uint)Data.Count) throw new ArgumentOutOfRangeException(nameof(indices), i, $"example index outside [0, {Data.Count})");
            Row(i, stream, destination.Slice(r * dim, dim));
        }
    }

    /// <summary>
    /// Writes the pixels of examples [start, start + count) for <paramref name="epoch"/> into
    /// <paramref name="destination"/>, [count, Dim] (evaluation in order).
    /// </summary>
    public void FillRange(int start, int count, int epoch, Span<float> destination)
    {
        if (start < 0 || count < 0 || start > Data.Count - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"examples [{start}, {start} + {count}) are outside [0, {Data.Count})");
        CheckDestination(count, epoch, destination);
        int dim = Data.Dim;
        ulong stream = Stream(epoch);
        for (int r = 0; r < count; r++) Row(start + r, stream, destination.Slice(r * dim, dim));
    }

    /// <summary>
    /// Writes the whole split for <paramref name="epoch"/> into <paramref name="destination"/>,
    /// [Count, Dim], in parallel over examples (reuse one buffer across epochs).
    /// </summary>
    public void FillEpoch(int epoch, float[] destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckDestination(Data.Count, epoch, destination);
        int dim = Data.Dim;
        ulong stream = Stream(epoch);
        Parallelism.For(Data.Count, 512, (from, to) =>
        {
            for (int i = from; i < to; i++) Row(i, stream, destination.AsSpan(i * dim, dim));
        });
    }

    /// <summary>The whole split for <paramref name="epoch"/> in a new array, [Count, Dim].</summary>
    public float[] Epoch(int epoch)
    {
        var result = new float[Data.Images.Length];
        FillEpoch(epoch, result);
        return result;
    }

    ulong Stream(int epoch) => DataStreams.Binarization(Data.Split, ResamplesEachEpoch ? epoch : null);

    void Row(int example, ulong stream, Span<float> destination)
    {
        var grey = Data.Image(example);
        switch (Mode)
        {
            case Binarization.None:
                grey.CopyTo(destination);
                break;
            case Binarization.Threshold:
                for (int p = 0; p < grey.Length; p++) destination[p] = grey[p] > 0.5f ? 1f : 0f;
                break;
            default:
                Sample(grey, (ulong)example * blocksPerExample, stream, destination);
                break;
        }
    }

    void Sample(ReadOnlySpan<float> grey, ulong firstBlock, ulong stream, Span<float> destination)
    {
        uint k0 = (uint)Seed, k1 = (uint)(Seed >> 32), s0 = (uint)stream, s1 = (uint)(stream >> 32);
        int n = grey.Length;
        int full = n / PixelsPerBlock * PixelsPerBlock;
        ulong block = firstBlock;
        int p = 0;
        for (; p < full; p += PixelsPerBlock, block++)
        {
            var (x0, x1, x2, x3) = Rng.Philox((uint)block, (uint)(block >> 32), s0, s1, k0, k1);
            Pair(x0, grey, destination, p);
            Pair(x1, grey, destination, p + 2);
            Pair(x2, grey, destination, p + 4);
            Pair(x3, grey, destination, p + 6);
        }
        if (p < n)
        {
            var (x0, x1, x2, x3) = Rng.Philox((uint)block, (uint)(block >> 32), s0, s1, k0, k1);
            Span<uint> words = [x0, x1, x2, x3];
            for (int j = 0; p < n; j++, p++)
                destination[p] = Bit(words[j / 2] >> (16 * (j % 2)), grey[p]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Pair(uint word, ReadOnlySpan<float> grey, Span<float> destination, int p)
    {
        destination[p] = Bit(word, grey[p]);
        destination[p + 1] = Bit(word >> 16, grey[p + 1]);
    }

    // NOTE: the threshold rounds 65536 g to an integer, so P(x = 1) = round(65536 g) / 65536, within
    // 2^-17 of g and exact at g = 0 and g = 1; grey levels outside [0, 1] clamp to those ends.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Bit(uint bits, float grey) =>
        (bits & 0xFFFF) < (uint)Math.Clamp(grey * 65536f + 0.5f, 0f, 65536f) ? 1f : 0f;

    void CheckDestination(int rows, int epoch, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (destination.Length != rows * Data.Dim)
            throw new ArgumentException($"destination holds {destination.Length} values, expected {rows} x {Data.Dim}", nameof(destination));
    }
}
