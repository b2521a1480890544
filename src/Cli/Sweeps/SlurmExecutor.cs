using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace VaeResearch.Cli.Sweeps;

/// <summary>
/// Runs a sweep's pending runs as Slurm job arrays: one array task per run, throttled to the number of workers,
/// requeue-safe, with per-task logs and exit files in <c>DIR/slurm/</c>.
/// </summary>
/// <remarks>
/// <para>
/// Every array task runs <c>vae sweep task DIR --index I</c>. The run index <c>I</c> comes from a lookup table written
/// into the script (<c>RUNS=(3 7 8 ...)</c>, indexed by <c>SLURM_ARRAY_TASK_ID</c>), so a Slurm id never stands for a
/// run by itself: the run is named by its index in <c>sweep.json</c>.
/// </para>
/// <para>
/// Signals. The script asks Slurm for <c>--signal=B:USR1@120</c>: 120 seconds before the time limit, the batch shell
/// gets SIGUSR1. The script does not <c>exec</c> the task: it runs it as a child, forwards SIGUSR1, SIGTERM and SIGINT
/// to it as SIGTERM (the trainer's "stop at the end of this epoch with a checkpoint"), waits for it, writes its exit
/// code to <c>DIR/slurm/JOBID_TASK.exit</c>, and after a SIGUSR1 (time limit near) requeues its own task
/// (<c>scontrol requeue JOBID_TASK</c>) so the run resumes from its checkpoint in a fresh allocation. A SIGTERM
/// (<c>scancel</c>, pre-emption, <c>scontrol requeue</c>) is only forwarded: Slurm itself decides whether the task
/// comes back, and a cancelled sweep stays cancelled. Keeping the shell alive is what makes the exit file possible,
/// which is how <see cref="Wait"/> tells success from failure without Slurm accounting.
/// </para>
/// </remarks>
public static class SlurmExecutor
{
    /// <summary>How a sweep's array tasks are sized on Slurm.</summary>
    /// <param name="CpusPerTask">CPUs per array task (<c>--cpus-per-task</c>); the task trains with as many threads.</param>
    /// <param name="Time">The time limit per task (<c>--time</c>, Slurm syntax such as <c>04:00:00</c>), or null for the partition's.</param>
    /// <param name="Extra">Further sbatch options, one per line (<c>--partition=cpu</c>), written as <c>#SBATCH</c> lines.</param>
    public sealed record SlurmSettings(int CpusPerTask, string? Time, IReadOnlyList<string> Extra);

