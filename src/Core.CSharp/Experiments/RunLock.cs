using System.Text.Json;
using System.Text.Json.Nodes;

namespace VaeResearch.Experiments;

/// <summary>Who holds (or last held) a run's lock: from <c>.lock.json</c> beside the lock file.</summary>
/// <param name="Host">Machine name.</param>
/// <param name="Pid">Process id.</param>
/// <param name="Job">Slurm job and task (<c>JOBID_TASK</c>), when the holder is a Slurm task.</param>
/// <param name="Heartbeat">When the holder last said it was alive (UTC).</param>
public sealed record LockHolder(string Host, int Pid, string? Job, DateTime Heartbeat);

/// <summary>
/// An exclusive lock on a run folder while it trains: an OS file lock on <c>RUN/.lock</c> (on Linux .NET
/// takes <c>flock(LOCK_EX)</c> for <see cref="FileShare.None"/>), which the kernel releases when the process
/// dies, so no two workers, sweeps or Slurm tasks ever train the same run. The holder writes
/// <c>RUN/.lock.json</c> (host, pid, Slurm job, heartbeat every <see cref="HeartbeatInterval"/>) and deletes it
/// on release; a <c>.lock.json</c> left behind by a holder that died, or one whose heartbeat stopped (a lost
/// node on a shared file system), marks the run as stale.
/// </summary>
public sealed class RunLock : IDisposable
{
    /// <summary>How often the holder refreshes its heartbeat.</summary>
    public static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(30);

    /// <summary>A heartbeat older than this means the holder is gone.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(5);

    readonly FileStream stream;
    readonly string infoPath;
    readonly Timer timer;
    readonly LockHolder holder;

    RunLock(FileStream stream, string infoPath)
    {
        this.stream = stream;
        this.infoPath = infoPath;
        holder = new LockHolder(Environment.MachineName, Environment.ProcessId, SlurmJob(), DateTime.UtcNow);
        Beat();
        timer = new Timer(_ => Beat(), null, HeartbeatInterval, HeartbeatInterval);
    }

    /// <summary>The lock file of a run folder.</summary>
    public static string LockPath(string runDir) => Path.Combine(runDir, ".lock");

    /// <summary>The holder file of a run folder.</summary>
    public static string InfoPath(string runDir) => Path.Combine(runDir, ".lock.json");

    /// <summary>Takes the lock of <paramref name="runDir"/> (creating the folder), or returns null when another process holds it.</summary>
    public static RunLock? TryAcquire(string runDir)
    {
        Directory.CreateDirectory(runDir);
        try
        {
            var stream = new FileStream(LockPath(runDir), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            return new RunLock(stream, InfoPath(runDir));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether some live process holds the lock of <paramref name="runDir"/> (takes and drops it to find out).</summary>
    public static bool IsHeld(string runDir)
    {
        if (!File.Exists(LockPath(runDir))) return false;
        try
        {
            using var probe = new FileStream(LockPath(runDir), FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>The holder recorded in <c>.lock.json</c>, or null (never locked, or released cleanly).</summary>
    public static LockHolder? ReadHolder(string runDir)
    {
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(InfoPath(runDir)))!;
            return new LockHolder((string)node["host"]!, (int)node["pid"]!, (string?)node["job"], ((DateTime)node["heartbeat"]!).ToUniversalTime());
        }
        catch (Exception e) when (e is IOException or JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            return null;
        }
    }

    /// <summary>The Slurm job and task of this process (<c>JOBID_TASK</c>, as <c>scontrol requeue</c> takes it), or null.</summary>
    public static string? SlurmJob() =>
        Environment.GetEnvironmentVariable("SLURM_ARRAY_JOB_ID") is { Length: > 0 } array
            ? $"{array}_{Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID")}"
            : Environment.GetEnvironmentVariable("SLURM_JOB_ID") is { Length: > 0 } job ? job : null;

    void Beat()
    {
        var info = new JsonObject
        {
            ["host"] = holder.Host,
            ["pid"] = holder.Pid,
            ["job"] = holder.Job,
            ["heartbeat"] = DateTime.UtcNow.ToString("O"),
        };
        try
        {
            AtomicFile.WriteAllText(infoPath, info.ToJsonString() + "\n");
        }
        catch (IOException)
        {
            // NOTE: a missed heartbeat only matters if it persists for StaleAfter; the next tick retries.
        }
    }

    /// <summary>Releases the lock and deletes the holder file.</summary>
    public void Dispose()
    {
        timer.Dispose();
        try { File.Delete(infoPath); } catch (IOException) { }
        stream.Dispose();
    }
}
