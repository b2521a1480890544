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
    /// <summary>
    /// Packs op(A)[0..mc, 0..kc) where <paramref name="a"/> points at op(A)[0, 0]:
    /// op(A)[i, p] = a[i*lda + p], or a[p*lda + i] when <paramref name="transA"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackA(int mrTile, bool transA, float* a, nint lda, int mc, int kc, float* dst)
    {
        for (int ir = 0; ir < mc; ir += mrTile)
        {
            int mr = Math.Min(mrTile, mc - ir);
            float* panel = dst + (nint)ir * kc;
            if (transA)
                CopyRows(a + ir, lda, mr, mrTile, kc, panel);
            else
                TransposePanel(a + ir * lda, lda, mr, mrTile, kc, panel);
        }
    }

    /// <summary>
    /// Packs op(B)[0..kc, 0..nc) where <paramref name="b"/> points at op(B)[0, 0]:
    /// op(B)[p, j] = b[p*ldb + j], or b[j*ldb + p] when <paramref name="transB"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackB(int nrTile, bool transB, float* b, nint ldb, int kc, int nc, float* dst)
    {
        for (int jr = 0; jr < nc; jr += nrTile)
        {
            int nr = Math.Min(nrTile, nc - jr);
            float* panel = dst + (nint)jr * kc;
            if (transB)
                TransposePanel(b + jr * ldb, ldb, nr, nrTile, kc, panel);
            else
            {
                CopyRows(b + jr, ldb, nr, nrTile, kc, panel);
            }
        }
    }

    /// <summary>
    /// dst[p*width + i] = src[p*srcStride + i] for i &lt; count, 0 for count &lt;= i &lt; width; p in [0, kc).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void CopyRows(float* src, nint srcStride, int count, int width, int kc, float* dst)
    {
        if (count == 32 && width == 32 && Vector256.IsHardwareAccelerated)
        {
            for (int p = 0; p < kc; p++, src += srcStride, dst += 32)
            {
                Vector256.Store(Vector256.Load(src), dst);
                Vector256.Store(Vector256.Load(src + 8), dst + 8);
                Vector256.Store(Vector256.Load(src + 16), dst + 16);
                Vector256.Store(Vector256.Load(src + 24), dst + 24);
            }
            return;
        }
        if (count == 16 && width == 16 && Vector256.IsHardwareAccelerated)
        {
            for (int p = 0; p < kc; p++, src += srcStride, dst += 16)
            {
                Vector256.Store(Vector256.Load(src), dst);
                Vector256.Store(Vector256.Load(src + 8), dst + 8);
            }
            return;
        }
        if (count == 8 && width == 8 && Vector256.IsHardwareAccelerated)
        {
            for (int p = 0; p < kc; p++, src += srcStride, dst += 8)
                Vector256.Store(Vector256.Load(src), dst);
            return;
        }
        for (int p = 0; p < kc; p++, src += srcStride, dst += width)
        {
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 8 <= count; i += 8) Vector256.Store(Vector256.Load(src + i), dst + i);
            }
            for (; i < count; i++) dst[i] = src[i];
            for (; i < width; i++) dst[i] = 0f;
        }
    }

    /// <summary>
    /// dst[p*width + r] = src[r*srcStride + p] for r &lt; count, 0 for count &lt;= r &lt; width; p in [0, kc):
    /// a micro-panel from <paramref name="count"/> source rows that run along k.
    /// </summary>
    static void TransposePanel(float* src, nint srcStride, int count, int width, int kc, float* dst)
    {
        // NOTE: the 8x8 transposes need whole groups of 8 source rows; a partial group (and the
        // zero rows after it) goes through the scalar path of TransposeRows.
        int g = 0;
        for (; g + 8 <= count; g += 8)
            TransposeRows(src + g * srcStride, srcStride, 8, 8, width, kc, dst + g);
        if (g < width)
            TransposeRows(src + g * srcStride, srcStride, count - g, width - g, width, kc, dst + g);
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
