using System.Numerics.Tensors;

namespace VaeResearch.Engine;

/// <summary>A GEMM implementation.</summary>
public enum GemmKernel
{
    /// <summary>Managed SIMD kernel (always available).</summary>
    Managed,
    /// <summary>OpenBLAS <c>cblas_sgemm</c> through P/Invoke (when libopenblas.so.0 loads).</summary>
    OpenBlas,
}

/// <summary>
/// Single-precision GEMM on row-major matrices: C = alpha * op(A) * op(B) + beta * C.
/// </summary>
/// <remarks>
/// op(A) is [m, k] and op(B) is [k, n]; with <c>transA</c>, A is stored as [k, m] (leading dimension lda),
/// likewise for B. The backend is OpenBLAS when it loads, else the managed kernel;
/// the environment variable <c>VAE_GEMM=managed|openblas</c> forces one.
/// As in BLAS, when beta == 0 the old contents of C are never read (NaN there does not propagate),
/// and when alpha == 0 or k == 0, A and B are not read and C = beta * C.
/// </remarks>
public static partial class Gemm
{
    /// <summary>The environment variable that forces a GEMM kernel.</summary>
    internal const string EnvironmentVariable = "VAE_GEMM";

    // NOTE: -1 = not chosen yet. Selection is lazy (and a failure is not cached) so that a bad VAE_GEMM
    // surfaces as a VaeResearchException at first use, not as a TypeInitializationException.
    static int selected = -1;

    /// <summary>The kernel the kernel-less overload of Sgemm dispatches to.</summary>
    /// <remarks>
    /// Chosen on first use: <c>VAE_GEMM=managed</c> or <c>VAE_GEMM=openblas</c> forces one; unset (or empty)
    /// picks the faster of the two by <see cref="GemmCalibration"/> when <c>libopenblas.so.0</c> loads, else the managed kernel.
    /// </remarks>
    /// <exception cref="VaeResearchException">VAE_GEMM has an unknown value, or is <c>openblas</c> and the library does not load.</exception>
    public static GemmKernel Kernel
    {
        get
        {
            int s = Volatile.Read(ref selected);
            if (s >= 0) return (GemmKernel)s;
            if (Environment.GetEnvironmentVariable("VAE_BLAS") is { Length: > 0 } renamed && Environment.GetEnvironmentVariable(EnvironmentVariable) is null)
                throw new VaeResearchException(
                    $"VAE_BLAS was renamed {EnvironmentVariable} (\"backend\" now means native or torch): set {EnvironmentVariable}={renamed.Trim()} instead");
            var chosen = SelectKernel(Environment.GetEnvironmentVariable(EnvironmentVariable),
                () => OpenBlas.IsAvailable, () => OpenBlas.LoadError, GemmCalibration.Choose);
            Volatile.Write(ref selected, (int)chosen);
            return chosen;
        }
    }

    /// <summary>Whether <c>VAE_GEMM</c> forces the kernel.</summary>
    public static bool IsForced => !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>The lower-case name of a kernel, as VAE_GEMM and config.json spell it.</summary>
    public static string Name(GemmKernel kernel) => kernel == GemmKernel.OpenBlas ? "openblas" : "managed";

    /// <summary>
    /// Makes <paramref name="recorded"/> (the kernel a run was trained with) the kernel of this process, so that a resumed
    /// run stays bit-identical; returns why not, when VAE_GEMM forces another kernel or OpenBLAS does not load here.
    /// </summary>
    public static string? UseRecorded(GemmKernel recorded)
    {
        var why = $"the run was trained with the {Name(recorded)} GEMM kernel, ";
        const string consequence = ": results stay valid but are not bit-identical to an uninterrupted run";
        if (IsForced)
            return Kernel == recorded ? null : why + $"{EnvironmentVariable} forces {Name(Kernel)}" + consequence;
        if (recorded == GemmKernel.OpenBlas && !OpenBlas.IsAvailable)
            return why + $"but {OpenBlas.LibraryName} does not load here, so it continues on the managed kernel" + consequence;
        Volatile.Write(ref selected, (int)recorded);
        return null;
    }

