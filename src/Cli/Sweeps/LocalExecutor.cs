using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using VaeResearch.Experiments;

namespace VaeResearch.Cli.Sweeps;

/// <summary>
/// The local executor: N worker processes, each running <c>vae sweep task DIR --index I</c> for one run at a
/// time (output to <c>DIR/logs/NAME.log</c>), with a live display of runs done / running / pending, the running
/// runs' epochs and an ETA. A stop signal is passed on to the workers, which end their current epoch with a
/// checkpoint; a SIGKILLed sweep leaves only whole files (every run file is written atomically) and a second
/// `sweep run` continues.
/// </summary>
static class LocalExecutor
{
    sealed record Worker(PlannedRun Run, Process Process, StreamWriter Log, DateTime Started);

    /// <summary>Runs <paramref name="todo"/> with <paramref name="workers"/> processes; returns the sweep's exit code.</summary>
    public static int Run(string dir, SweepPlan plan, IReadOnlyList<PlannedRun> todo, int workers, string? dataDir, StopSignal stop)
    {
        var logs = Path.Combine(Path.GetFullPath(dir), "logs");
        Directory.CreateDirectory(logs);
        var queue = new Queue<PlannedRun>(todo);
        var running = new List<Worker>();
        var outcomes = new Dictionary<int, int>();
        var clock = Stopwatch.StartNew();
        bool interactive = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

        void Launch(PlannedRun run)
        {
            var (file, prefix) = SelfCommand();
            var psi = new ProcessStartInfo(file)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in prefix.Concat(["sweep", "task", Path.GetFullPath(dir), "--index", run.Index.ToString(CultureInfo.InvariantCulture)]))
                psi.ArgumentList.Add(a);
            if (dataDir is not null) { psi.ArgumentList.Add("--data-dir"); psi.ArgumentList.Add(dataDir); }
            var log = new StreamWriter(Path.Combine(logs, run.Name + ".log"), append: true) { AutoFlush = true };
            log.WriteLine($"--- {DateTime.Now:u} task {run.Index} ({run.Name}) on {Environment.MachineName}");
            var p = new Process { StartInfo = psi };
            // NOTE: the log is closed only after WaitForExit(), which waits for both output streams to be drained; closing
            // it when the process exits raced with the last lines still in flight (a write to a closed writer crashed the run).
            p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
            p.Start();
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            running.Add(new Worker(run, p, log, DateTime.UtcNow));
            if (!interactive) Console.WriteLine($"started {run.Name} (task {run.Index}, pid {p.Id})");
        }

        bool forwarded = false;
        void Step()
        {
            if (stop.Requested && !forwarded)
            {
                forwarded = true;
                foreach (var w in running) StopSignal.Terminate(w.Process.Id);
            }
            foreach (var w in running.Where(w => w.Process.HasExited).ToList())
            {
                w.Process.WaitForExit();
                lock (w.Log) w.Log.Dispose();
                outcomes[w.Run.Index] = w.Process.ExitCode;
                running.Remove(w);
                if (!interactive) Console.WriteLine($"{Outcome(w.Process.ExitCode)} {w.Run.Name} (exit code {w.Process.ExitCode})");
            }
            while (!stop.Requested && running.Count < workers && queue.Count > 0) Launch(queue.Dequeue());
        }

