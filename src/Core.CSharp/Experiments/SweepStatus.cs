using System.Text.Json;
using System.Text.Json.Nodes;
using VaeResearch.Training;

namespace VaeResearch.Experiments;

/// <summary>Where a run of a sweep stands.</summary>
public enum RunState
{
    /// <summary>Nothing trained yet.</summary>
    Pending,
    /// <summary>Some epochs trained, not running now (resumable).</summary>
    Partial,
    /// <summary>A live process holds its lock.</summary>
    Running,
    /// <summary>Its lock holder died (or stopped its heartbeat); the next sweep takes it over.</summary>
    Stale,
    /// <summary>Its last task failed (<c>.failed</c> holds the error).</summary>
    Failed,
    /// <summary>Every epoch and the requested evaluations, with the planned configuration.</summary>
    Done,
}

/// <summary>One run's state with what <c>vae sweep status</c> shows about it.</summary>
public sealed record RunStatus(PlannedRun Run, RunState State, int Epoch, int Epochs, string Detail);

/// <summary>
/// The state of a sweep's runs from their folders (nothing but files, so any machine that sees the folder can
/// tell): the lock (<see cref="RunLock"/>), the epochs in metrics.csv, the <c>.failed</c> marker a failed task
/// leaves, and the <c>.done.json</c> marker a task writes once training and the evaluations are complete.
/// </summary>
public static class SweepStatus
{
    /// <summary>The marker of a failed task (its first line: the error).</summary>
    public const string FailedFile = ".failed";

    /// <summary>The marker of a finished task: the configuration hash and the evaluations it completed.</summary>
    public const string DoneFile = ".done.json";

    /// <summary>The folder of a planned run.</summary>
    public static string RunDir(string sweepDir, PlannedRun run) => Path.Combine(Path.GetFullPath(sweepDir), run.Folder);

    /// <summary>The done marker's contents for a run and evaluation plan.</summary>
    public static string DoneMarker(PlannedRun run, EvalPlan eval) =>
        new JsonObject { ["hash"] = run.Hash, ["epochs"] = run.Config.Epochs, ["eval"] = JsonSerializer.SerializeToNode(eval, RunFolder.Json) }
            .ToJsonString() + "\n";

    /// <summary>Whether the run's done marker matches the plan (same configuration, same evaluations).</summary>
    public static bool IsDone(string runDir, PlannedRun run, EvalPlan eval)
    {
        var path = Path.Combine(runDir, DoneFile);
        return File.Exists(path) && File.ReadAllText(path) == DoneMarker(run, eval);
    }

    /// <summary>Completed epochs according to metrics.csv (0 when there is none or it cannot be read).</summary>
    public static int CompletedEpochs(string runDir)
    {
        var metrics = Path.Combine(runDir, "metrics.csv");
        if (!File.Exists(metrics)) return 0;
        try
        {
            return RunCsv.ReadMetrics(metrics).Select(r => r.Epoch).DefaultIfEmpty(0).Max();
        }
        catch (VaeResearchException)
        {
            return 0;
        }
    }

    /// <summary>The state of one run.</summary>
    public static RunStatus Of(string sweepDir, PlannedRun run, EvalPlan eval)
    {
        var dir = RunDir(sweepDir, run);
        int epochs = run.Config.Epochs;
        int epoch = CompletedEpochs(dir);
        var holder = RunLock.ReadHolder(dir);
        if (RunLock.IsHeld(dir))
        {
            var who = holder is null ? "" : holder.Job is null ? $"{holder.Host}, pid {holder.Pid}" : $"{holder.Host}, job {holder.Job}";
            if (holder is not null && DateTime.UtcNow - holder.Heartbeat > RunLock.StaleAfter)
                return new RunStatus(run, RunState.Stale, epoch, epochs, $"lock held but no heartbeat since {holder.Heartbeat:u} ({who})");
            return new RunStatus(run, RunState.Running, epoch, epochs, who);
        }
        if (holder is not null)
            return new RunStatus(run, RunState.Stale, epoch, epochs,
                $"its holder ({holder.Host}, {(holder.Job is null ? $"pid {holder.Pid}" : $"job {holder.Job}")}) died; the next sweep resumes it");
        var failed = Path.Combine(dir, FailedFile);
        if (File.Exists(failed))
            return new RunStatus(run, RunState.Failed, epoch, epochs, File.ReadLines(failed).FirstOrDefault() ?? "");
        if (IsDone(dir, run, eval)) return new RunStatus(run, RunState.Done, epoch, epochs, "");
        return epoch == 0
            ? new RunStatus(run, RunState.Pending, 0, epochs, "")
            : new RunStatus(run, RunState.Partial, epoch, epochs, epoch >= epochs ? "trained; evaluations pending" : "");
    }

    /// <summary>The state of every run of a plan.</summary>
    public static IReadOnlyList<RunStatus> Of(string sweepDir, SweepPlan plan) => plan.Runs.Select(r => Of(sweepDir, r, plan.Eval)).ToList();
}