    /// <summary>Forgets the chosen backend so the next use reads VAE_GEMM again (tests only).</summary>
    internal static void ResetKernelSelection() => Volatile.Write(ref selected, -1);

    /// <summary>Whether <c>libopenblas.so.0</c> loads on this machine (and exports <c>cblas_sgemm</c>).</summary>
    public static bool OpenBlasAvailable => OpenBlas.IsAvailable;

    /// <summary>
    /// The active backend in words, for benchmarks and logs, e.g.
    /// "openblas (libopenblas.so.0, 2 threads, core Haswell)" or "managed SIMD (AVX2+FMA 6x16 kernel, 2 threads)".
    /// </summary>
    /// <exception cref="VaeResearchException">As for <see cref="Kernel"/>.</exception>
    public static string KernelDescription => Describe(Kernel);

    /// <summary>Describes <paramref name="backend"/> with its current thread count.</summary>
    internal static string Describe(GemmKernel backend)
    {
        if (backend == GemmKernel.OpenBlas)
        {
            string? core = OpenBlas.CoreName;
            return $"openblas ({OpenBlas.LibraryName}, {Plural(Parallelism.Threads)}{(core is null ? "" : ", core " + core.Trim())})";
        }
        var kernel = ManagedGemm.Best;
        string kind = kernel == ManagedKernel.Scalar ? "managed scalar" : "managed SIMD";
        return $"{kind} ({ManagedGemm.Describe(kernel)}, {Plural(Parallelism.Threads)})";
    }

    static string Plural(int threads) => threads == 1 ? "1 thread" : $"{threads} threads";

    /// <summary>
    /// The kernel for a value of VAE_GEMM (null when unset): unset picks by <paramref name="calibrate"/> when OpenBLAS loads;
    /// pure apart from probing the library and calibrating, which happen only when the value needs them.
    /// </summary>
    internal static GemmKernel SelectKernel(string? value, Func<bool> openBlasAvailable, Func<string> loadError, Func<GemmKernel> calibrate)
    {
        string v = (value ?? "").Trim();
        if (v.Length == 0)
            return openBlasAvailable() ? calibrate() : GemmKernel.Managed;
        if (v.Equals("managed", StringComparison.OrdinalIgnoreCase))
            return GemmKernel.Managed;
        if (v.Equals("openblas", StringComparison.OrdinalIgnoreCase))
        {
            if (openBlasAvailable()) return GemmKernel.OpenBlas;
            throw new VaeResearchException(
                $"{EnvironmentVariable}=openblas, but {OpenBlas.LibraryName} could not be loaded ({loadError()}). " +
                $"Install it ({OpenBlas.InstallHint}), or set {EnvironmentVariable}=managed (or unset it) to use the managed SIMD kernel.");
        }
        throw new VaeResearchException(
            $"{EnvironmentVariable}='{value}' is not a GEMM kernel: expected 'managed' or 'openblas' " +
            $"(or leave {EnvironmentVariable} unset to use OpenBLAS when {OpenBlas.LibraryName} loads, " +
            $"the managed kernel otherwise; OpenBLAS: {OpenBlas.InstallHint}).");
    }

    [ThreadStatic] static long multiplyAdds;

    /// <summary>
    /// The multiply-adds (m n k) of every GEMM call made on this thread so far: what <see cref="Experiments.RunCost"/>
    /// counts ahead of a run, measured.
    /// </summary>
    public static long MultiplyAdds => multiplyAdds;