    /// <summary>A finished command: its exit code and everything it wrote.</summary>
    /// <param name="ExitCode">The exit code.</param>
    /// <param name="Stdout">Its standard output.</param>
    /// <param name="Stderr">Its standard error.</param>
    public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr);

    /// <summary>One array of a submission: the pending runs <c>[Offset, Offset + Count)</c>.</summary>
    /// <param name="Offset">The position of the array's first run in the pending list.</param>
    /// <param name="Count">How many runs (array tasks) it has.</param>
    public sealed record ArrayPart(int Offset, int Count);

    /// <summary>Slurm's MaxArraySize when <c>scontrol show config</c> does not name one (Slurm's own default).</summary>
    public const int DefaultMaxArraySize = 1001;

    /// <summary>How many seconds before the time limit the batch shell gets SIGUSR1 (<c>--signal=B:USR1@120</c>).</summary>
    public const int SignalLeadSeconds = 120;

    /// <summary>The file, in <c>DIR/slurm/</c>, that lists every submitted array: job id, script, run indices.</summary>
    public const string JobsFileName = "jobs.tsv";

    /// <summary>The exit code of <c>vae sweep task</c> stopped by SIGTERM with a checkpoint (EX_TEMPFAIL: resumable); reported as such by <see cref="Wait"/>.</summary>
    const string StoppedExitCode = "75";

    static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The folder of a sweep's Slurm scripts, logs and exit files: <c>DIR/slurm</c>.</summary>
    /// <param name="sweepDir">The sweep folder.</param>
    public static string SlurmFolder(string sweepDir) => Path.Combine(Path.GetFullPath(sweepDir), "slurm");

    /// <summary>The script name of array <paramref name="part"/> of a submission: <c>array.sbatch</c>, then <c>array-1.sbatch</c>, ...</summary>
    /// <param name="part">The array's position in the submission, from 0.</param>
    public static string ScriptName(int part) => part == 0 ? "array.sbatch" : $"array-{part}.sbatch";

    /// <summary>
    /// Splits <paramref name="pending"/> runs into arrays of at most <paramref name="maxArraySize"/> tasks (Slurm
    /// accepts array indices 0 to MaxArraySize - 1), in order.
    /// </summary>
    /// <param name="pending">How many runs to submit.</param>
    /// <param name="maxArraySize">The cluster's MaxArraySize.</param>
    public static IReadOnlyList<ArrayPart> Split(int pending, int maxArraySize)
    {
        if (pending < 0) throw new ArgumentOutOfRangeException(nameof(pending), pending, "must be >= 0");
        if (maxArraySize < 1) throw new ArgumentOutOfRangeException(nameof(maxArraySize), maxArraySize, "must be >= 1");
        var parts = new List<ArrayPart>();
        for (int offset = 0; offset < pending; offset += maxArraySize)
            parts.Add(new ArrayPart(offset, Math.Min(maxArraySize, pending - offset)));
        return parts;
    }

    /// <summary>
    /// The sbatch script for one array covering <c>runIndices[offset .. offset + count - 1]</c>: array task <c>i</c>
    /// runs <c>taskCommand sweep task DIR --index runIndices[offset + i] --threads CpusPerTask</c>.
    /// </summary>
    /// <param name="sweepDir">The sweep folder (made absolute; it may not contain whitespace or <c>%</c>, which sbatch reads as log-name patterns).</param>
    /// <param name="runIndices">The pending runs' indices in <c>sweep.json</c>.</param>
    /// <param name="offset">The position of this array's first run in <paramref name="runIndices"/>.</param>
    /// <param name="count">How many runs this array covers.</param>
    /// <param name="throttle">At most this many tasks of the array run at once (<c>%throttle</c>).</param>
    /// <param name="s">CPUs, time limit and extra sbatch options.</param>
    /// <param name="taskCommand">How to start the CLI, as a shell fragment written verbatim (e.g. <c>/usr/bin/dotnet /opt/vae/vae.dll</c>; quote paths with <see cref="ShellQuote"/>).</param>
    /// <exception cref="VaeResearchException">The folder, time or an extra option cannot be written into an sbatch script.</exception>
    public static string RenderArray(string sweepDir, IReadOnlyList<int> runIndices, int offset, int count, int throttle,
        SlurmSettings s, string taskCommand)
    {
        ArgumentNullException.ThrowIfNull(runIndices);
        ArgumentNullException.ThrowIfNull(s);
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "must be >= 1");
        if (offset < 0 || offset + count > runIndices.Count)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"runs {offset}..{offset + count - 1} are not all in a list of {runIndices.Count}");
        if (throttle < 1) throw new VaeResearchException($"--workers must be >= 1, got {throttle}");
        if (s.CpusPerTask < 1) throw new VaeResearchException($"--cpus-per-task must be >= 1, got {s.CpusPerTask}");
        if (string.IsNullOrWhiteSpace(taskCommand)) throw new ArgumentException("the task command is empty", nameof(taskCommand));
        string dir = CheckedSweepDir(sweepDir);
        string slurmDir = Path.Combine(dir, "slurm");

        var text = new StringBuilder();
        void Line(string line) => text.Append(line).Append('\n');
        Line("#!/bin/bash");
        Line($"#SBATCH --job-name={JobName(dir)}");
        Line($"#SBATCH --array=0-{count - 1}%{throttle}");
        Line($"#SBATCH --cpus-per-task={s.CpusPerTask}");
        if (s.Time is { } time)
        {
            if (time.Length == 0 || time.Any(char.IsWhiteSpace))
                throw new VaeResearchException($"--time must be a Slurm time limit such as 04:00:00, got '{time}'");
            Line($"#SBATCH --time={time}");
        }
        Line("#SBATCH --requeue");
        Line($"#SBATCH --signal=B:USR1@{SignalLeadSeconds}");
        Line($"#SBATCH --output={slurmDir}/%A_%a.log");
        Line("#SBATCH --open-mode=append");
        foreach (string raw in s.Extra)
        {
            string extra = raw.Trim();
            if (extra.Length == 0) continue;
            if (extra.Contains('\n') || extra.Contains('\r'))
                throw new VaeResearchException($"a Slurm option must be one line, got '{raw}'");
            Line(extra.StartsWith("#SBATCH", StringComparison.Ordinal) ? extra : "#SBATCH " + extra);
        }
        Line("");
        Line("# Written by `vae sweep run --executor slurm`. Array task i trains run RUNS[i] of sweep.json.");
        Line("# USR1 (time limit near) or TERM (scancel, pre-emption, requeue) reaches the task as SIGTERM: it stops at");
        Line("# the end of its epoch with a checkpoint. After USR1 the task requeues itself and resumes the run.");
        Line("set -u");
        Line("RUNS=(" + string.Join(' ', Enumerable.Range(offset, count).Select(k => runIndices[k].ToString(CultureInfo.InvariantCulture))) + ")");
        Line("I=${RUNS[$SLURM_ARRAY_TASK_ID]}");
        Line("TASK=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}");
        Line($"EXIT_FILE={ShellQuote(slurmDir)}/$TASK.exit");
        Line("rm -f \"$EXIT_FILE\"");
        Line("echo \"vae sweep: run $I as task $TASK (job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)\"");
        Line("child=''");
        Line("trapped=0");
        Line("requeue=0");
        Line("stop_child() { trapped=1; if [ -n \"$child\" ]; then kill -TERM \"$child\" 2>/dev/null; fi; }");
        Line("trap 'requeue=1; stop_child' USR1");
        Line("trap 'stop_child' TERM INT");
        Line($"{taskCommand} sweep task {ShellQuote(dir)} --index \"$I\" --threads {s.CpusPerTask} &");
        Line("child=$!");
        Line("# A trapped signal cuts `wait` short (status > 128); wait again for the task's own status. A second wait");
        Line("# for a status already reported answers 127: then the first answer stands.");
        Line("rc=''");
        Line("while :; do");
        Line("  trapped=0");
        Line("  wait \"$child\"; status=$?");
        Line("  if [ \"$status\" -eq 127 ] && [ -n \"$rc\" ]; then break; fi");
        Line("  rc=$status");
        Line("  [ \"$trapped\" = 1 ] || break");
        Line("done");
        Line("echo \"$rc\" > \"$EXIT_FILE.tmp\" && mv -f \"$EXIT_FILE.tmp\" \"$EXIT_FILE\"");
        Line("echo \"vae sweep: run $I exited with $rc at $(date -u +%Y-%m-%dT%H:%M:%SZ)\"");
        Line("if [ \"$requeue\" = 1 ]; then");
        Line("  echo \"vae sweep: time limit near, requeueing $TASK\"");
        Line("  scontrol requeue \"$TASK\" || echo \"vae sweep: could not requeue $TASK; run vae sweep run again to resume run $I\"");
        Line("fi");
        Line("exit \"$rc\"");
        return text.ToString();
    }

    /// <summary>
    /// The cluster's MaxArraySize, from <c>scontrol show config</c>; <see cref="DefaultMaxArraySize"/> when the
    /// configuration does not name it or <c>scontrol</c> is not on the PATH.
    /// </summary>
    /// <exception cref="VaeResearchException"><c>scontrol</c> fails (e.g. the controller cannot be reached); the message has its error output.</exception>
    public static int MaxArraySize()
    {
        if (FindOnPath("scontrol") is not { } scontrol) return DefaultMaxArraySize;
        var result = RunProcess(scontrol, ["show", "config"], CommandTimeout);
        if (result.ExitCode != 0)
            throw new VaeResearchException($"scontrol show config failed (exit {result.ExitCode}): {Tail(result)}");
        return ParseMaxArraySize(result.Stdout);
    }

    /// <summary>MaxArraySize from the text of <c>scontrol show config</c> (a line <c>MaxArraySize = 1001</c>), or <see cref="DefaultMaxArraySize"/>.</summary>
    /// <param name="config">The output of <c>scontrol show config</c>.</param>
    public static int ParseMaxArraySize(string config)
    {
        foreach (string line in config.Split('\n'))
        {
            int eq = line.IndexOf('=');
            if (eq < 0 || !line[..eq].Trim().Equals("MaxArraySize", StringComparison.OrdinalIgnoreCase)) continue;
            if (int.TryParse(line[(eq + 1)..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int size) && size >= 1)
                return size;
        }
        return DefaultMaxArraySize;
    }

    /// <summary>
    /// Submits the pending runs as job arrays and returns their job ids at once (the jobs outlive this process).
    /// Writes <c>DIR/slurm/array.sbatch</c> (and <c>array-1.sbatch</c>, ... when the runs are more than the cluster's
    /// MaxArraySize), submits each with <c>sbatch --parsable</c>, and appends <c>JOBID, script, run indices</c> to
    /// <c>DIR/slurm/jobs.tsv</c> (which <see cref="Wait"/> reads). Split arrays run one after the other
    /// (<c>--dependency=afterany:PREVIOUS</c>), so that at most <paramref name="workers"/> runs train at once.
    /// </summary>
    /// <param name="sweepDir">The sweep folder (with <c>sweep.json</c>).</param>
    /// <param name="pending">The indices in <c>sweep.json</c> of the runs to train; none submits nothing.</param>
    /// <param name="workers">At most this many runs train at once (the array throttle <c>%workers</c>).</param>
    /// <param name="s">CPUs, time limit and extra sbatch options per task.</param>
    /// <param name="taskCommand">How an array task starts the CLI (see <see cref="RenderArray"/> and <see cref="CurrentCliCommand"/>).</param>
    /// <returns>The job ids, one per array, in submission order.</returns>
    /// <exception cref="VaeResearchException"><c>sbatch</c> is not on the PATH, or it (or <c>scontrol</c>) fails; the message has its error output.</exception>
    public static IReadOnlyList<string> Submit(string sweepDir, IReadOnlyList<int> pending, int workers, SlurmSettings s, string taskCommand)
    {
        ArgumentNullException.ThrowIfNull(pending);
        if (FindOnPath("sbatch") is not { } sbatch)
            throw new VaeResearchException("sbatch is not on the PATH: this machine has no Slurm client. Run the sweep here with --executor local, or submit it from a Slurm login node.");
        if (workers < 1) throw new VaeResearchException($"--workers must be >= 1, got {workers}");
        if (pending.Count == 0) return [];
        string dir = CheckedSweepDir(sweepDir);
        string slurmDir = Path.Combine(dir, "slurm");
        Directory.CreateDirectory(slurmDir);
        foreach (string stale in Directory.EnumerateFiles(slurmDir, "array-*.sbatch"))
            File.Delete(stale);

        var parts = Split(pending.Count, MaxArraySize());
        var ids = new List<string>();
        for (int p = 0; p < parts.Count; p++)
        {
            var part = parts[p];
            string script = Path.Combine(slurmDir, ScriptName(p));
            File.WriteAllText(script, RenderArray(dir, pending, part.Offset, part.Count, Math.Min(workers, part.Count), s, taskCommand));
            var args = new List<string> { "--parsable" };
            if (ids.Count > 0) args.Add($"--dependency=afterany:{ids[^1]}");
            args.Add(script);
            var result = RunProcess(sbatch, args, CommandTimeout);
            if (result.ExitCode != 0)
                throw new VaeResearchException(
                    $"sbatch {Path.GetFileName(script)} failed (exit {result.ExitCode}): {Tail(result)}" +
                    (ids.Count > 0 ? $" (submitted before it: {string.Join(", ", ids)})" : ""));
            string id = result.Stdout.Trim().Split(';')[0].Trim();
            if (id.Length == 0 || !id.All(char.IsAsciiDigit))
                throw new VaeResearchException($"sbatch {Path.GetFileName(script)} printed no job id: '{result.Stdout.Trim()}'");
            ids.Add(id);
            string runs = string.Join(',', Enumerable.Range(part.Offset, part.Count).Select(k => pending[k].ToString(CultureInfo.InvariantCulture)));
            File.AppendAllText(Path.Combine(slurmDir, JobsFileName), $"{id}\t{Path.GetFileName(script)}\t{runs}\n");
        }
        return ids;
    }

    /// <summary>
    /// Waits until every task of the given arrays has left the Slurm queue, then tells whether every task exited 0.
    /// </summary>
    /// <remarks>
    /// It polls <c>squeue -h -j IDS -o %i,%T</c> (no accounting needed) every <paramref name="poll"/>; a requeued task
    /// is back in the queue, so waiting goes on until it finishes for good. Success is then decided per task from the
    /// exit file the sbatch script writes (<c>DIR/slurm/JOBID_TASK.exit</c>, the task command's exit code): a
    /// missing file (cancelled before it started, killed at its time limit, node lost) or a non-zero code is a
    /// failed run, reported through <paramref name="progress"/> with its log. Slurm accounting (<c>sacct</c>) is not
    /// used: clusters without accounting storage have none, and the exit file survives the controller forgetting the job.
    /// </remarks>
    /// <param name="sweepDir">The sweep folder the arrays were submitted from (its <c>slurm/jobs.tsv</c> lists their tasks).</param>
    /// <param name="jobIds">Job ids returned by <see cref="Submit"/>.</param>
    /// <param name="poll">The time between two looks at the queue.</param>
    /// <param name="progress">Receives a line whenever the queue changes, and one per failed run.</param>
    /// <param name="timeout">Give up after this long (null: wait as long as the jobs stay queued).</param>
    /// <returns>True when every task of every array exited 0.</returns>
    /// <exception cref="VaeResearchException">A job id is not in <c>jobs.tsv</c>, <c>squeue</c> is missing or keeps failing, or the timeout passed (the jobs keep running).</exception>
    public static bool Wait(string sweepDir, IReadOnlyList<string> jobIds, TimeSpan poll, Action<string>? progress, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(jobIds);
        if (poll <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(poll), poll, "must be positive");
        string slurmDir = SlurmFolder(sweepDir);
        var arrays = ReadJobs(slurmDir, jobIds);
        if (jobIds.Count == 0) return true;
        if (FindOnPath("squeue") is not { } squeue)
            throw new VaeResearchException("squeue is not on the PATH: cannot follow the Slurm jobs from this machine");

        var clock = Stopwatch.StartNew();
        string last = "";
        string? lastError = null;
        while (true)
        {
            var result = RunProcess(squeue, ["-h", "-j", string.Join(',', jobIds), "-o", "%i,%T"], CommandTimeout);
            bool gone;
            if (result.ExitCode == 0) gone = result.Stdout.Trim().Length == 0;
            else if (result.Stderr.Contains("Invalid job id", StringComparison.OrdinalIgnoreCase)) gone = true;
            else
            {
                gone = false;
                lastError = Tail(result);
                progress?.Invoke($"slurm: squeue failed (exit {result.ExitCode}), trying again: {lastError}");
            }
            if (gone) break;
            if (result.ExitCode == 0)
            {
                string summary = Summarize(result.Stdout);
                if (summary != last) progress?.Invoke($"slurm: {summary}");
                last = summary;
            }
            if (timeout is { } limit && clock.Elapsed > limit)
                throw new VaeResearchException(
                    $"Slurm jobs {string.Join(", ", jobIds)} are still queued after {limit.TotalSeconds:0} s" +
                    (lastError is null ? "" : $" (last squeue error: {lastError})") + "; they keep running (see squeue)");
            Thread.Sleep(poll);
        }

        bool ok = true;
        foreach (var (id, runs) in arrays)
            for (int task = 0; task < runs.Count; task++)
            {
                string exitFile = Path.Combine(slurmDir, $"{id}_{task}.exit");
                string log = Path.Combine(slurmDir, $"{id}_{task}.log");
                string? code = ReadExit(exitFile);
                if (code == "0") continue;
                ok = false;
                progress?.Invoke(code switch
                {
                    null => $"run {runs[task]} (task {id}_{task}) left no exit status: cancelled, killed at its time limit or lost with its node; log {log}",
                    StoppedExitCode => $"run {runs[task]} (task {id}_{task}) was stopped at the end of an epoch with a checkpoint (exit {code}); vae sweep run resumes it; log {log}",
                    _ => $"run {runs[task]} (task {id}_{task}) failed with exit code {code}; log {log}",
                });
            }
        return ok;
    }

    /// <summary>How an array task starts this same CLI (<see cref="LocalExecutor.SelfCommand"/>), shell-quoted.</summary>
    /// <exception cref="VaeResearchException">Neither the apphost nor a dotnet host can be found.</exception>
    public static string CurrentCliCommand()
    {
        var (file, prefix) = LocalExecutor.SelfCommand();
        return string.Join(" ", new[] { file }.Concat(prefix).Select(ShellQuote));
    }

    /// <summary>The text as one word for bash: unchanged when it holds only safe characters, else in single quotes.</summary>
    /// <param name="text">Any text.</param>
    public static string ShellQuote(string text)
    {
        if (text.Length > 0 && text.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+=:,@".Contains(c))) return text;
        return "'" + text.Replace("'", "'\\''") + "'";
    }

    /// <summary>The full path of <paramref name="name"/> in a folder of the PATH (as it is now), or null.</summary>
    /// <param name="name">A command name such as <c>sbatch</c>.</param>
    public static string? FindOnPath(string name)
    {
        string path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (string folder in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(folder, name);
            if (File.Exists(candidate) && (OperatingSystem.IsWindows() ||
                (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0))
                return candidate;
        }
        return null;
    }

    /// <summary>Runs a command to its end (inheriting this process's environment) and captures what it wrote.</summary>
    /// <param name="file">The program (a path, or a name looked up on the PATH).</param>
    /// <param name="args">Its arguments, passed as they are (no shell).</param>
    /// <param name="timeout">Kill it and fail after this long.</param>
    /// <exception cref="VaeResearchException">It cannot be started, or it ran past <paramref name="timeout"/>.</exception>
    public static ProcessResult RunProcess(string file, IReadOnlyList<string> args, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string arg in args) info.ArgumentList.Add(arg);
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new VaeResearchException($"could not start {file}");
        }
        catch (Win32Exception e)
        {
            throw new VaeResearchException($"could not start {file}: {e.Message}", e);
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw new VaeResearchException($"{file} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds:0} s");
            }
            process.WaitForExit();
            return new ProcessResult(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
        }
    }

    // ------------------------------------------------------------------------------------------------------------

    static string CheckedSweepDir(string sweepDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sweepDir);
        string dir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(sweepDir));
        if (dir.Any(c => char.IsWhiteSpace(c) || c == '%' || char.IsControl(c)))
            throw new VaeResearchException($"a sweep run on Slurm needs a folder without spaces or '%' (sbatch reads them in log names), got '{dir}'");
        return dir;
    }

    static string JobName(string dir)
    {
        var name = new StringBuilder("vae-");
        foreach (char c in Path.GetFileName(dir))
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_');
        return name.ToString();
    }

    static string Tail(ProcessResult result)
    {
        string text = result.Stderr.Trim().Length > 0 ? result.Stderr.Trim() : result.Stdout.Trim();
        return text.Length <= 2000 ? text : "..." + text[^2000..];
    }

    static List<(string Id, IReadOnlyList<int> Runs)> ReadJobs(string slurmDir, IReadOnlyList<string> jobIds)
    {
        string file = Path.Combine(slurmDir, JobsFileName);
        var known = new Dictionary<string, IReadOnlyList<int>>();
        if (File.Exists(file))
            foreach (string line in File.ReadAllLines(file))
            {
                string[] fields = line.Split('\t');
                if (fields.Length != 3) continue;
                known[fields[0]] = fields[2].Split(',', StringSplitOptions.RemoveEmptyEntries)
                    .Select(r => int.Parse(r, NumberStyles.Integer, CultureInfo.InvariantCulture)).ToArray();
            }
        var arrays = new List<(string, IReadOnlyList<int>)>();
        foreach (string id in jobIds)
        {
            if (!known.TryGetValue(id, out var runs))
                throw new VaeResearchException($"Slurm job {id} was not submitted for this sweep (it is not in {file})");
            arrays.Add((id, runs));
        }
        return arrays;
    }

    static string? ReadExit(string file)
    {
        try { return File.ReadAllText(file).Trim(); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    /// <summary>"3 running, 5 pending" from squeue lines "ID,STATE", counting the tasks of a pending range like <c>12_[4-9%2]</c>.</summary>
    static string Summarize(string squeueOutput)
    {
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (string raw in squeueOutput.Split('\n'))
        {
            string line = raw.Trim();
            int comma = line.LastIndexOf(',');
            if (comma <= 0) continue;
            string state = line[(comma + 1)..].ToLowerInvariant();
            counts[state] = counts.GetValueOrDefault(state) + TaskCount(line[..comma]);
        }
        return string.Join(", ", counts.Select(kv => $"{kv.Value} {kv.Key}"));
    }

    static int TaskCount(string id)
    {
        int open = id.IndexOf('[');
        int close = id.IndexOf(']');
        if (open < 0 || close < open) return 1;
        string inside = id[(open + 1)..close];
        int percent = inside.IndexOf('%');
        if (percent >= 0) inside = inside[..percent];
        int total = 0;
        foreach (string piece in inside.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] ends = piece.Split('-');
            if (ends.Length == 2 && int.TryParse(ends[0], out int a) && int.TryParse(ends[1], out int b) && b >= a) total += b - a + 1;
            else total += 1;
        }
        return Math.Max(total, 1);
    }
}
