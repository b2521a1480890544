using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace VaeResearch.Engine;

/// <summary>Fused SIMD kernels over spans, for the ops TensorPrimitives does not cover in one pass.</summary>
internal static class Kernels
{
    /// <summary>Elements below which a kernel runs on one thread.</summary>
    public const int ParallelMin = 1 << 15;

    /// <summary>Elements per alignment unit of <see cref="Chunked"/>: a multiple of every SIMD width used.</summary>
    const int ChunkAlign = 16;

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, n) on up to <see cref="Parallelism.Threads"/> workers.</summary>
    // NOTE: chunk boundaries are multiples of ChunkAlign, so each element takes the same path (SIMD body or
    // scalar tail, which may differ in the last ulp) whatever the thread count.
    public static void Chunked(int n, Action<int, int> body) =>
        Parallelism.For((n + ChunkAlign - 1) / ChunkAlign, ParallelMin / ChunkAlign,
            (s, e) => body(s * ChunkAlign, Math.Min(e * ChunkAlign, n)));

    /// <summary>y = exp(x), with exp(0) = 1 exactly.</summary>
    // NOTE: the vectorized exp returns 1 + 2^-23 at 0; pinning 0 to 1 keeps a collapsed or masked unit
    // (log-variance 0) exactly at the prior, so its z equals its noise and it adds exactly 0 to the bound.
    public static void Exp(ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float yr = ref MemoryMarshal.GetReference(y);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref xr, (nuint)i);
                Vector256.ConditionalSelect(Vector256.Equals(v, Vector256<float>.Zero), Vector256<float>.One, Vector256.Exp(v))
                    .StoreUnsafe(ref yr, (nuint)i);
            }
        }
        for (; i < x.Length; i++) y[i] = MathF.Exp(x[i]);
    }

    /// <summary>log(1 + u) for u &gt;= 0, accurate for tiny u.</summary>
    // NOTE: Goldberg's trick: with w = fl(1 + u), log(w) * u / (w - 1) cancels the rounding of 1 + u;
    // when w rounds to 1 the answer is u itself.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Log1p(Vector256<float> u)
    {
        var w = Vector256<float>.One + u;
        var d = w - Vector256<float>.One;
        var r = Vector256.Log(w) * u / d;
        return Vector256.ConditionalSelect(Vector256.Equals(d, Vector256<float>.Zero), u, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Log1p(float u)
    {
        float w = 1f + u;
        float d = w - 1f;
        return d == 0f ? u : MathF.Log(w) * u / d;
    }

    /// <summary>softplus(x) = log(1 + exp(x)).</summary>
    // NOTE: computed as max(x, 0) + log1p(exp(-|x|)): exp never overflows, and for x far below 0
    // the result is exp(x) to full relative precision instead of log(1 + tiny) = 0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Softplus(Vector256<float> x) =>
        Vector256.Max(x, Vector256<float>.Zero) + Log1p(Vector256.Exp(-Vector256.Abs(x)));

    /// <summary>Scalar softplus, same formula as the vector one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Softplus(float x) => MathF.Max(x, 0f) + Log1p(MathF.Exp(-MathF.Abs(x)));

    /// <summary>y = softplus(x).</summary>
    public static void Softplus(ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float yr = ref MemoryMarshal.GetReference(y);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
                Softplus(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < x.Length; i++) y[i] = Softplus(x[i]);
    }

    /// <summary>gx += gy * sigmoid(x), with sigmoid(x) = exp(x - softplus(x)) from the saved output y.</summary>
    // NOTE: exp(x - y) is sigmoid(x) without cancellation at either tail (1 - exp(-y) would lose it for x << 0).
    public static void SoftplusBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> gy, Span<float> gx)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float yr = ref MemoryMarshal.GetReference(y);
            ref float gyr = ref MemoryMarshal.GetReference(gy);
            ref float gxr = ref MemoryMarshal.GetReference(gx);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var s = Vector256.Exp(Vector256.LoadUnsafe(ref xr, (nuint)i) - Vector256.LoadUnsafe(ref yr, (nuint)i));
                (Vector256.LoadUnsafe(ref gxr, (nuint)i) + Vector256.LoadUnsafe(ref gyr, (nuint)i) * s).StoreUnsafe(ref gxr, (nuint)i);
            }
        }
        for (; i < x.Length; i++) gx[i] += gy[i] * MathF.Exp(x[i] - y[i]);
    }

    /// <summary>Sum over d of x_d * l_d - softplus(l_d): the Bernoulli log-likelihood of one row.</summary>
    public static float BernoulliRow(ReadOnlySpan<float> logits, ReadOnlySpan<float> x)
    {
        int i = 0;
        var acc = Vector256<float>.Zero;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float lr = ref MemoryMarshal.GetReference(logits);
            ref float xr = ref MemoryMarshal.GetReference(x);
            for (; i <= logits.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var l = Vector256.LoadUnsafe(ref lr, (nuint)i);
                acc += Vector256.LoadUnsafe(ref xr, (nuint)i) * l - Softplus(l);
            }
        }
        float sum = Vector256.Sum(acc);
        for (; i < logits.Length; i++) sum += x[i] * logits[i] - Softplus(logits[i]);
        return sum;
    }

    /// <summary>gl += g * (x - sigmoid(l)) for one row.</summary>
    public static void BernoulliRowBackward(ReadOnlySpan<float> logits, ReadOnlySpan<float> x, float g, Span<float> gl)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float lr = ref MemoryMarshal.GetReference(logits);
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float gr = ref MemoryMarshal.GetReference(gl);
            var gv = Vector256.Create(g);
            for (; i <= logits.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var l = Vector256.LoadUnsafe(ref lr, (nuint)i);
                var sig = Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-l));
                (Vector256.LoadUnsafe(ref gr, (nuint)i) + gv * (Vector256.LoadUnsafe(ref xr, (nuint)i) - sig)).StoreUnsafe(ref gr, (nuint)i);
            }
        }
        for (; i < logits.Length; i++) gl[i] += g * (x[i] - 1f / (1f + MathF.Exp(-logits[i])));
    }

    /// <summary>dst += sum over rows of m ([rows, cols] row-major).</summary>
    public static void AddColumnSums(ReadOnlySpan<float> m, int rows, int cols, Span<float> dst)
    {
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(dst, m.Slice(r * cols, cols), dst);
    }
}
