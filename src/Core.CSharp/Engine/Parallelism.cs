namespace VaeResearch.Engine;

/// <summary>
/// The engine's thread setting: how many workers elementwise kernels, RNG fills and GEMM use.
/// </summary>
/// <remarks>
/// Results never depend on this setting except through floating-point summation order inside
/// GEMM and reductions split across workers; RNG streams are identical for any value.
/// </remarks>
public static class Parallelism
{
    static int threads = Math.Max(1, Environment.ProcessorCount);

    /// <summary>Worker count (default: the processor count), GEMM's included.</summary>
    public static int Threads
    {
        get => threads;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "thread count must be at least 1");
            threads = value;
        }
    }

    /// <summary>Pieces a parallel loop is cut into per worker.</summary>
    const int PiecesPerWorker = 4;

    /// <summary>
    /// Runs <paramref name="body"/>(start, end) over [0, n) on at most <see cref="Threads"/> workers, one per
    /// <paramref name="minChunk"/> items: contiguous pieces, <see cref="PiecesPerWorker"/> per worker, each taken by the next
    /// worker that is free.
    /// </summary>
    public static void For(int n, int minChunk, Action<int, int> body)
    {
        int workers = Math.Min(threads, Math.Max(1, n / Math.Max(1, minChunk)));
        if (workers <= 1)
        {
            body(0, n);
            return;
        }
        // NOTE: PiecesPerWorker pieces each, claimed as workers come free: a helper that starts late then takes fewer
        // pieces, instead of the caller waiting for the part it owned.
        WorkerPool.For(n, Math.Min(n, workers * PiecesPerWorker), workers, body);
    }
}
