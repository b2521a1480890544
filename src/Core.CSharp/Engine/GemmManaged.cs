using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace VaeResearch.Engine;

/// <summary>The register kernels the managed GEMM can run (the best supported one is the default).</summary>
internal enum ManagedKernel
{
    /// <summary>10 x 32 Vector512 tile (AVX-512F).</summary>
    Avx512,
    /// <summary>6 x 16 Vector256 tile (AVX2 + FMA3).</summary>
    Avx2,
    /// <summary>4 x 4 scalar tile (any CPU).</summary>
    Scalar,
}

/// <summary>
/// Managed SIMD SGEMM: Goto/BLIS-style blocking (k blocks of KcMax, m blocks of McMax, n blocks of
/// NcMax), packing of A and B into thread-local aligned buffers, register micro-kernels, and a split of
/// the larger of m and n over worker threads.
/// </summary>
/// <remarks>
/// Determinism: every C element is produced by the same kernel with the same k-block boundaries
/// (they depend on k only) whatever the thread count and whether its tile is a full or an edge tile,
/// so the result is bitwise identical for any thread count on a given kernel.
/// </remarks>
[SkipLocalsInit]
internal static unsafe class ManagedGemm
{
    /// <summary>Largest n block (packed B block kc x nc, shared by all m blocks, lives in L2/L3).</summary>
    const int NcMax = 2048;

    /// <summary>Below this many multiply-adds (m*n*k, ~5 us of work) one thread beats the fork/join overhead.</summary>
    internal const long ParallelThreshold = 1L << 19;

    /// <summary>The fastest kernel this CPU runs.</summary>
    public static ManagedKernel Best { get; } =
        Kernel10x32Avx512.IsSupported ? ManagedKernel.Avx512
        : Kernel6x16Avx2.IsSupported ? ManagedKernel.Avx2
        : ManagedKernel.Scalar;

    /// <summary>Whether <paramref name="kernel"/> can run on this CPU.</summary>
    public static bool IsSupported(ManagedKernel kernel) => kernel switch
    {
        ManagedKernel.Avx512 => Kernel10x32Avx512.IsSupported,
        ManagedKernel.Avx2 => Kernel6x16Avx2.IsSupported,
        ManagedKernel.Scalar => true,
        _ => false,
    };

    /// <summary>Short human-readable name of <paramref name="kernel"/>.</summary>
    public static string Describe(ManagedKernel kernel) => kernel switch
    {
        ManagedKernel.Avx512 => "AVX-512F 10x32 kernel",
        ManagedKernel.Avx2 => "AVX2+FMA 6x16 kernel",
        _ => "scalar 4x4 kernel",
    };

