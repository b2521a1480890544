using System.Globalization;
using VaeResearch.Engine;
using VaeResearch.Experiments;
using VaeResearch.Training;

namespace VaeResearch.Cli.Sweeps;

/// <summary>
/// <c>vae sweep task DIR --index I</c>: one run of a sweep, train-or-resume under the run's lock, then the
/// planned evaluations; what every executor (local workers, Slurm array tasks) runs.
/// </summary>
static class SweepTask
{
    /// <summary>Runs task <paramref name="index"/> of the sweep in <paramref name="dir"/>; returns the process exit code.</summary>
    public static int Run(string dir, int index, int? threads, string? dataDir, ITrainingProgress progress, StopSignal stop)
    {
        var plan = SweepPlan.Load(dir);
        if (index < 0 || index >= plan.Runs.Count)
            throw new VaeResearchException($"--index must be between 0 and {plan.Runs.Count - 1} (the sweep has {plan.Runs.Count} runs), got {index}");
        var run = plan.Runs[index];
        var runDir = SweepStatus.RunDir(dir, run);
        using var runLock = RunLock.TryAcquire(runDir);
        if (runLock is null)
        {
            var holder = RunLock.ReadHolder(runDir);
            Console.WriteLine($"sweep task {index}: {run.Name} is being trained by another process" +
                (holder is null ? "" : $" ({holder.Host}, pid {holder.Pid}{(holder.Job is null ? "" : $", job {holder.Job}")})") + "; skipping it");
            return 0;
        }
        var failed = Path.Combine(runDir, SweepStatus.FailedFile);
        File.Delete(failed);
        if (SweepStatus.IsDone(runDir, run, plan.Eval))
        {
            Console.WriteLine($"sweep task {index}: {run.Name} is done; skipping it");
            return 0;
        }
        try
        {
            int code = TrainAndEvaluate(plan, run, runDir, threads ?? plan.ThreadsPerRun, dataDir, progress, stop);
            if (code == 0) AtomicFile.WriteAllText(Path.Combine(runDir, SweepStatus.DoneFile), SweepStatus.DoneMarker(run, plan.Eval));
            return code;
        }
        catch (Exception e) when (e is VaeResearchException or IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException)
        {
            AtomicFile.WriteAllText(failed, e.Message.ReplaceLineEndings(" ") + "\n");
            throw;
        }
    }

    static int TrainAndEvaluate(SweepPlan plan, PlannedRun run, string runDir, int threads, string? dataDir, ITrainingProgress progress, StopSignal stop)
    {
        Parallelism.Threads = threads;
        var config = run.Config;
        bool resume = File.Exists(Path.Combine(runDir, "config.json"));
        RunFolder folder;
        if (resume)
        {
            folder = RunFolder.Open(runDir);
            var saved = folder.ReadConfig();
            var savedHash = SweepPlan.Hash(saved with { Epochs = config.Epochs });
            if (savedHash != run.Hash)
                throw new VaeResearchException(
                    $"{runDir} holds a run with another configuration (hash {savedHash}) than the plan's " +
                    $"{run.Name} (hash {run.Hash}); it is left as it is: move it away, or use another sweep folder");
            if (folder.ReadThreads() is int savedThreads && savedThreads != threads)
                Console.Error.WriteLine($"sweep task {run.Index}: note: {run.Name} was trained with {savedThreads} threads, now {threads}: not bit-identical to an uninterrupted run");
        }
        else
        {
            folder = RunFolder.Create(runDir);
        }
        if (SweepStatus.CompletedEpochs(runDir) < config.Epochs || !folder.HasCheckpoint)
        {
            var data = Trainer.LoadData(config, dataDir, m => Console.Error.WriteLine(m));
            Console.Error.WriteLine($"sweep task {run.Index}: {run.Name}: {config.Epochs} epochs, {threads} threads");
            var result = Trainer.Run(config, folder, resume && folder.HasCheckpoint, data, progress, stop.Token);
            if (result.Stopped) return StopSignal.ExitCode;
        }
        if (stop.Requested) return StopSignal.ExitCode;

        var common = new List<string> { "--threads", threads.ToString(CultureInfo.InvariantCulture) };
        if (dataDir is not null) common.AddRange(["--data-dir", dataDir]);
        if (plan.Eval.K is int k)
        {
            var args = new List<string> { "eval", runDir, "--k", k.ToString(CultureInfo.InvariantCulture), "--seed", plan.Eval.Seed.ToString(CultureInfo.InvariantCulture) };
            if (plan.Eval.Subset is int subset) args.AddRange(["--subset", subset.ToString(CultureInfo.InvariantCulture)]);
            if (plan.Eval.Binarize is string binarize) args.AddRange(["--binarize", binarize]);
            if (plan.Eval.Budget is string budget) args.AddRange(["--budget", budget]);
            if (Commands.CommandCatalog.Invoke([.. args, .. common]) is int code and not 0)
                throw new VaeResearchException($"vae eval failed on {runDir} (exit code {code})");
        }
        if (plan.Eval.Parzen && Commands.CommandCatalog.Invoke(["parzen", runDir, .. common]) is int parzenCode and not 0)
            throw new VaeResearchException($"vae parzen failed on {runDir} (exit code {parzenCode})");
        return 0;
    }
}
