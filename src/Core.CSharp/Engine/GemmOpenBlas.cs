using System.Runtime.InteropServices;

namespace VaeResearch.Engine;

/// <summary>
/// OpenBLAS binding: <c>libopenblas.so.0</c> loaded on first use with <see cref="NativeLibrary.TryLoad(string, out IntPtr)"/>,
/// entry points called through unmanaged function pointers (no marshaling stubs).
/// </summary>
internal static unsafe class OpenBlas
{
    /// <summary>The shared object the dynamic loader is asked for when <see cref="PathVariable"/> is unset.</summary>
    public const string DefaultLibrary = "libopenblas.so.0";

    /// <summary>The environment variable that names another OpenBLAS build (a path or a soname).</summary>
    public const string PathVariable = "VAE_OPENBLAS";

    /// <summary>
    /// The library passed to the dynamic loader: <c>$VAE_OPENBLAS</c> when set, else <see cref="DefaultLibrary"/>.
    /// A name that does not load leaves OpenBLAS unavailable, exactly as when it is not installed.
    /// </summary>
    public static readonly string LibraryName =
        Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } path ? path : DefaultLibrary;

    /// <summary>The command that installs the library on Debian/Ubuntu (and in CI).</summary>
    public const string InstallHint = "apt-get install -y libopenblas0-pthread";

    const int CblasRowMajor = 101;
    const int CblasNoTrans = 111;
    const int CblasTrans = 112;

    static readonly object Gate = new();
    static volatile bool attempted;
    static bool available;
    static string loadError = "";

    // cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); blasint is 32-bit
    // in Debian's libopenblas0 (the 64-bit-index build is the separate libopenblas64_0).
    static delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    static delegate* unmanaged<int, void> setNumThreads;
    static delegate* unmanaged<byte*> getCoreName;

    /// <summary>Whether the library and its <c>cblas_sgemm</c> loaded (loads on first query; never throws).</summary>
    public static bool IsAvailable
    {
        get
        {
            EnsureLoaded();
            return available;
        }
    }

    /// <summary>Why the library is unavailable (empty when it loaded).</summary>
    public static string LoadError
    {
        get
        {
            EnsureLoaded();
            return loadError;
        }
    }

    static void EnsureLoaded()
    {
        if (attempted) return;
        lock (Gate)
        {
            if (attempted) return;
            try
            {
                if (!NativeLibrary.TryLoad(LibraryName, out nint handle))
                {
                    loadError = $"the dynamic loader could not find or open {LibraryName}";
                }
                else if (!NativeLibrary.TryGetExport(handle, "cblas_sgemm", out nint sgemmPtr))
                {
                    loadError = $"{LibraryName} loaded but exports no cblas_sgemm";
                }
                else
                {
                    sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemmPtr;
                    if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out nint p))
                        setNumThreads = (delegate* unmanaged<int, void>)p;
                    if (NativeLibrary.TryGetExport(handle, "openblas_get_corename", out p))
                        getCoreName = (delegate* unmanaged<byte*>)p;
                    available = true;
                    // NOTE: one thread: Gemm splits a call over the engine's own workers (see Gemm.SgemmOpenBlas).
                    if (setNumThreads != null) setNumThreads(1);
                }
            }
            catch (Exception e) when (e is BadImageFormatException or DllNotFoundException or EntryPointNotFoundException)
            {
                loadError = $"{LibraryName} could not be loaded: {e.Message}";
                available = false;
            }
            attempted = true;
        }
    }

    /// <summary>The kernel family OpenBLAS selected for this CPU (e.g. "Haswell"), or null.</summary>
    public static string? CoreName =>
        IsAvailable && getCoreName != null ? Marshal.PtrToStringAnsi((nint)getCoreName()) : null;

    /// <summary>
    /// Calls <c>cblas_sgemm</c> in row-major order on a validated problem with m, n, k &gt; 0 (memory pinned by the caller).
    /// The caller has checked <see cref="IsAvailable"/>.
    /// </summary>
    public static void Sgemm(in ManagedGemm.Problem p) =>
        sgemm(CblasRowMajor, p.TransA ? CblasTrans : CblasNoTrans, p.TransB ? CblasTrans : CblasNoTrans,
            p.M, p.N, p.K, p.Alpha, p.A, (int)p.Lda, p.B, (int)p.Ldb, p.Beta, p.C, (int)p.Ldc);
}
