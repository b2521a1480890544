using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeResearch.Cli.Sweeps;
using VaeResearch.Experiments;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae sweep run|task|status|table</c>: declarative grids of runs, locally or on Slurm.</summary>
static class SweepCommand
{
    public static Command Create()
    {
        var command = new Command("sweep",
            "Sweeps: a TOML spec expands into runs (DIR/sweep.json, one folder per run under DIR/runs/), run locally or on Slurm; " +
            "finished runs are skipped, partial ones resumed, every run trained under an exclusive lock.");
        command.Subcommands.Add(RunCommand());
        command.Subcommands.Add(TaskCommand());
        command.Subcommands.Add(StatusCommand());
        command.Subcommands.Add(TableCommand());
        command.Subcommands.Add(FiguresCommand());
        return command;
    }

    static Argument<DirectoryInfo> SweepDir() => new("DIR") { Description = "The sweep folder (holds sweep.json)." };

    static Command RunCommand()
    {
        var spec = new Argument<FileInfo>("SPEC") { Description = "The sweep spec (TOML)." };
        var outDir = new Option<DirectoryInfo>("--out") { Description = "The sweep folder.", Required = true };
        var executor = Choice("--executor", "Where the runs train: local worker processes, or a Slurm job array.", "local", "local", "slurm");
        var threadsPerRun = Value("--threads-per-run", "Threads each run trains with (recorded; bit-identical resume needs the same value).", 1);
        var workers = Optional<int>("--workers", "Runs at a time (default: cores / threads-per-run; on Slurm the array's %M throttle).");
        var wait = new Option<bool>("--wait") { Description = "Slurm: poll until the array finishes; exit non-zero if a run failed." };
        var dryRun = new Option<bool>("--dry-run")
        {
            Description = "Print the plan, what would be skipped, resumed or started, and the compute each run still needs: its " +
                "multiply-adds counted from the configuration (training, the eVAE's and mVAE's assignment pass, the per-epoch and final " +
                "evaluations) in core-hours at --rate; run nothing.",
        };
        var rate = Value("--rate", "Billions of multiply-adds per second per core that --dry-run's hours assume: take it from `vae sweep " +
            "status` of runs trained on the same machine. The default is about what the eVAE paper's Table 2 runs reached here, one " +
            "thread each and two or more runs on a 2-core AVX-512 machine (25-39).", 35.0);
        var retryFailed = new Option<bool>("--retry-failed") { Description = "Run failed runs again (by default they are left for you to look at)." };
        var only = IntList("--only", "Train only these runs, by their index in the plan (comma-separated; --dry-run lists the indices): " +
            "to choose which runs go first. sweep.json still holds the whole plan.", []);
        var dataDir = CliOptions.DataDirectory();
        var command = new Command("run",
            "Expand SPEC into DIR/sweep.json and train every run that is not done: done runs are skipped, partial and stale ones " +
            "resumed, new ones started. A run folder whose configuration differs from the plan is refused, never overwritten.")
        {
            spec, outDir, executor, threadsPerRun, workers, wait, dryRun, rate, retryFailed, only, dataDir,
        };
        command.SetAction(parse => CliRunner.Run("sweep run", () =>
        {
            int threads = parse.GetValue(threadsPerRun);
            if (threads < 1) throw new ConfigException("threads_per_run", $"must be >= 1, got {threads}");
            int workerCount = parse.GetValue(workers) ?? Math.Max(1, Environment.ProcessorCount / threads);
            if (workerCount < 1) throw new ConfigException("workers", $"must be >= 1, got {workerCount}");
            double perCore = parse.GetValue(rate) * 1e9;
            if (parse.GetValue(dryRun) && !(perCore > 0)) throw new ConfigException("rate", $"must be > 0, got {parse.GetValue(rate)}");
            var dir = parse.GetValue(outDir)!.FullName;
            var plan = SweepPlan.Expand(SweepSpec.Load(parse.GetValue(spec)!.FullName), threads);
            CheckFolders(dir, plan);
            var chosen = parse.GetValue(only)!;
            foreach (int index in chosen)
                if (index < 0 || index >= plan.Runs.Count)
                    throw new VaeResearchException($"--only {index}: {plan.Name} has runs 0 to {plan.Runs.Count - 1} (--dry-run lists them); nothing was run");
            var statuses = SweepStatus.Of(dir, plan).Where(s => chosen.Length == 0 || chosen.Contains(s.Run.Index)).ToList();
            bool retry = parse.GetValue(retryFailed);
            var todo = statuses.Where(s => s.State is RunState.Pending or RunState.Partial or RunState.Stale
                || (retry && s.State == RunState.Failed)).Select(s => s.Run).ToList();
            Console.WriteLine($"sweep {plan.Name}: {plan.Runs.Count} runs{(chosen.Length > 0 ? $" ({statuses.Count} chosen by --only)" : "")}, {statuses.Count(s => s.State == RunState.Done)} done, {todo.Count} to run " +
                $"({statuses.Count(s => s.State == RunState.Pending)} new, {statuses.Count(s => s.State is RunState.Partial or RunState.Stale)} to resume" +
                $"{(retry ? $", {statuses.Count(s => s.State == RunState.Failed)} to retry" : "")}), {statuses.Count(s => s.State == RunState.Running)} running elsewhere" +
                $"{(!retry && statuses.Any(s => s.State == RunState.Failed) ? $", {statuses.Count(s => s.State == RunState.Failed)} failed (--retry-failed runs them again)" : "")}");
            if (parse.GetValue(dryRun))
            {
                // What every run still to train needs, here or elsewhere (a running run's epochs after the last in its metrics.csv).
                var remaining = statuses.Select(s => s.State == RunState.Done || (s.State == RunState.Failed && !retry) ? 0 : ToGo(plan, s)).ToList();
                foreach (var (s, cost) in statuses.Zip(remaining))
                    Console.WriteLine($"  {PlannedAction(s, retry),-8} {s.Run.Index,4}  {(cost is double c ? $"{c / perCore / 3600:0.0}" : "?"),7} h  {s.Run.Name}  " +
                        $"[{s.Run.Hash}]{(s.Detail.Length > 0 ? "  " + s.Detail : "")}");
                double total = remaining.Sum(c => c ?? 0);
                int unknown = remaining.Count(c => c is null);
                Console.WriteLine($"compute still needed: {total / perCore / 3600:0.0} core-hours, {total / 1e12:0} T multiply-adds at " +
                    $"{perCore / 1e9:0.#} G/s per core (--rate)" +
                    (unknown > 0 ? $"; not counted: {unknown} of the runs (?), whose model cannot be built (vae train says why)" : ""));
                return 0;
            }
            plan.Save(dir);
            if (todo.Count == 0) return 0;
            using var stop = new StopSignal(signal => Console.Error.WriteLine($"sweep run: {signal}: stopping every worker at the end of its epoch"));
            return parse.GetValue(executor) == "slurm"
                ? SlurmRun(dir, plan, todo, workerCount, parse.GetValue(wait))
                : LocalExecutor.Run(dir, plan, todo, workerCount, parse.GetValue(dataDir), stop);
        }));
        return command;
    }