        if (interactive)
        {
            AnsiConsole.Live(new Text("")).AutoClear(false).Start(ctx =>
            {
                while (true)
                {
                    Step();
                    ctx.UpdateTarget(View(dir, plan, running, queue.Count, outcomes, clock.Elapsed, workers));
                    if (running.Count == 0 && (queue.Count == 0 || stop.Requested)) break;
                    Thread.Sleep(500);
                }
            });
        }
        else
        {
            while (true)
            {
                Step();
                if (running.Count == 0 && (queue.Count == 0 || stop.Requested)) break;
                Thread.Sleep(500);
            }
        }
        int failed = outcomes.Count(o => o.Value is not (0 or StopSignal.ExitCode));
        int stopped = outcomes.Count(o => o.Value == StopSignal.ExitCode) + queue.Count;
        Console.WriteLine($"sweep {plan.Name}: {outcomes.Count(o => o.Value == 0)} finished, {failed} failed, {stopped} stopped or not started " +
            $"in {clock.Elapsed.TotalMinutes:F1} min; logs in {logs}");
        return failed > 0 ? 1 : stop.Requested ? StopSignal.ExitCode : 0;
    }

    static string Outcome(int code) => code switch { 0 => "finished", StopSignal.ExitCode => "stopped", _ => "FAILED" };

    static Table View(string dir, SweepPlan plan, List<Worker> running, int pending, Dictionary<int, int> outcomes, TimeSpan elapsed, int workers)
    {
        int done = outcomes.Count(o => o.Value == 0), failed = outcomes.Count(o => o.Value is not (0 or StopSignal.ExitCode));
        var table = new Table().Title($"sweep {Markup.Escape(plan.Name)}: {done} done, {running.Count} running, {pending} pending, {failed} failed")
            .AddColumn("run").AddColumn("epoch").AddColumn("s/epoch");
        double remainingSeconds = 0;
        foreach (var w in running)
        {
            var runDir = SweepStatus.RunDir(dir, w.Run);
            int epoch = SweepStatus.CompletedEpochs(runDir);
            double perEpoch = epoch > 0 ? (DateTime.UtcNow - w.Started).TotalSeconds / Math.Max(1, epoch) : double.NaN;
            if (double.IsFinite(perEpoch)) remainingSeconds += perEpoch * (w.Run.Config.Epochs - epoch);
            table.AddRow(Markup.Escape(w.Run.Name), $"{epoch}/{w.Run.Config.Epochs}", double.IsFinite(perEpoch) ? perEpoch.ToString("F1", CultureInfo.InvariantCulture) : "-");
        }
        // NOTE: a rough ETA: the running runs' remaining epochs at their own pace, plus the pending runs at the mean pace so far.
        double perRun = outcomes.Count > 0 ? elapsed.TotalSeconds * workers / Math.Max(1, outcomes.Count) : double.NaN;
        double eta = (remainingSeconds + (double.IsFinite(perRun) ? perRun * pending : 0)) / Math.Max(1, workers);
        table.Caption($"elapsed {elapsed:hh\\:mm\\:ss}" + (eta > 0 ? $", ETA {TimeSpan.FromSeconds(eta):hh\\:mm\\:ss}" : ""));
        return table;
    }

    /// <summary>
    /// How to start this same CLI in another process (a worker, a Slurm task): the <c>vae</c> apphost when this
    /// process is it, else <c>dotnet PATH/vae.dll</c> (this process's dotnet, <c>DOTNET_HOST_PATH</c>, or dotnet
    /// on the PATH), which also holds when the CLI's assembly is loaded by another program such as a test runner.
    /// </summary>
    /// <exception cref="VaeResearchException">Neither the apphost nor a dotnet host can be found.</exception>
    public static (string File, string[] Prefix) SelfCommand()
    {
        string dll = typeof(LocalExecutor).Assembly.Location;
        string? process = Environment.ProcessPath;
        string? processName = process is null ? null : Path.GetFileNameWithoutExtension(process);
        if (process is not null && processName == Path.GetFileNameWithoutExtension(dll)) return (process, []);
        string? dotnet = processName is not null && processName.Equals("dotnet", StringComparison.OrdinalIgnoreCase)
            ? process
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : SlurmExecutor.FindOnPath("dotnet");
        if (dotnet is null || dll.Length == 0)
            throw new VaeResearchException("cannot tell how to start vae again: no vae apphost and no dotnet on the PATH");
        return (dotnet, [dll]);
    }
}
