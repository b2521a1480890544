using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace VaeResearch.Engine;

/// <summary>
/// A register-blocked GEMM micro-kernel: an MR x NR tile of C from an MR-row micro-panel of packed A
/// and an NR-column micro-panel of packed B, plus the cache-blocking sizes the driver uses with it.
/// </summary>
/// <remarks>
/// Packed layouts (see <see cref="GemmPacking"/>): A micro-panel is [kc][MR] (MR consecutive rows per
/// k step), B micro-panel is [kc][NR]. Both are zero-padded at the matrix edges, so the kernel always
/// computes a full tile; the driver routes edge tiles through a scratch tile.
/// </remarks>
internal interface IGemmKernel
{
    /// <summary>Rows of the register tile.</summary>
    static abstract int MR { get; }

    /// <summary>Columns of the register tile.</summary>
    static abstract int NR { get; }

    /// <summary>Largest k block (the B micro-panel kc x NR should stay in L1).</summary>
    static abstract int KcMax { get; }

    /// <summary>Largest m block (the packed A block mc x kc should stay in L2).</summary>
    static abstract int McMax { get; }

    /// <summary>
    /// tile = sum_p a[p, 0..MR) (outer) b[p, 0..NR); then c[i*ldc + j] = alpha*tile when beta == 0,
    /// else fma(alpha, tile, beta*c). Every kernel and the scalar edge merge round the same way.
    /// </summary>
    static abstract unsafe void Run(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta);

    /// <summary>Whether <see cref="RunHalf"/> exists (a narrower kernel for the last, narrow column panel).</summary>
    static abstract bool HasHalf { get; }

    /// <summary>
    /// As <see cref="Run"/> for the left MR x NR/2 part of the tile only (B micro-panel still [kc][NR]);
    /// the same operations per element as <see cref="Run"/>, so results are bitwise the same.
    /// </summary>
    static abstract unsafe void RunHalf(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta);
}

/// <summary>Compile-time tile width for the shared kernel bodies: both vector columns, or only the first.</summary>
internal interface ITileWidth
{
    /// <summary>True for the full NR columns, false for the left NR/2.</summary>
    static abstract bool Full { get; }
}

/// <summary>All NR columns.</summary>
internal readonly struct FullWidth : ITileWidth
{
    public static bool Full => true;
}

/// <summary>The left NR/2 columns.</summary>
internal readonly struct HalfWidth : ITileWidth
{
    public static bool Full => false;
}

/// <summary>10 x 32 tile with 20 zmm accumulators (AVX-512F; FMA is part of AVX-512F).</summary>
/// <remarks>
/// MR = 10 divides the batch sizes the models use (100, 500, 5000) so row tiles are never partial
/// there; 20 accumulators + 2 B vectors + 1 broadcast fit the 32 zmm registers, and the 20 FMAs per
/// k step hide the 4-cycle FMA latency on 2 pipes.
/// </remarks>
[SkipLocalsInit]
internal readonly struct Kernel10x32Avx512 : IGemmKernel
{
    public static int MR => 10;
    public static int NR => 32;
    // NOTE: 32 floats x 288 x 4 B = 36 KiB of B micro-panel, inside the 48 KiB L1d of this machine.
    public static int KcMax => 288;
    public static int McMax => 150;
    public static bool HasHalf => true;

    public static bool IsSupported => Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    public static unsafe void Run(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        Body<FullWidth>(kc, a, b, c, ldc, alpha, beta);

    public static unsafe void RunHalf(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        Body<HalfWidth>(kc, a, b, c, ldc, alpha, beta);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Body<TW>(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
        where TW : struct, ITileWidth
    {
        // NOTE: TW.Full is a JIT-time constant per instantiation: the half kernel has no second column
        // at all (no loads, no FMAs, no registers), and the first column's arithmetic is identical.
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        Vector512<float> c80 = default, c81 = default, c90 = default, c91 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector512<float> b0 = Vector512.Load(b);
            Vector512<float> b1 = TW.Full ? Vector512.Load(b + 16) : default;
            Vector512<float> x = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00);
            if (TW.Full) c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10);
            if (TW.Full) c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20);
            if (TW.Full) c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30);
            if (TW.Full) c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(x, b0, c40);
            if (TW.Full) c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(x, b0, c50);
            if (TW.Full) c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]);
            c60 = Vector512.FusedMultiplyAdd(x, b0, c60);
            if (TW.Full) c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]);
            c70 = Vector512.FusedMultiplyAdd(x, b0, c70);
            if (TW.Full) c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            x = Vector512.Create(a[8]);
            c80 = Vector512.FusedMultiplyAdd(x, b0, c80);
            if (TW.Full) c81 = Vector512.FusedMultiplyAdd(x, b1, c81);
            x = Vector512.Create(a[9]);
            c90 = Vector512.FusedMultiplyAdd(x, b0, c90);
            if (TW.Full) c91 = Vector512.FusedMultiplyAdd(x, b1, c91);
            a += 10;
            b += 32;
        }
        var va = Vector512.Create(alpha);
        var vb = Vector512.Create(beta);
        Store<TW>(c, va, vb, beta, c00, c01); c += ldc;
        Store<TW>(c, va, vb, beta, c10, c11); c += ldc;
        Store<TW>(c, va, vb, beta, c20, c21); c += ldc;
        Store<TW>(c, va, vb, beta, c30, c31); c += ldc;
        Store<TW>(c, va, vb, beta, c40, c41); c += ldc;
        Store<TW>(c, va, vb, beta, c50, c51); c += ldc;
        Store<TW>(c, va, vb, beta, c60, c61); c += ldc;
        Store<TW>(c, va, vb, beta, c70, c71); c += ldc;
        Store<TW>(c, va, vb, beta, c80, c81); c += ldc;
        Store<TW>(c, va, vb, beta, c90, c91);
    }

    /// <summary>One tile row: alpha*t when beta == 0 (C not read), else fma(alpha, t, beta*c).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Store<TW>(float* c, Vector512<float> va, Vector512<float> vb, float beta,
        Vector512<float> t0, Vector512<float> t1) where TW : struct, ITileWidth
    {
        if (beta == 0f)
        {
            // NOTE: beta == 0 must not read C: stale NaN/Inf there would survive 0 * NaN.
            Vector512.Store(va * t0, c);
            if (TW.Full) Vector512.Store(va * t1, c + 16);
        }
        else
        {
            Vector512.Store(Vector512.FusedMultiplyAdd(va, t0, vb * Vector512.Load(c)), c);
            if (TW.Full) Vector512.Store(Vector512.FusedMultiplyAdd(va, t1, vb * Vector512.Load(c + 16)), c + 16);
        }
    }
}