    /// <summary>
    /// The multiply-adds <paramref name="s"/> still needs: its epochs after the last one in metrics.csv, then the sweep's
    /// evaluation; null when its model cannot be built (an mVAE whose widths match no eVAE).
    /// </summary>
    static double? ToGo(SweepPlan plan, RunStatus s)
    {
        try
        {
            return RunCost.Of(s.Run.Config, plan.Eval.K, ParseEnum<EvaluationBudget>(plan.Eval.Budget ?? "per_epitome"), plan.Eval.Subset, s.Epoch).Total;
        }
        catch (VaeResearchException)
        {
            return null;
        }
    }

    static string PlannedAction(RunStatus s, bool retry) => s.State switch
    {
        RunState.Done => "skip",
        RunState.Pending => "start",
        RunState.Partial or RunState.Stale => "resume",
        RunState.Failed => retry ? "retry" : "failed",
        _ => "running",
    };

    /// <summary>Refuses, before anything runs, a plan that would reuse a run folder trained with another configuration.</summary>
    static void CheckFolders(string dir, SweepPlan plan)
    {
        foreach (var run in plan.Runs)
        {
            var config = Path.Combine(SweepStatus.RunDir(dir, run), "config.json");
            if (!File.Exists(config)) continue;
            var saved = RunFolder.Open(Path.GetDirectoryName(config)!).ReadConfig();
            var hash = SweepPlan.Hash(saved with { Epochs = run.Config.Epochs });
            if (hash != run.Hash)
                throw new VaeResearchException(
                    $"{Path.GetDirectoryName(config)} was trained with another configuration (hash {hash}) than the spec now gives {run.Name} " +
                    $"(hash {run.Hash}); nothing was run. Use another --out, or move that folder away");
        }
    }

