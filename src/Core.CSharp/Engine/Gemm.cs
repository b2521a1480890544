namespace VaeResearch.Engine;

/// <summary>A GEMM implementation.</summary>
public enum GemmBackend
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
/// the environment variable <c>VAE_BLAS=managed|openblas</c> forces one.
/// </remarks>
public static partial class Gemm
{
    /// <summary>The backend the backend-less overload of Sgemm dispatches to.</summary>
    public static GemmBackend Backend { get; } = GemmBackend.Managed;

    /// <summary>Sets the thread count of the native backend (no-op for the managed one).</summary>
    public static void SetThreads(int threads) { _ = threads; }

    /// <summary>C[m, n] = alpha * op(A) op(B) + beta * C with the active backend.</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        Sgemm(Backend, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    /// <summary>C[m, n] = alpha * op(A) op(B) + beta * C with the given backend.</summary>
    public static void Sgemm(GemmBackend backend, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        _ = backend;
        // TEMPORARY naive kernel until the real backends land.
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++)
                    s += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                c[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j]);
            }
    }
}
