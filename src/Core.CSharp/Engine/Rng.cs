using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace VaeResearch.Engine;

/// <summary>
/// Seeded counter-based random number generator (Philox4x32-10, Salmon et al. 2011).
/// </summary>
/// <remarks>
/// A generator is a key (the seed) plus a stream id plus a position. Every draw is a pure function
/// of (seed, stream, position), so a fill of n values produces the same numbers however it is split
/// across threads, and two generators with different streams are independent. Fills consume whole
/// groups of <see cref="GroupSize"/> values: a fill of n values advances the position by
/// ceil(n / GroupSize) groups, whatever the thread count.
/// </remarks>
public sealed class Rng
{
    /// <summary>Values per group: the unit in which fills consume counters.</summary>
    public const int GroupSize = 256;

    const int BlocksPerGroup = GroupSize / 4;
    const int ParallelThreshold = 1 << 16;

    readonly uint key0, key1;
    readonly ulong stream;
    ulong position; // in 128-bit Philox blocks

    /// <summary>A generator for <paramref name="seed"/> and stream 0.</summary>
    public Rng(ulong seed) : this(seed, 0) { }

    /// <summary>A generator for <paramref name="seed"/> on an independent <paramref name="stream"/>.</summary>
    public Rng(ulong seed, ulong stream) : this(seed, stream, 0) { }

    Rng(ulong seed, ulong stream, ulong position)
    {
        key0 = (uint)seed;
        key1 = (uint)(seed >> 32);
        this.stream = stream;
        this.position = position;
    }

    /// <summary>The seed this generator was made from.</summary>
    public ulong Seed => key0 | ((ulong)key1 << 32);

    /// <summary>The stream id.</summary>
    public ulong Stream => stream;

    /// <summary>Position in 128-bit blocks; together with seed and stream it fixes every later draw.</summary>
    public ulong Position
    {
        get => position;
        set => position = value;
    }

    /// <summary>
    /// An independent generator for the same seed on a stream mixed from (<see cref="Stream"/>, <paramref name="id"/>),
    /// position 0. Use it to give each consumer (data shuffling, dropout, sampling noise) its own stream.
    /// </summary>
    /// <remarks>The stream id is a SplitMix64 finalizer of both, so nested derivations do not collide in practice.</remarks>
    public Rng Derive(ulong id) => new(Seed, Mix(Mix(stream) ^ (id + 0x9E3779B97F4A7C15UL)), 0);

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The Philox4x32-10 bijection of a 128-bit counter under a 64-bit key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (uint, uint, uint, uint) Philox(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0;
            uint n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            c0 = n0;
            c1 = (uint)p1;
            c2 = n2;
            c3 = (uint)p0;
            k0 += W0;
            k1 += W1;
        }
        return (c0, c1, c2, c3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    (uint, uint, uint, uint) Block(ulong index) =>
        Philox((uint)index, (uint)(index >> 32), (uint)stream, (uint)(stream >> 32), key0, key1);

    /// <summary>Next 64 random bits (consumes one block).</summary>
    public ulong NextUInt64()
    {
        var (a, b, _, _) = Block(position++);
        return a | ((ulong)b << 32);
    }

    /// <summary>Uniform integer in [0, n) without modulo bias (Lemire's method).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "must be positive");
        while (true)
        {
            ulong x = NextUInt64() >> 32;
            ulong m = x * (ulong)n;
            if ((uint)m >= (uint)n || (uint)m >= (uint)(-n) % (uint)n)
                return (int)(m >> 32);
        }
    }

    /// <summary>Uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Fisher-Yates shuffle of <paramref name="items"/> in place.</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    // NOTE: (x >> 8) keeps 24 bits, exactly representable in float32; the +1 variant lies in
    // (0, 1], so log(u) is finite for Box-Muller.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Unit(uint x) => (x >> 8) * (1f / (1 << 24));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float UnitOpenZero(uint x) => ((x >> 8) + 1) * (1f / (1 << 24));

    /// <summary>Fills with uniform values in [0, 1).</summary>
    public void FillUniform(Span<float> destination) => Fill(destination, UniformGroup);

    /// <summary>Fills with standard normal values (Box-Muller on pairs within each group).</summary>
    public void FillNormal(Span<float> destination) => Fill(destination, NormalGroup);

    /// <summary>Fills with Bernoulli(p) samples: 1 where a uniform draw is below p, else 0.</summary>
    public void FillBernoulli(Span<float> destination, float p)
    {
        if (!(p >= 0f && p <= 1f)) throw new ArgumentOutOfRangeException(nameof(p), p, "probability must be in [0, 1]");
        FillUniform(destination);
        foreach (ref float v in destination) v = v < p ? 1f : 0f;
    }

