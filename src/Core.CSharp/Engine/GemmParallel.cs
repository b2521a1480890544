using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace VaeResearch.Engine;

/// <summary>
/// Allocation-free fork/join for the managed GEMM: runs the parts of a <see cref="ManagedGemm.Plan"/>
/// on the calling thread plus thread-pool threads.
/// </summary>
/// <remarks>
/// Parts are claimed with an interlocked counter, so the caller never waits for a part that no thread
/// has started: if the pool is busy the caller simply runs every part itself (as Parallel.For does).
/// One job object (with its shared packing buffer) per calling thread is reused; a job that still has
/// a queued work item in flight (which would otherwise see the next call's state) is replaced instead.
/// </remarks>
internal sealed unsafe class GemmJob<TK> : IThreadPoolWorkItem where TK : struct, IGemmKernel
{
    [ThreadStatic] static GemmJob<TK>? cached;

    enum Phase { Split, Pack, Compute }

    readonly ManualResetEventSlim done = new(false);
    ManagedGemm.Problem problem;
    ManagedGemm.Plan plan;
    Phase phase;
    float* shared;
    float[]? sharedArray;
    int next;        // next part to claim
    int remaining;   // parts not finished
    int inFlight;    // queued work items that have not finished Execute
    Exception? error;

    /// <summary>Runs <paramref name="p"/> as planned (Workers &gt; 1) and returns when every part is done.</summary>
    public static void Run(in ManagedGemm.Problem p, in ManagedGemm.Plan plan)
    {
        var job = cached;
        // NOTE: a job whose queued helper has not finished yet must not be reconfigured under it.
        if (job is null || Volatile.Read(ref job.inFlight) != 0) job = new GemmJob<TK>();
        cached = null;
        job.problem = p;
        job.plan = plan;
        if (plan.Shared)
        {
            job.shared = job.SharedBuffer(ManagedGemm.SharedFloats<TK>(plan));
            job.ForkJoin(Phase.Pack);
            job.ForkJoin(Phase.Compute);
        }
        else
        {
            job.ForkJoin(Phase.Split);
        }
        cached = job;
    }

    float* SharedBuffer(long floats)
    {
        const int Slack = 16;
        if (sharedArray is null || sharedArray.Length < floats + Slack)
        {
            // NOTE: pinned so the pointer stays valid across calls; 64-byte aligned below.
            sharedArray = GC.AllocateUninitializedArray<float>((int)(floats + Slack), pinned: true);
        }
        nint start = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(sharedArray));
        return (float*)((start + 63) & ~(nint)63);
    }

    void ForkJoin(Phase what)
    {
        phase = what;
        error = null;
        remaining = plan.Workers;
        done.Reset();
        // NOTE: publishing `next` last (a release write) makes the configuration above visible to a
        // helper before it can claim a part.
        Volatile.Write(ref next, 0);
        for (int i = 1; i < plan.Workers; i++)
        {
            Interlocked.Increment(ref inFlight);
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
        Work();
        done.Wait();
        if (error is { } e) throw new AggregateException("a managed GEMM worker failed", e);
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
        while ((part = Interlocked.Increment(ref next) - 1) < plan.Workers)
        {
            try
            {
                switch (phase)
                {
                    case Phase.Pack: ManagedGemm.PackShared<TK>(problem, plan, part, shared); break;
                    case Phase.Compute: ManagedGemm.ComputeShared<TK>(problem, plan, part, shared); break;
                    default: ManagedGemm.RunPart<TK>(problem, plan, part); break;
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref error, e, null);
            }
            if (Interlocked.Decrement(ref remaining) == 0) done.Set();
        }
    }
}
