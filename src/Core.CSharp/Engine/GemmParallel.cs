using System.Diagnostics;

namespace VaeResearch.Engine;

/// <summary>
/// Allocation-free fork/join for the managed GEMM: runs the parts of a <see cref="ManagedGemm.Plan"/>
/// on the calling thread plus thread-pool threads.
/// </summary>
/// <remarks>
/// Parts are claimed with an interlocked counter, so the caller never waits for a part that no thread
/// has started: if the pool is busy the caller simply runs every part itself (as Parallel.For does).
/// One job object per calling thread is reused; a job that still has a queued work item in flight
/// (which would otherwise see the next call's state) is replaced instead.
/// </remarks>
internal sealed class GemmJob<TK> : IThreadPoolWorkItem where TK : struct, IGemmKernel
{
    [ThreadStatic] static GemmJob<TK>? cached;

    readonly ManualResetEventSlim done = new(false);
    ManagedGemm.Problem problem;
    ManagedGemm.Plan plan;
    int next;        // next part to claim
    int remaining;   // parts not finished
    int inFlight;    // queued work items that have not finished Execute
    Exception? error;

    /// <summary>Runs the parts of <paramref name="plan"/> and returns when all are done.</summary>
    public static void Run(in ManagedGemm.Problem p, in ManagedGemm.Plan plan)
    {
        var job = cached;
        // NOTE: a job whose queued helper has not finished yet must not be reconfigured under it.
        if (job is null || Volatile.Read(ref job.inFlight) != 0) job = new GemmJob<TK>();
        cached = null;
        job.problem = p;
        job.plan = plan;
        job.ForkJoin();
        cached = job;
    }

    void ForkJoin()
    {
        error = null;
        remaining = plan.Parts;
        done.Reset();
        // NOTE: publishing `next` last (a release write) makes the configuration above visible to a
        // helper before it can claim a part.
        Volatile.Write(ref next, 0);
        for (int i = 1; i < plan.Parts; i++)
        {
            Interlocked.Increment(ref inFlight);
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
        Work();
        WaitForParts();
        if (error is { } e) throw new AggregateException("a managed GEMM worker failed", e);
    }

    /// <summary>Waits until the parts other threads claimed are finished.</summary>
    void WaitForParts()
    {
        // NOTE: parts last microseconds to a few milliseconds. Spinning with yields (never Sleep(1))
        // for up to 0.5 ms avoids the re-scheduling delay of a blocked caller on a busy machine, and
        // the yields hand the core to a helper that the OS preempted; after that, block.
        var spinner = new SpinWait();
        long deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 2000;
        while (Volatile.Read(ref remaining) != 0)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                done.Wait();
                return;
            }
            spinner.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>Thread-pool entry: help with the parts that are still unclaimed.</summary>
    public void Execute()
    {
        Work();
        Interlocked.Decrement(ref inFlight);
    }

    void Work()
    {
        int part;
        while ((part = Interlocked.Increment(ref next) - 1) < plan.Parts)
        {
            try
            {
                ManagedGemm.RunPart<TK>(problem, plan, part);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref error, e, null);
            }
            if (Interlocked.Decrement(ref remaining) == 0) done.Set();
        }
    }
}