    /// <summary>C[m, n] = alpha * op(A) op(B) + beta * C with the active backend (<see cref="Kernel"/>).</summary>
    /// <param name="transA">A is stored [k, m] (op(A) = A^T) instead of [m, k].</param>
    /// <param name="transB">B is stored [n, k] (op(B) = B^T) instead of [k, n].</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="k">Columns of op(A), rows of op(B).</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A, row-major with leading dimension <paramref name="lda"/>.</param>
    /// <param name="lda">Row stride of A (at least its stored row width).</param>
    /// <param name="b">B, row-major with leading dimension <paramref name="ldb"/>.</param>
    /// <param name="ldb">Row stride of B (at least its stored row width).</param>
    /// <param name="beta">Scale of the old C; 0 means C is write-only.</param>
    /// <param name="c">C [m, n], row-major with leading dimension <paramref name="ldc"/>.</param>
    /// <param name="ldc">Row stride of C (at least n).</param>
    /// <exception cref="ArgumentException">A dimension is negative, a leading dimension is too small or a span too short.</exception>
    /// <exception cref="VaeResearchException">The kernel selection failed (see <see cref="Kernel"/>).</exception>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        Sgemm(Kernel, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    /// <summary>C[m, n] = alpha * op(A) op(B) + beta * C with the given backend.</summary>
    /// <param name="backend">The implementation to use (ignores VAE_GEMM).</param>
    /// <param name="transA">A is stored [k, m] (op(A) = A^T) instead of [m, k].</param>
    /// <param name="transB">B is stored [n, k] (op(B) = B^T) instead of [k, n].</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="k">Columns of op(A), rows of op(B).</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A, row-major with leading dimension <paramref name="lda"/>.</param>
    /// <param name="lda">Row stride of A (at least its stored row width).</param>
    /// <param name="b">B, row-major with leading dimension <paramref name="ldb"/>.</param>
    /// <param name="ldb">Row stride of B (at least its stored row width).</param>
    /// <param name="beta">Scale of the old C; 0 means C is write-only.</param>
    /// <param name="c">C [m, n], row-major with leading dimension <paramref name="ldc"/>.</param>
    /// <param name="ldc">Row stride of C (at least n).</param>
    /// <exception cref="ArgumentException">A dimension is negative, a leading dimension is too small, a span
    /// too short, or <paramref name="backend"/> is not a defined value.</exception>
    /// <exception cref="VaeResearchException"><paramref name="backend"/> is OpenBlas and libopenblas.so.0 does not load.</exception>
    public static void Sgemm(GemmKernel backend, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        if (backend == GemmKernel.OpenBlas && !OpenBlas.IsAvailable)
            throw new VaeResearchException(
                $"The OpenBLAS GEMM backend was requested, but {OpenBlas.LibraryName} could not be loaded " +
                $"({OpenBlas.LoadError}). Install it ({OpenBlas.InstallHint}) or use the managed backend " +
                $"({EnvironmentVariable}=managed).");
        if (backend is not (GemmKernel.Managed or GemmKernel.OpenBlas))
            throw new ArgumentOutOfRangeException(nameof(backend), backend, "unknown GEMM backend");

        if (m == 0 || n == 0) return;
        multiplyAdds += (long)m * n * k;
        if (k == 0 || alpha == 0f)
        {
            // NOTE: BLAS semantics: A and B are not referenced, C = beta * C, and beta == 0 writes
            // zeros without reading C (so NaN there does not survive).
            ScaleC(m, n, beta, c, ldc);
            return;
        }

        if (backend == GemmKernel.OpenBlas)
        {
            SgemmOpenBlas(Parallelism.Threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        SgemmManaged(ManagedGemm.Best, Parallelism.Threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /// <summary>Rows or columns of C per OpenBLAS part are a multiple of this (whole register tiles of its kernels).</summary>
    const int OpenBlasPartUnit = 16;

    /// <summary>
    /// OpenBLAS, single-threaded, on up to <paramref name="threads"/> parts of C run by the engine's workers: ranges of rows,
    /// or of columns when C is wider than tall (each part packs the whole of the other operand, the smaller one).
    /// </summary>
    // NOTE: OpenBLAS's own workers spin for 2^28 cycles (about 0.1 s) after each call, waiting for the next one. Between
    // the GEMMs of a training step they held a core that the elementwise kernels and Adam then lacked: k = 5 took 10.3 ms
    // a step on 2 threads, 7.5 ms with OPENBLAS_THREAD_TIMEOUT=4. OpenBLAS therefore runs on one thread (set when it loads)
    // inside our workers, which nothing spins after.
    internal static unsafe void SgemmOpenBlas(int threads, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        {
            var whole = new ManagedGemm.Problem(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
            bool splitRows = m >= n;
            int units = ((splitRows ? m : n) + OpenBlasPartUnit - 1) / OpenBlasPartUnit;
            int parts = (long)m * n * k < ManagedGemm.ParallelThreshold ? 1 : Math.Min(Math.Max(1, threads), units);
            if (parts == 1)
            {
                OpenBlas.Sgemm(whole);
                return;
            }
            int extent = splitRows ? m : n;
            Parallelism.For(parts, 1, (first, last) =>
            {
                for (int part = first; part < last; part++)
                {
                    int lo = Math.Min(extent, (int)((long)units * part / parts) * OpenBlasPartUnit);
                    int hi = Math.Min(extent, (int)((long)units * (part + 1) / parts) * OpenBlasPartUnit);
                    if (hi > lo) OpenBlas.Sgemm(splitRows ? whole.Rows(lo, hi) : whole.Cols(lo, hi));
                }
            });
        }
    }

    /// <summary>
    /// The managed GEMM with an explicit kernel and worker count, on validated arguments with m, n, k &gt; 0
    /// and alpha != 0 (tests use it to cover every kernel the CPU supports and the thread invariance).
    /// </summary>
    internal static unsafe void SgemmManaged(ManagedKernel kernel, int threads, bool transA, bool transB,
        int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        float beta, Span<float> c, int ldc)
    {
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        {
            ManagedGemm.Sgemm(kernel, threads, transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
        }
    }

    static void ScaleC(int m, int n, float beta, Span<float> c, int ldc)
    {
        if (beta == 1f) return;
        for (int i = 0; i < m; i++)
        {
            Span<float> row = c.Slice(i * ldc, n);
            if (beta == 0f) row.Clear();
            else TensorPrimitives.Multiply(row, beta, row);
        }
    }

    /// <summary>Checks dimensions, leading dimensions and span lengths; the messages name the argument.</summary>
    internal static void Validate(bool transA, bool transB, int m, int n, int k,
        int aLength, int lda, int bLength, int ldb, int cLength, int ldc)
    {
        if (m < 0) throw new ArgumentException($"m must be >= 0, got {m}", nameof(m));
        if (n < 0) throw new ArgumentException($"n must be >= 0, got {n}", nameof(n));
        if (k < 0) throw new ArgumentException($"k must be >= 0, got {k}", nameof(k));
        CheckOperand("a", "lda", transA ? "transA: A is stored [k, m]" : "A is stored [m, k]",
            transA ? k : m, transA ? m : k, lda, aLength);
        CheckOperand("b", "ldb", transB ? "transB: B is stored [n, k]" : "B is stored [k, n]",
            transB ? n : k, transB ? k : n, ldb, bLength);
        CheckOperand("c", "ldc", "C is [m, n]", m, n, ldc, cLength);
    }

    static void CheckOperand(string name, string ldName, string layout, int rows, int cols, int ld, int length)
    {
        // NOTE: like BLAS, ld must be >= max(1, cols) even when the matrix is empty.
        if (ld < Math.Max(1, cols))
            throw new ArgumentException(
                $"{ldName} = {ld} is too small: {layout} = [{rows}, {cols}], so {ldName} must be at least {Math.Max(1, cols)}",
                ldName);
        long needed = rows == 0 || cols == 0 ? 0 : (long)(rows - 1) * ld + cols;
        if (length < needed)
            throw new ArgumentException(
                $"{name} has {length} elements, but {layout} = [{rows}, {cols}] with {ldName} = {ld} needs at least {needed}",
                name);
    }
}