    /// <summary>
    /// Fills <paramref name="destination"/>[i] with a Bernoulli(<paramref name="probabilities"/>[i]) sample.
    /// </summary>
    public void FillBernoulli(Span<float> destination, ReadOnlySpan<float> probabilities)
    {
        if (destination.Length != probabilities.Length)
            throw new ArgumentException($"destination has {destination.Length} values but probabilities has {probabilities.Length}");
        // NOTE: the uniforms are drawn into destination first, so it must not alias the probabilities.
        if (destination.Overlaps(probabilities))
            throw new ArgumentException("destination and probabilities overlap: sample into a separate buffer");
        FillUniform(destination);
        for (int i = 0; i < destination.Length; i++)
            destination[i] = destination[i] < probabilities[i] ? 1f : 0f;
    }

    delegate void GroupFiller(uint k0, uint k1, ulong stream, ulong firstBlock, Span<float> group);

    unsafe void Fill(Span<float> destination, GroupFiller filler)
    {
        int n = destination.Length;
        int groups = (n + GroupSize - 1) / GroupSize;
        ulong start = position;
        position += (ulong)groups * BlocksPerGroup;
        uint k0 = key0, k1 = key1;
        ulong s = stream;
        int full = n / GroupSize;
        fixed (float* basePtr = destination)
        {
            float* ptr = basePtr;
            void FillRange(int g0, int g1)
            {
                for (int g = g0; g < g1; g++)
                    filler(k0, k1, s, start + (ulong)g * BlocksPerGroup, new Span<float>(ptr + (long)g * GroupSize, GroupSize));
            }
            Parallelism.For(full, ParallelThreshold / GroupSize, FillRange);
            if (full < groups)
            {
                Span<float> tail = stackalloc float[GroupSize];
                filler(k0, k1, s, start + (ulong)full * BlocksPerGroup, tail);
                tail[..(n - full * GroupSize)].CopyTo(destination[(full * GroupSize)..]);
            }
        }
    }

    static void UniformGroup(uint k0, uint k1, ulong stream, ulong firstBlock, Span<float> group)
    {
        for (int b = 0; b < BlocksPerGroup; b++)
        {
            ulong index = firstBlock + (ulong)b;
            var (x0, x1, x2, x3) = Philox((uint)index, (uint)(index >> 32), (uint)stream, (uint)(stream >> 32), k0, k1);
            group[4 * b] = Unit(x0);
            group[4 * b + 1] = Unit(x1);
            group[4 * b + 2] = Unit(x2);
            group[4 * b + 3] = Unit(x3);
        }
    }

    /// <summary>
    /// Box-Muller over a group: the first half holds radii uniforms u in (0, 1], the second half angle
    /// uniforms v in [0, 1); outputs are r cos(2 pi v) in the first half and r sin(2 pi v) in the second,
    /// with r = sqrt(-2 log u).
    /// </summary>
    static void NormalGroup(uint k0, uint k1, ulong stream, ulong firstBlock, Span<float> group)
    {
        const int Half = GroupSize / 2;
        Span<float> radius = group[..Half];
        Span<float> angle = group[Half..];
        for (int b = 0; b < BlocksPerGroup; b++)
        {
            ulong index = firstBlock + (ulong)b;
            var (x0, x1, x2, x3) = Philox((uint)index, (uint)(index >> 32), (uint)stream, (uint)(stream >> 32), k0, k1);
            int i = 2 * b;
            radius[i] = UnitOpenZero(x0);
            radius[i + 1] = UnitOpenZero(x1);
            angle[i] = Unit(x2);
            angle[i + 1] = Unit(x3);
        }
        // NOTE: u lies in (0, 1], so log(u) is finite and r = sqrt(-2 log u) is at most ~5.77.
        TensorPrimitives.Log(radius, radius);
        TensorPrimitives.Multiply(radius, -2f, radius);
        TensorPrimitives.Sqrt(radius, radius);
        TensorPrimitives.Multiply(angle, 2f * MathF.PI, angle);
        Span<float> sin = stackalloc float[Half];
        Span<float> cos = stackalloc float[Half];
        TensorPrimitives.SinCos(angle, sin, cos);
        TensorPrimitives.Multiply(radius, sin, angle);
        TensorPrimitives.Multiply(radius, cos, radius);
    }
}
