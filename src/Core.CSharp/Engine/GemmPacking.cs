using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace VaeResearch.Engine;

/// <summary>
/// Packing of op(A) and op(B) blocks into the micro-panel layouts the GEMM micro-kernels read,
/// for both storage orders, plus the scalar merge of edge tiles into C.
/// </summary>
/// <remarks>
/// Packed A block (mc x kc): ceil(mc/MR) micro-panels, panel r at offset r*MR*kc, element (i, p) of the
/// panel at [p*MR + i]. Packed B block (kc x nc): ceil(nc/NR) micro-panels, panel s at offset s*NR*kc,
/// element (p, j) at [p*NR + j]. Rows/columns past the matrix edge are zero.
/// </remarks>
[SkipLocalsInit]
internal static unsafe class GemmPacking
{
    /// <summary>A panel width known to the JIT as a constant (MR of the A panels, NR of the B panels).</summary>
    internal interface IPanelWidth
    {
        /// <summary>The panel width.</summary>
        static abstract int W { get; }
    }

    /// <summary>Width of the A panels of kernel TK.</summary>
    internal readonly struct RowsOf<TK> : IPanelWidth where TK : struct, IGemmKernel
    {
        public static int W => TK.MR;
    }

    /// <summary>Width of the B panels of kernel TK.</summary>
    internal readonly struct ColsOf<TK> : IPanelWidth where TK : struct, IGemmKernel
    {
        public static int W => TK.NR;
    }

    /// <summary>
    /// Packs op(A)[0..mc, 0..kc) where <paramref name="a"/> points at op(A)[0, 0]:
    /// op(A)[i, p] = a[i*lda + p], or a[p*lda + i] when <paramref name="transA"/>.
    /// </summary>
    public static void PackA<TK>(bool transA, float* a, nint lda, int mc, int kc, float* dst)
        where TK : struct, IGemmKernel
    {
        if (transA) RowsToPanels<RowsOf<TK>>(a, lda, mc, kc, dst);
        else TransposeToPanels<RowsOf<TK>>(a, lda, mc, kc, dst);
    }

    /// <summary>
    /// Packs op(B)[0..kc, 0..nc) where <paramref name="b"/> points at op(B)[0, 0]:
    /// op(B)[p, j] = b[p*ldb + j], or b[j*ldb + p] when <paramref name="transB"/>.
    /// </summary>
    public static void PackB<TK>(bool transB, float* b, nint ldb, int kc, int nc, float* dst)
        where TK : struct, IGemmKernel
    {
        if (transB) TransposeToPanels<ColsOf<TK>>(b, ldb, nc, kc, dst);
        else RowsToPanels<ColsOf<TK>>(b, ldb, nc, kc, dst);
    }

    /// <summary>How many rows ahead <see cref="RowsToPanels"/> prefetches its source.</summary>
    const int PrefetchRows = 6;

    /// <summary>
    /// Panels of width W from a source stored along the panel's width: element (p, x) at src[p*ld + x]
    /// for p &lt; kc, x &lt; extent; panel q at dst + q*W*kc holds (p, q*W + w) at [p*W + w].
    /// </summary>
    /// <remarks>
    /// Walks the source row by row (each row once, across all panels), so it streams long contiguous
    /// runs instead of W-float snippets per panel, and prefetches a few rows ahead: the source is
    /// usually a large activation matrix coming from L3 or DRAM.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void RowsToPanels<TW>(float* src, nint ld, int extent, int kc, float* dst) where TW : struct, IPanelWidth
    {
        int w = TW.W;
        int full = extent / w;
        int rest = extent - full * w;
        nint panelSize = (nint)w * kc;
        for (int p = 0; p < kc; p++)
        {
            float* row = src + p * ld;
            if (p + PrefetchRows < kc) PrefetchRange(row + PrefetchRows * ld, extent);
            float* d = dst + (nint)p * w;
            for (int q = 0; q < full; q++, d += panelSize)
                CopyWidth<TW>(row + q * w, d);
            if (rest > 0)
            {
                float* r = row + full * w;
                int x = 0;
                for (; x < rest; x++) d[x] = r[x];
                for (; x < w; x++) d[x] = 0f;
            }
        }
    }

    /// <summary>Copies W floats (W a JIT-time constant, at most 32) with vector moves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void CopyWidth<TW>(float* s, float* d) where TW : struct, IPanelWidth
    {
        int w = TW.W;
        if (w >= 8 && Vector256.IsHardwareAccelerated)
        {
            Vector256.Store(Vector256.Load(s), d);
            if (w >= 16) Vector256.Store(Vector256.Load(s + 8), d + 8);
            if (w >= 24) Vector256.Store(Vector256.Load(s + 16), d + 16);
            if (w >= 32) Vector256.Store(Vector256.Load(s + 24), d + 24);
            // NOTE: a width that is not a multiple of 8 (MR = 10) ends with an overlapping vector:
            // floats w-8..w-1, some of them already copied (with the same values).
            if (w % 8 != 0) Vector256.Store(Vector256.Load(s + (w - 8)), d + (w - 8));
        }
        else if (w >= 4 && Vector128.IsHardwareAccelerated)
        {
            Vector128.Store(Vector128.Load(s), d);
            if (w % 4 != 0) Vector128.Store(Vector128.Load(s + (w - 4)), d + (w - 4));
        }
        else
        {
            for (int x = 0; x < w; x++) d[x] = s[x];
        }
    }