    /// <summary>
    /// C = alpha op(A) op(B) + beta C for validated arguments with m, n, k &gt; 0, using at most
    /// <paramref name="threads"/> workers.
    /// </summary>
    public static void Sgemm(ManagedKernel kernel, int threads, bool transA, bool transB, int m, int n, int k,
        float alpha, float* a, nint lda, float* b, nint ldb, float beta, float* c, nint ldc)
    {
        var p = new Problem(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        switch (kernel)
        {
            case ManagedKernel.Avx512: Run<Kernel10x32Avx512>(p, threads); break;
            case ManagedKernel.Avx2: Run<Kernel6x16Avx2>(p, threads); break;
            default: Run<Kernel4x4Scalar>(p, threads); break;
        }
    }

    /// <summary>One GEMM call's arguments (pointers into memory pinned by the caller).</summary>
    internal readonly struct Problem(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, nint lda, float* b, nint ldb, float beta, float* c, nint ldc)
    {
        public readonly bool TransA = transA, TransB = transB;
        public readonly int M = m, N = n, K = k;
        public readonly float Alpha = alpha, Beta = beta;
        public readonly float* A = a, B = b, C = c;
        public readonly nint Lda = lda, Ldb = ldb, Ldc = ldc;

        /// <summary>The sub-problem of rows [r0, r1) of C.</summary>
        public Problem Rows(int r0, int r1) => new(TransA, TransB, r1 - r0, N, K, Alpha,
            TransA ? A + r0 : A + r0 * Lda, Lda, B, Ldb, Beta, C + r0 * Ldc, Ldc);

        /// <summary>The sub-problem of columns [c0, c1) of C.</summary>
        public Problem Cols(int c0, int c1) => new(TransA, TransB, M, c1 - c0, K, Alpha,
            A, Lda, TransB ? B + c0 * Ldb : B + c0, Ldb, Beta, C + c0, Ldc);
    }

    /// <summary>How a call is split over workers: one part per worker, tile-aligned.</summary>
    internal readonly struct Plan(int workers, bool splitRows, int mPanels, int nPanels)
    {
        /// <summary>Number of parts (one per worker; the caller is one of the workers).</summary>
        public readonly int Parts = workers;
        /// <summary>Parts are ranges of row tiles (MR) of C, else of column tiles (NR).</summary>
        public readonly bool SplitRows = splitRows;
        /// <summary>Row tiles and column tiles of C.</summary>
        public readonly int MPanels = mPanels, NPanels = nPanels;
    }

    static void Run<TK>(in Problem p, int threads) where TK : struct, IGemmKernel
    {
        long work = (long)p.M * p.N * p.K;
        int mPanels = (p.M + TK.MR - 1) / TK.MR;
        int nPanels = (p.N + TK.NR - 1) / TK.NR;
        // NOTE: each part packs all of the operand it does not split, so split the larger dimension
        // (the duplicated packing is then the smaller operand). Packing once into a shared buffer
        // and computing in a second fork/join was tried: no gain measurable on this machine, and
        // twice the exposure to a helper thread that the OS delays on a busy machine.
        bool splitRows = p.M >= p.N;
        int workers = work < ParallelThreshold ? 1 : Math.Min(Math.Max(1, threads), splitRows ? mPanels : nPanels);
        if (workers > 1)
        {
            var problem = p;
            var plan = new Plan(workers, splitRows, mPanels, nPanels);
            WorkerPool.For(workers, workers, workers, (first, last) =>
            {
                for (int part = first; part < last; part++) RunPart<TK>(problem, plan, part);
            });
        }
        else
        {
            Serial<TK>(p);
        }
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="plan"/>: the serial algorithm on its slice of C.</summary>
    internal static void RunPart<TK>(in Problem p, in Plan plan, int part) where TK : struct, IGemmKernel
    {
        int unit = plan.SplitRows ? TK.MR : TK.NR;
        int extent = plan.SplitRows ? p.M : p.N;
        long tiles = plan.SplitRows ? plan.MPanels : plan.NPanels;
        // NOTE: boundaries on whole tiles, so the edge tiles stay at the matrix edge.
        int lo = (int)Math.Min(extent, tiles * part / plan.Parts * unit);
        int hi = (int)Math.Min(extent, tiles * (part + 1) / plan.Parts * unit);
        if (hi > lo) Serial<TK>(plan.SplitRows ? p.Rows(lo, hi) : p.Cols(lo, hi));
    }

    /// <summary>Single-threaded blocked GEMM on one worker's part of C.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Serial<TK>(in Problem p) where TK : struct, IGemmKernel
    {
        int mr = TK.MR, nr = TK.NR;
        int m = p.M, n = p.N, k = p.K;
        // NOTE: k-block boundaries depend on k alone (never on m, n or the thread split), which is
        // what makes the summation order, hence the result, independent of the thread count.
        int kBlocks = (k + TK.KcMax - 1) / TK.KcMax;
        int kcStep = (k + kBlocks - 1) / kBlocks;
        int mBlocks = (m + TK.McMax - 1) / TK.McMax;
        int mcStep = RoundUp((m + mBlocks - 1) / mBlocks, mr);
        int nBlocks = (n + NcMax - 1) / NcMax;
        int ncStep = RoundUp((n + nBlocks - 1) / nBlocks, nr);

        float* ap = Buffers.Get(ref Buffers.A, (long)mcStep * kcStep);
        float* bp = Buffers.Get(ref Buffers.B, (long)ncStep * kcStep);
        float* tile = stackalloc float[mr * nr];

        for (int jc = 0; jc < n; jc += ncStep)
        {
            int nc = Math.Min(ncStep, n - jc);
            for (int pc = 0; pc < k; pc += kcStep)
            {
                int kc = Math.Min(kcStep, k - pc);
                // NOTE: beta applies once, in the first k block; later blocks accumulate (beta = 1).
                float beta = pc == 0 ? p.Beta : 1f;
                GemmPacking.PackB<TK>(p.TransB, p.TransB ? p.B + jc * p.Ldb + pc : p.B + pc * p.Ldb + jc,
                    p.Ldb, kc, nc, bp);
                for (int ic = 0; ic < m; ic += mcStep)
                {
                    int mc = Math.Min(mcStep, m - ic);
                    GemmPacking.PackA<TK>(p.TransA, p.TransA ? p.A + pc * p.Lda + ic : p.A + ic * p.Lda + pc,
                        p.Lda, mc, kc, ap);
                    // NOTE: while the kernels work on this block, pull the source of the next packing
                    // (next A block; after the last one, the next k block of B and its first A block)
                    // towards L2. A large activation matrix otherwise streams from L3/DRAM during packing,
                    // which costs up to ~20% on the backward shapes (dW = dY^T X, dX = dY W).
                    Prefetcher next1 = default, next2 = default;
                    if (ic + mcStep < m)
                    {
                        next1 = ARegion(p, pc, kc, ic + mcStep, Math.Min(mcStep, m - ic - mcStep));
                    }
                    else if (pc + kcStep < k)
                    {
                        int kcNext = Math.Min(kcStep, k - pc - kcStep);
                        next1 = BRegion(p, pc + kcStep, kcNext, jc, nc);
                        next2 = ARegion(p, pc + kcStep, kcNext, 0, Math.Min(mcStep, m));
                    }
                    Macro<TK>(mc, nc, kc, ap, bp, p.C + ic * p.Ldc + jc, p.Ldc, p.Alpha, beta, tile, ref next1, ref next2);
                }
            }
        }
    }

    /// <summary>The source region of the packed A block (ic.., pc..) of size mc x kc.</summary>
    static Prefetcher ARegion(in Problem p, int pc, int kc, int ic, int mc) =>
        p.TransA ? new Prefetcher(p.A + pc * p.Lda + ic, p.Lda, kc, mc)
                 : new Prefetcher(p.A + ic * p.Lda + pc, p.Lda, mc, kc);

    /// <summary>The source region of the packed B block (pc.., jc..) of size kc x nc.</summary>
    static Prefetcher BRegion(in Problem p, int pc, int kc, int jc, int nc) =>
        p.TransB ? new Prefetcher(p.B + jc * p.Ldb + pc, p.Ldb, nc, kc)
                 : new Prefetcher(p.B + pc * p.Ldb + jc, p.Ldb, kc, nc);

    /// <summary>
    /// Walks the cache lines of a strided region (rows of rowFloats floats, stride floats apart) and
    /// prefetches them into L2 a few at a time.
    /// </summary>
    struct Prefetcher
    {
        byte* rowStart;
        readonly nint strideBytes;
        readonly int rowBytes;
        int rowsLeft;
        int offset;

        public Prefetcher(float* start, nint stride, int rows, int rowFloats)
        {
            rowStart = (byte*)start;
            strideBytes = stride * sizeof(float);
            rowBytes = rowFloats * sizeof(float);
            rowsLeft = rowBytes > 0 ? rows : 0;
            offset = 0;
        }

        /// <summary>Upper bound of the prefetches still to issue.</summary>
        public readonly int Lines => rowsLeft * (rowBytes / 64 + 2);

        /// <summary>Issues up to <paramref name="lines"/> prefetches; returns how many were not needed.</summary>
        public int Step(int lines)
        {
            if (!Sse.IsSupported) return lines;
            for (; lines > 0 && rowsLeft > 0; lines--)
            {
                // NOTE: the last prefetch of a row targets its last byte, so a row that is not
                // line-aligned still has its final line fetched.
                Sse.Prefetch1(rowStart + Math.Min(offset, rowBytes - 1));
                if (offset >= rowBytes - 1)
                {
                    rowStart += strideBytes;
                    rowsLeft--;
                    offset = 0;
                }
                else
                {
                    offset += 64;
                }
            }
            return lines;
        }
    }

    /// <summary>Runs the micro-kernel over all tiles of one packed mc x kc block of A and kc x nc block of B.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Macro<TK>(int mc, int nc, int kc, float* ap, float* bp, float* c, nint ldc, float alpha, float beta,
        float* tile, ref Prefetcher next1, ref Prefetcher next2) where TK : struct, IGemmKernel
    {
        int tiles = (nc + TK.NR - 1) / TK.NR * ((mc + TK.MR - 1) / TK.MR);
        int perTile = (next1.Lines + next2.Lines + tiles - 1) / tiles;
        for (int jr = 0; jr < nc; jr += TK.NR)
        {
            int nr = Math.Min(TK.NR, nc - jr);
            float* bPanel = bp + (nint)jr * kc;
            for (int ir = 0; ir < mc; ir += TK.MR)
            {
                int mr = Math.Min(TK.MR, mc - ir);
                float* aPanel = ap + (nint)ir * kc;
                float* cTile = c + ir * ldc + jr;
                if (perTile > 0) next2.Step(next1.Step(perTile));
                // NOTE: a last panel at most NR/2 wide runs the half-width kernel (same per-element
                // arithmetic, half the work) — n = 200 or 784 leaves 8 or 16 columns after the full panels.
                bool half = TK.HasHalf && 2 * nr <= TK.NR;
                if (mr == TK.MR && nr == (half ? TK.NR / 2 : TK.NR))
                {
                    if (half) TK.RunHalf(kc, aPanel, bPanel, cTile, ldc, alpha, beta);
                    else TK.Run(kc, aPanel, bPanel, cTile, ldc, alpha, beta);
                }
                else
                {
                    // NOTE: edge tile: full-size product into scratch (alpha = 1 and beta = 0 are exact),
                    // then the scalar merge applies alpha/beta with the kernel's rounding.
                    if (half) TK.RunHalf(kc, aPanel, bPanel, tile, TK.NR, 1f, 0f);
                    else TK.Run(kc, aPanel, bPanel, tile, TK.NR, 1f, 0f);
                    GemmPacking.MergeTile(tile, TK.NR, mr, nr, cTile, ldc, alpha, beta);
                }
            }
        }
    }

    static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    /// <summary>Per-thread packing buffers, reused across calls (no per-call allocation).</summary>
    static class Buffers
    {
        [ThreadStatic] internal static float[]? A;
        [ThreadStatic] internal static float[]? B;

        /// <summary>A 64-byte aligned pointer to at least <paramref name="count"/> floats of <paramref name="buffer"/>.</summary>
        internal static float* Get(ref float[]? buffer, long count)
        {
            const int Slack = 16; // 64 bytes of room to align the start
            if (buffer is null || buffer.Length < count + Slack)
            {
                // NOTE: pinned-object-heap arrays never move, so the raw pointer stays valid across
                // calls without `fixed`; grow geometrically so a sequence of shapes settles quickly.
                long size = Math.Max(count + Slack, buffer is null ? 0 : 2L * buffer.Length);
                buffer = GC.AllocateUninitializedArray<float>((int)Math.Min(size, Array.MaxLength), pinned: true);
            }
            nint start = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
            return (float*)((start + 63) & ~(nint)63);
        }
    }
}