    static int SlurmRun(string dir, SweepPlan plan, IReadOnlyList<PlannedRun> todo, int workers, bool wait)
    {
        var settings = new SlurmExecutor.SlurmSettings(
            (int?)plan.Slurm["cpus_per_task"] ?? plan.ThreadsPerRun,
            (string?)plan.Slurm["time"],
            plan.Slurm["extra"]?.AsArray().Select(n => (string)n!).ToList() ?? []);
        var jobs = SlurmExecutor.Submit(Path.GetFullPath(dir), todo.Select(r => r.Index).ToList(), workers, settings, SlurmExecutor.CurrentCliCommand());
        Console.WriteLine($"submitted {todo.Count} runs as Slurm job {string.Join(", ", jobs)} (logs in {Path.Combine(Path.GetFullPath(dir), "slurm")})");
        if (!wait) return 0;
        bool ok = SlurmExecutor.Wait(Path.GetFullPath(dir), jobs, TimeSpan.FromSeconds(5), line => Console.Error.WriteLine(line));
        var statuses = SweepStatus.Of(dir, plan);
        Console.WriteLine($"Slurm job {string.Join(", ", jobs)} finished: {statuses.Count(s => s.State == RunState.Done)} of {plan.Runs.Count} runs done");
        return ok && statuses.All(s => s.State == RunState.Done) ? 0 : 1;
    }

    static Command TaskCommand()
    {
        var dir = SweepDir();
        var index = new Option<int>("--index") { Description = "The run's index in sweep.json.", Required = true };
        var threads = CliOptions.Threads("Threads (default: the sweep's threads per run).");
        var dataDir = CliOptions.DataDirectory();
        var command = new Command("task",
            "Train-or-resume one run of a sweep under its lock, then its evaluations (what local workers and Slurm array tasks run). " +
            "A run another process holds is skipped; SIGTERM stops at the end of the epoch with exit code 75 (resumable).")
        {
            dir, index, threads, dataDir,
        };
        command.SetAction(parse => CliRunner.Run("sweep task", () =>
        {
            using var stop = new StopSignal(signal => Console.Error.WriteLine($"sweep task: {signal}: stopping at the end of the epoch"));
            return TrainingProgress.Run(progress =>
                SweepTask.Run(parse.GetValue(dir)!.FullName, parse.GetValue(index), parse.GetValue(threads), parse.GetValue(dataDir), progress, stop));
        }));
        return command;
    }

    static Command StatusCommand()
    {
        var dir = SweepDir();
        var json = new Option<bool>("--json")
        {
            Description = "One JSON object per run (state, epoch, epochs, detail, multiply_adds_per_second_per_core, hours_to_go) and the totals.",
        };
        var command = new Command("status", "One line per run (done, running, partial, stale, failed, pending) and the totals; exit code 0 when all are done. " +
            "A run with trained epochs also shows the multiply-adds per second and core they reached (their count, as --dry-run makes it, " +
            "over the seconds metrics.csv records and the run's threads: the --rate of sweep run --dry-run on this machine), and an " +
            "unfinished one the hours its remaining epochs and evaluation take at that rate.")
        {
            dir, json,
        };
        command.SetAction(parse => CliRunner.Run("sweep status", () =>
        {
            var path = parse.GetValue(dir)!.FullName;
            var plan = SweepPlan.Load(path);
            var statuses = SweepStatus.Of(path, plan);
            var totals = Enum.GetValues<RunState>().ToDictionary(s => Name(s), s => statuses.Count(x => x.State == s));
            var rates = statuses.ToDictionary(s => s.Run.Index, s => s.Epoch > 0 ? RateOf(SweepStatus.RunDir(path, s.Run), s.Run.Config, plan.ThreadsPerRun) : null);
            // An unfinished run with timed epochs: the hours its remaining count takes at the rate it has reached.
            double? HoursToGo(RunStatus s) =>
                s.State is RunState.Running or RunState.Partial or RunState.Stale && rates[s.Run.Index] is { } rate && ToGo(plan, s) is double cost
                    ? cost / (rate.PerCore * rate.Threads) / 3600
                    : null;
            if (parse.GetValue(json))
            {
                var result = new JsonObject
                {
                    ["name"] = plan.Name,
                    ["runs"] = new JsonArray([.. statuses.Select(s => (JsonNode)new JsonObject
                    {
                        ["index"] = s.Run.Index, ["name"] = s.Run.Name, ["state"] = Name(s.State),
                        ["epoch"] = s.Epoch, ["epochs"] = s.Epochs, ["detail"] = s.Detail, ["multiply_adds_per_second_per_core"] = rates[s.Run.Index]?.PerCore,
                        ["hours_to_go"] = HoursToGo(s),
                    })]),
                    ["totals"] = JsonSerializer.SerializeToNode(totals),
                };
                Console.WriteLine(result.ToJsonString(RunFolder.Json));
            }
            else
            {
                foreach (var s in statuses)
                {
                    var epochs = s.State is RunState.Running or RunState.Partial or RunState.Stale or RunState.Failed ? $" epoch {s.Epoch} of {s.Epochs}" : "";
                    // NOTE: the extras follow the name after two spaces: scripts/campaign.sh reads "done NAME" up to a space.
                    var rate = rates[s.Run.Index] is { } r ? $"  {r.PerCore / 1e9:0.0} G multiply-adds/s per core" : "";
                    var toGo = HoursToGo(s) is double h ? $", {h:0.0} h to go" : "";
                    Console.WriteLine($"{Name(s.State),-8} {s.Run.Name}{epochs}{rate}{toGo}{(s.Detail.Length > 0 ? " (" + s.Detail + ")" : "")}");
                }
                Console.WriteLine(string.Join(", ", totals.Where(t => t.Value > 0).Select(t => $"{t.Value} {t.Key}")) + $" of {statuses.Count} runs");
            }
            return statuses.All(s => s.State == RunState.Done) ? 0 : 1;
        }));
        return command;
    }