    /// <summary>
    /// Panels of width W from a source stored across the panel's width: element (p, x) at src[x*ld + p]
    /// for p &lt; kc, x &lt; extent; panel q at dst + q*W*kc holds (p, q*W + w) at [p*W + w].
    /// </summary>
    /// <remarks>Before transposing each panel it prefetches the source rows of the next one.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TransposeToPanels<TW>(float* src, nint ld, int extent, int kc, float* dst) where TW : struct, IPanelWidth
    {
        int w = TW.W;
        for (int x0 = 0; x0 < extent; x0 += w)
        {
            int count = Math.Min(w, extent - x0);
            int next = Math.Min(w, extent - x0 - w);
            for (int r = 0; r < next; r++) PrefetchRange(src + (x0 + w + r) * ld, kc);
            float* s = src + x0 * ld;
            float* panel = dst + (nint)x0 * kc;
            // NOTE: the 8x8 transposes need whole groups of 8 source rows; a partial group (and the
            // zero rows after it) goes through the scalar path of TransposeRows.
            int g = 0;
            for (; g + 8 <= count; g += 8)
                TransposeRows(s + g * ld, ld, 8, 8, w, kc, panel + g);
            if (g < w)
                TransposeRows(s + g * ld, ld, count - g, w - g, w, kc, panel + g);
        }
    }

    /// <summary>Prefetches the cache lines of src[0..count) into L1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchRange(float* src, int count)
    {
        if (!Sse.IsSupported) return;
        byte* p = (byte*)src;
        byte* end = (byte*)(src + count);
        for (; p < end; p += 64) Sse.Prefetch0(p);
        // NOTE: the last line, in case src is not line-aligned and the loop stopped short of it.
        Sse.Prefetch0(end - 1);
    }

    /// <summary>
    /// dst[p*dstStride + r] = src[r*srcStride + p] for r &lt; rows, 0 for rows &lt;= r &lt; width; p in [0, kc).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TransposeRows(float* src, nint srcStride, int rows, int width, nint dstStride, int kc, float* dst)
    {
        int p = 0;
        if (rows == 8 && Avx.IsSupported)
        {
            for (; p + 8 <= kc; p += 8)
                Transpose8x8(src + p, srcStride, dst + p * dstStride, dstStride);
        }
        // NOTE: the scalar tail covers the last kc % 8 steps after the SIMD blocks and every column of
        // partial groups, and writes the zero padding.
        for (int r = 0; r < width; r++)
        {
            float* d = dst + r;
            if (r < rows)
            {
                float* s = src + r * srcStride;
                for (int q = p; q < kc; q++) d[q * dstStride] = s[q];
            }
            else
            {
                for (int q = p; q < kc; q++) d[q * dstStride] = 0f;
            }
        }
    }

    /// <summary>dst[c*dstStride + r] = src[r*srcStride + c] for an 8 x 8 block (AVX shuffles).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose8x8(float* src, nint srcStride, float* dst, nint dstStride)
    {
        Vector256<float> r0 = Avx.LoadVector256(src);
        Vector256<float> r1 = Avx.LoadVector256(src + srcStride);
        Vector256<float> r2 = Avx.LoadVector256(src + 2 * srcStride);
        Vector256<float> r3 = Avx.LoadVector256(src + 3 * srcStride);
        Vector256<float> r4 = Avx.LoadVector256(src + 4 * srcStride);
        Vector256<float> r5 = Avx.LoadVector256(src + 5 * srcStride);
        Vector256<float> r6 = Avx.LoadVector256(src + 6 * srcStride);
        Vector256<float> r7 = Avx.LoadVector256(src + 7 * srcStride);
        // [a00 a10 a01 a11 | a04 a14 a05 a15] etc.
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1);
        Vector256<float> t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
        Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5);
        Vector256<float> t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
        // [a00 a10 a20 a30 | a04 a14 a24 a34] etc.
        Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE);
        Vector256<float> u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
        Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE);
        Vector256<float> u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
        // Columns 0..3 from the low 128-bit lanes, 4..7 from the high lanes.
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>
    /// Writes the top-left mr x nr of tile t (leading dimension ldt) into C:
    /// c = alpha*t when beta == 0, else fma(alpha, t, beta*c) — the same rounding as the SIMD stores.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MergeTile(float* t, int ldt, int mr, int nr, float* c, nint ldc, float alpha, float beta)
    {
        for (int i = 0; i < mr; i++, t += ldt, c += ldc)
        {
            if (beta == 0f)
            {
                // NOTE: never read C when beta == 0 (NaN in the output buffer must not propagate).
                for (int j = 0; j < nr; j++) c[j] = alpha * t[j];
            }
            else
            {
                for (int j = 0; j < nr; j++) c[j] = MathF.FusedMultiplyAdd(alpha, t[j], beta * c[j]);
            }
        }
    }
}
