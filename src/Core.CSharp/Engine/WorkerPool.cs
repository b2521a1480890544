using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace VaeResearch.Engine;

/// <summary>
/// The engine's fork/join: dedicated helper threads that, after a parallel loop, spin for <see cref="SpinTicks"/> before
/// they block, so that the loops of a training step (tens of them, microseconds apart) start without waking a thread.
/// </summary>
/// <remarks>
/// One loop owns the helpers at a time: a caller that finds them busy (another thread's loop, or a loop started inside a
/// loop's body) runs its loop alone. Each loop is a fresh <see cref="Job"/> whose pieces are claimed with an interlocked
/// counter, so a helper that starts late takes fewer pieces, and one that arrives after the loop ended finds none left.
/// </remarks>
// NOTE: with the thread pool (Parallel.For) every loop woke a sleeping worker; at k = 1 the kernel's context switches and
// yields took about 15 % of the step's samples. Spinning is bounded (0.1 ms after the last loop), so an idle process
// holds no core.
internal static class WorkerPool
{
    /// <summary>How long a helper spins for the next loop before it blocks: 0.1 ms.</summary>
    static readonly long SpinTicks = Stopwatch.Frequency / 10_000;

    sealed class Job(Action<int, int> body, int n, int pieces, int helpers)
    {
        readonly Action<int, int> body = body;
        readonly int n = n, pieces = pieces;
        public readonly int Helpers = helpers;
        public int Joined;
        public int Remaining = pieces;
        public Exception? Error;
        int next;

        /// <summary>Runs pieces until none is left to claim.</summary>
        public void Work()
        {
            int p;
            while ((p = Interlocked.Increment(ref next) - 1) < pieces)
            {
                try
                {
                    body((int)((long)n * p / pieces), (int)((long)n * (p + 1) / pieces));
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref Error, e, null);
                }
                Interlocked.Decrement(ref Remaining);
            }
        }
    }

    static Job? current;
    static int owned;
    static int sleepers;
    static readonly SemaphoreSlim Wake = new(0);
    static readonly object StartGate = new();
    static int started;

    /// <summary>
    /// Runs <paramref name="body"/>(start, end) over [0, n) cut into <paramref name="pieces"/> contiguous pieces, on the
    /// caller and up to <paramref name="workers"/> - 1 helpers; rethrows the first exception a piece threw.
    /// </summary>
    public static void For(int n, int pieces, int workers, Action<int, int> body)
    {
        if (Interlocked.CompareExchange(ref owned, 1, 0) != 0)
        {
            body(0, n);
            return;
        }
        Job job;
        try
        {
            StartHelpers(workers - 1);
            job = new Job(body, n, pieces, workers - 1);
            // NOTE: Exchange is a full fence: the job is visible before `sleepers` is read, and a helper increments
            // `sleepers` before it reads `current`, so one of the two sees the other and no helper sleeps through a job.
            Interlocked.Exchange(ref current, job);
            int asleep = Volatile.Read(ref sleepers);
            if (asleep > 0) Wake.Release(asleep);
            job.Work();
            var spinner = new SpinWait();
            while (Volatile.Read(ref job.Remaining) != 0) spinner.SpinOnce(sleep1Threshold: -1);
            Volatile.Write(ref current, null);
        }
        finally
        {
            Volatile.Write(ref owned, 0);
        }
        if (job.Error is { } error) ExceptionDispatchInfo.Capture(error).Throw();
    }

    static void StartHelpers(int wanted)
    {
        if (Volatile.Read(ref started) >= wanted) return;
        lock (StartGate)
        {
            while (started < wanted)
            {
                new Thread(Helper) { IsBackground = true, Name = $"vae-worker-{started + 1}" }.Start();
                started++;
            }
        }
    }

    static void Helper()
    {
        Job? seen = null;
        long idleSince = Stopwatch.GetTimestamp();
        while (true)
        {
            var job = Volatile.Read(ref current);
            if (job != seen)
            {
                seen = job;
                if (job is not null && Interlocked.Increment(ref job.Joined) <= job.Helpers) job.Work();
                idleSince = Stopwatch.GetTimestamp();
                continue;
            }
            if (Stopwatch.GetTimestamp() - idleSince > SpinTicks)
            {
                Interlocked.Increment(ref sleepers);
                if (Volatile.Read(ref current) == seen) Wake.Wait();
                Interlocked.Decrement(ref sleepers);
                idleSince = Stopwatch.GetTimestamp();
                continue;
            }
            Thread.SpinWait(20);
        }
    }
}
