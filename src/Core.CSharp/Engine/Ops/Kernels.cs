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

    /// <summary>log(1 + u) for u in [0, 1] (and just above 1: Vector256.Exp(0) is 1 + 2^-23), accurate relative to u when u is tiny.</summary>
    // NOTE: log(1 + u) = 2 atanh(t) with t = u / (2 + u) <= 1/3, summed as 2 t (1 + t^2/3 + ... + t^12/13): the first
    // omitted term, t^15/15, is below 1.4e-8 t, under float32's rounding. One division and seven FMAs instead of a
    // full log, and no cancellation for tiny u (t ~ u/2), where log(fl(1 + u)) would lose u.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Log1pUnit(Vector256<float> u)
    {
        var t = u / (Vector256.Create(2f) + u);
        var s = t * t;
        var p = Vector256.Create(1f / 13);
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(1f / 11));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(1f / 9));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(1f / 7));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(1f / 5));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(1f / 3));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256<float>.One);
        return (t + t) * p;
    }

    /// <summary>Scalar <see cref="Log1pUnit(Vector256{float})"/>, the same operations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Log1pUnit(float u)
    {
        float t = u / (2f + u);
        float s = t * t;
        float p = 1f / 13;
        p = MathF.FusedMultiplyAdd(p, s, 1f / 11);
        p = MathF.FusedMultiplyAdd(p, s, 1f / 9);
        p = MathF.FusedMultiplyAdd(p, s, 1f / 7);
        p = MathF.FusedMultiplyAdd(p, s, 1f / 5);
        p = MathF.FusedMultiplyAdd(p, s, 1f / 3);
        p = MathF.FusedMultiplyAdd(p, s, 1f);
        return (t + t) * p;
    }

    /// <summary>softplus(x) = log(1 + exp(x)) and, from the same exp, sigmoid(x) = softplus'(x).</summary>
    // NOTE: computed as max(x, 0) + log1p(exp(-|x|)): exp never overflows, and for x far below 0 the result is exp(x)
    // to full relative precision instead of log(1 + tiny) = 0. sigmoid is 1 / (1 + e) at x >= 0 and e / (1 + e) below,
    // with e = exp(-|x|), so neither tail cancels.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Softplus(Vector256<float> x, out Vector256<float> sigmoid)
    {
        var e = Vector256.Exp(-Vector256.Abs(x));
        var up = Vector256<float>.One / (Vector256<float>.One + e);
        sigmoid = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(x, Vector256<float>.Zero), up, e * up);
        return Vector256.Max(x, Vector256<float>.Zero) + Log1pUnit(e);
    }

    /// <summary>Scalar softplus and sigmoid, the same formulas as the vector ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Softplus(float x, out float sigmoid)
    {
        float e = MathF.Exp(-MathF.Abs(x));
        float up = 1f / (1f + e);
        sigmoid = x >= 0f ? up : e * up;
        return MathF.Max(x, 0f) + Log1pUnit(e);
    }

    /// <summary>y = softplus(x); and sigmoid(x) into <paramref name="sigmoid"/> unless it is empty (the gradient, saved for backward).</summary>
    public static void Softplus(ReadOnlySpan<float> x, Span<float> y, Span<float> sigmoid)
    {
        bool save = !sigmoid.IsEmpty;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float yr = ref MemoryMarshal.GetReference(y);
            ref float sr = ref MemoryMarshal.GetReference(sigmoid);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Softplus(Vector256.LoadUnsafe(ref xr, (nuint)i), out var s).StoreUnsafe(ref yr, (nuint)i);
                if (save) s.StoreUnsafe(ref sr, (nuint)i);
            }
        }
        for (; i < x.Length; i++)
        {
            y[i] = Softplus(x[i], out float s);
            if (save) sigmoid[i] = s;
        }
    }

    /// <summary>gx = gy * s when <paramref name="write"/> (gx holds no gradient yet), else gx += gy * s.</summary>
    public static void MultiplyInto(ReadOnlySpan<float> gy, ReadOnlySpan<float> s, Span<float> gx, bool write)
    {
        if (write) TensorPrimitives.Multiply(gy, s, gx);
        else TensorPrimitives.MultiplyAdd(gy, s, gx, gx);
    }

    /// <summary>gx = g * r when <paramref name="write"/> (gx holds no gradient yet), else gx += g * r.</summary>
    public static void ScaleInto(ReadOnlySpan<float> r, float g, Span<float> gx, bool write)
    {
        if (write) TensorPrimitives.Multiply(r, g, gx);
        else TensorPrimitives.MultiplyAdd(r, g, gx, gx);
    }

    /// <summary>Logits beyond this magnitude are clamped to it inside <see cref="BernoulliRow"/>.</summary>
    // NOTE: exp(-87) = 1.6e-38 is the last power of e above float32's smallest normal (1.2e-38). Past it, exp(-|l|) is
    // subnormal, which costs some CPUs a microcode assist per operation (a memorized batch ran 2-2.4x slower); the
    // clamp changes softplus and sigmoid there by less than 1.6e-38.
    const float BernoulliClamp = 87f;

    /// <summary>Vector iterations between two logs of the running product in <see cref="BernoulliRow"/>.</summary>
    // NOTE: each factor 1 + exp(-|l|) is in (1, 2], so 64 of them stay below 2^64, far inside float32's range.
    const int ProductRun = 64;

    /// <summary>
    /// Sum over d of x_d * l_d - softplus(l_d), the Bernoulli log-likelihood of one row; unless <paramref name="residual"/> is
    /// empty it also receives x_d - sigmoid(l_d), the gradient with respect to l_d.
    /// </summary>
    // NOTE: softplus(l) = max(l, 0) + log(1 + e) with e = exp(-|l|); the logs of a run of elements are taken as the log of
    // their product, one log per lane per ProductRun elements. Each factor is rounded once (2^-24 relative), so a row of
    // 784 pixels is off by at most 784 * 6e-8 = 5e-5 nats (typically 2e-6), the size of float32 rounding of the sum itself.
    public static float BernoulliRow(ReadOnlySpan<float> logits, ReadOnlySpan<float> x, Span<float> residual)
    {
        bool save = !residual.IsEmpty;
        int i = 0;
        float sum = 0f;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float lr = ref MemoryMarshal.GetReference(logits);
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float rr = ref MemoryMarshal.GetReference(residual);
            var clamp = Vector256.Create(BernoulliClamp);
            var linear = Vector256<float>.Zero;
            var logs = Vector256<float>.Zero;
            var product = Vector256<float>.One;
            int run = 0;
            for (; i <= logits.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var l = Vector256.LoadUnsafe(ref lr, (nuint)i);
                var xv = Vector256.LoadUnsafe(ref xr, (nuint)i);
                var e = Vector256.Exp(-Vector256.Min(Vector256.Abs(l), clamp));
                var w = Vector256<float>.One + e;
                linear += xv * l - Vector256.Max(l, Vector256<float>.Zero);
                product *= w;
                if (save)
                {
                    var up = Vector256<float>.One / w;
                    var sigmoid = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(l, Vector256<float>.Zero), up, e * up);
                    (xv - sigmoid).StoreUnsafe(ref rr, (nuint)i);
                }
                if (++run == ProductRun)
                {
                    logs += Vector256.Log(product);
                    product = Vector256<float>.One;
                    run = 0;
                }
            }
            sum = Vector256.Sum(linear) - Vector256.Sum(logs + Vector256.Log(product));
        }
        for (; i < logits.Length; i++)
        {
            float l = logits[i];
            float e = MathF.Exp(-MathF.Min(MathF.Abs(l), BernoulliClamp));
            sum += x[i] * l - MathF.Max(l, 0f) - MathF.Log(1f + e);
            if (save)
            {
                float up = 1f / (1f + e);
                residual[i] = x[i] - (l >= 0f ? up : e * up);
            }
        }
        return sum;
    }

    /// <summary>dst += sum over rows of m ([rows, cols] row-major).</summary>
    public static void AddColumnSums(ReadOnlySpan<float> m, int rows, int cols, Span<float> dst)
    {
        for (int r = 0; r < rows; r++) TensorPrimitives.Add(dst, m.Slice(r * cols, cols), dst);
    }
}