    static string Name(RunState state) => state.ToString().ToLowerInvariant();

    /// <summary>
    /// The multiply-adds per core and second a run's timed epochs reached, and the threads it trained on (config.json's,
    /// else the sweep's); null where its files cannot be read.
    /// </summary>
    static (double PerCore, int Threads)? RateOf(string runDir, TrainConfig config, int sweepThreads)
    {
        try
        {
            var run = RunFolder.Open(runDir);
            int threads = run.ReadThreads() ?? sweepThreads;
            return RunCost.Rate(config, RunCsv.ReadMetrics(run.MetricsPath), threads) is double perCore ? (perCore, threads) : null;
        }
        catch (Exception e) when (e is VaeResearchException or IOException or JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    static Command FiguresCommand()
    {
        var dir = SweepDir();
        var outDir = new Option<DirectoryInfo?>("--out") { Description = "Folder for the SVG figures and figures.md (default DIR/figures)." };
        var command = new Command("figures",
            "The sweep's figures from its finished runs, as SVG in the papers' layouts: active units per epoch of every run, each run's " +
            "activity shade plot and units sorted by activity with their KL, and the table's value against its innermost numeric row " +
            "key (e.g. Parzen against epitome size), one panel per column; figures.md links them with captions and lists the runs left out.")
        {
            dir, outDir,
        };
        command.SetAction(parse => CliRunner.Run("sweep figures", () =>
        {
            var path = parse.GetValue(dir)!.FullName;
            var target = parse.GetValue(outDir)?.FullName is { } o ? Microsoft.FSharp.Core.FSharpOption<string>.Some(o) : null;
            var figures = Analysis.SweepFigures.write(path, target);
            var folder = target?.Value ?? Path.Combine(path, "figures");
            foreach (var figure in figures) Console.WriteLine(Path.Combine(folder, figure.File));
            Console.Error.WriteLine($"wrote {figures.Length} figures and {Path.Combine(folder, Analysis.SweepFigures.IndexFile)}");
            return 0;
        }));
        return command;
    }

    static Command TableCommand()
    {
        var dir = SweepDir();
        var outFile = new Option<FileInfo?>("--out")
        {
            Description = "Markdown file (default DIR/table.md, or with --value, --annotate or --threshold a name that says what " +
                "changed, e.g. DIR/table-test_bound.md); the CSV goes beside it.",
        };
        var quantities = Analysis.SweepTableModule.quantities;
        var value = new Option<string?>("--value")
        {
            Description = $"Show this instead of the spec's value: {quantities}. The published values are left out unless it is the spec's value.",
        };
        var annotate = new Option<string?>("--annotate") { Description = $"Show this in parentheses instead of the spec's annotation: none or {quantities}." };
        var threshold = new Option<double?>("--threshold") { Description = "Count a unit as active above this A_u instead of the spec's threshold." };
        var command = new Command("table",
            "The spec's table from the saved runs: rows x columns, cells \"value (annotation)\", mean ± sd over seeds, the published " +
            "value and ours − published; broken or unfinished runs are listed under it as skipped. --value, --annotate and --threshold " +
            "show the same runs another way (e.g. the test bound, or active units at 0.1).")
        {
            dir, outFile, value, annotate, threshold,
        };
        command.SetAction(parse => CliRunner.Run("sweep table", () =>
        {
            var path = parse.GetValue(dir)!.FullName;
            var overrides = Analysis.SweepTableOverrides.OfOptions(parse.GetValue(value), parse.GetValue(annotate), parse.GetValue(threshold));
            var (md, csv) = Analysis.SweepTableModule.write(
                path, parse.GetValue(outFile)?.FullName is { } f ? Microsoft.FSharp.Core.FSharpOption<string>.Some(f) : null, overrides);
            Console.WriteLine(File.ReadAllText(md));
            Console.Error.WriteLine($"wrote {md} and {csv}");
            return 0;
        }));
        return command;
    }
}
