using System.Runtime.InteropServices;

namespace VaeResearch.Cli;

/// <summary>
/// SIGTERM and SIGINT (Ctrl-C) as a stop request: the first one cancels <see cref="Token"/> and the process
/// finishes its current epoch, writes its checkpoint and exits with <see cref="ExitCode"/>; the handler keeps
/// the runtime from terminating the process at once. Slurm sends SIGTERM before it pre-empts or times out a job
/// (the sweep's sbatch asks for it ahead of the kill).
/// </summary>
sealed class StopSignal : IDisposable
{
    /// <summary>Exit code of a process that stopped on request with its work resumable (EX_TEMPFAIL).</summary>
    public const int ExitCode = 75;

    readonly CancellationTokenSource source = new();
    readonly PosixSignalRegistration[] registrations;

    public StopSignal(Action<string>? onStop = null)
    {
        registrations =
        [
            .. new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT }.Select(signal => PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true;
                if (!source.IsCancellationRequested)
                {
                    onStop?.Invoke(signal == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM");
                    source.Cancel();
                }
            })),
        ];
    }

    /// <summary>Cancelled when a stop signal arrives.</summary>
    public CancellationToken Token => source.Token;

    /// <summary>Whether a stop signal arrived.</summary>
    public bool Requested => source.IsCancellationRequested;

    /// <summary>Sends SIGTERM to another process (a worker): it stops at the end of its epoch.</summary>
    public static void Terminate(int pid)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("stopping a worker at the end of its epoch needs POSIX signals");
        _ = kill(pid, 15);
    }

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        source.Dispose();
    }
}