/// <summary>6 x 16 tile with 12 ymm accumulators (AVX2 + FMA3; fits the 16 ymm registers of AVX2).</summary>
[SkipLocalsInit]
internal readonly struct Kernel6x16Avx2 : IGemmKernel
{
    public static int MR => 6;
    public static int NR => 16;
    // NOTE: 16 floats x 384 x 4 B = 24 KiB of B micro-panel: half of a 32-48 KiB L1d.
    public static int KcMax => 384;
    public static int McMax => 120;
    public static bool HasHalf => true;

    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported && Vector256.IsHardwareAccelerated;

    public static unsafe void Run(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        Body<FullWidth>(kc, a, b, c, ldc, alpha, beta);

    public static unsafe void RunHalf(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        Body<HalfWidth>(kc, a, b, c, ldc, alpha, beta);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Body<TW>(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
        where TW : struct, ITileWidth
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector256<float> c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector256<float> b0 = Vector256.Load(b);
            Vector256<float> b1 = TW.Full ? Vector256.Load(b + 8) : default;
            Vector256<float> x = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(x, b0, c00);
            if (TW.Full) c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(x, b0, c10);
            if (TW.Full) c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(x, b0, c20);
            if (TW.Full) c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(x, b0, c30);
            if (TW.Full) c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            x = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(x, b0, c40);
            if (TW.Full) c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
            x = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(x, b0, c50);
            if (TW.Full) c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
            a += 6;
            b += 16;
        }
        var va = Vector256.Create(alpha);
        var vb = Vector256.Create(beta);
        Store<TW>(c, va, vb, beta, c00, c01); c += ldc;
        Store<TW>(c, va, vb, beta, c10, c11); c += ldc;
        Store<TW>(c, va, vb, beta, c20, c21); c += ldc;
        Store<TW>(c, va, vb, beta, c30, c31); c += ldc;
        Store<TW>(c, va, vb, beta, c40, c41); c += ldc;
        Store<TW>(c, va, vb, beta, c50, c51);
    }

    /// <summary>One tile row: alpha*t when beta == 0 (C not read), else fma(alpha, t, beta*c).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Store<TW>(float* c, Vector256<float> va, Vector256<float> vb, float beta,
        Vector256<float> t0, Vector256<float> t1) where TW : struct, ITileWidth
    {
        if (beta == 0f)
        {
            // NOTE: beta == 0 must not read C (BLAS semantics: NaN in C must not propagate).
            Vector256.Store(va * t0, c);
            if (TW.Full) Vector256.Store(va * t1, c + 8);
        }
        else
        {
            Vector256.Store(Vector256.FusedMultiplyAdd(va, t0, vb * Vector256.Load(c)), c);
            if (TW.Full) Vector256.Store(Vector256.FusedMultiplyAdd(va, t1, vb * Vector256.Load(c + 8)), c + 8);
        }
    }
}

/// <summary>4 x 4 scalar tile: the portable fallback when no AVX2/FMA is available.</summary>
[SkipLocalsInit]
internal readonly struct Kernel4x4Scalar : IGemmKernel
{
    public static int MR => 4;
    public static int NR => 4;
    public static int KcMax => 256;
    public static int McMax => 64;
    public static bool HasHalf => false;

    public static unsafe void RunHalf(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        throw new NotSupportedException("the scalar kernel has no half-width variant");

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Run(int kc, float* a, float* b, float* c, nint ldc, float alpha, float beta)
    {
        float* t = stackalloc float[16];
        for (int i = 0; i < 16; i++) t[i] = 0f;
        for (int p = 0; p < kc; p++)
        {
            float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
            for (int i = 0; i < 4; i++)
            {
                float x = a[i];
                float* row = t + 4 * i;
                row[0] += x * b0;
                row[1] += x * b1;
                row[2] += x * b2;
                row[3] += x * b3;
            }
            a += 4;
            b += 4;
        }
        GemmPacking.MergeTile(t, 4, 4, 4, c, ldc, alpha, beta);
    }
}
