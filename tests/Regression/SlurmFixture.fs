/// A private single-node Slurm cluster for tests: munged, slurmctld and slurmd started as child processes with
/// every file (key, sockets, state, spool, pid files, logs, slurm.conf) in one temporary folder, on free ports, so
/// it never meets a system Slurm or a cluster left by an earlier run. Disposing it cancels its jobs, stops exactly
/// the daemons it started (by their process handles) and deletes the folder.
module VaeResearch.Regression.SlurmFixture

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading

/// How the cluster is configured.
type Options =
    { /// Slurm's MaxArraySize (array indices 0 .. MaxArraySize - 1); small values force sweeps to split.
      MaxArraySize: int
      /// How long each daemon may take to come up.
      StartTimeout: TimeSpan }

/// Slurm's default MaxArraySize and a 60 s bound per daemon.
let defaults = { MaxArraySize = 1001; StartTimeout = TimeSpan.FromSeconds 60.0 }

/// A daemon started by the fixture, with what it wrote to stdout and stderr.
type Daemon = { Name: string; Process: Process; Output: StringBuilder }

let private commandTimeout = TimeSpan.FromMinutes 2.0

/// The full path of a program on the PATH or in an sbin folder (root's tools may be missing from a test's PATH).
let find (name: string) : string option =
    let path = Environment.GetEnvironmentVariable "PATH" |> Option.ofObj |> Option.defaultValue ""
    let folders = Array.append (path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)) [| "/usr/sbin"; "/usr/local/sbin"; "/sbin" |]
    folders |> Array.map (fun folder -> Path.Combine(folder, name)) |> Array.tryFind File.Exists

/// Runs a program to its end with extra environment variables (SBATCH_*/SLURM_* inherited from an enclosing Slurm
/// job are dropped first) and returns exit code, stdout and stderr; killed and reported as exit 124 after 2 minutes.
let runWith (env: (string * string) list) (file: string, args: string list) : int * string * string =
    let info = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false)
    for a in args do info.ArgumentList.Add a
    for key in List.ofSeq info.Environment.Keys do
        if key.StartsWith "SBATCH_" || key.StartsWith "SLURM_" then info.Environment.Remove key |> ignore
    for key, value in env do info.Environment[key] <- value
    use proc = nonNull (Process.Start info)
    proc.StandardInput.Close()
    let out = proc.StandardOutput.ReadToEndAsync()
    let err = proc.StandardError.ReadToEndAsync()
    if proc.WaitForExit commandTimeout then
        proc.WaitForExit()
        proc.ExitCode, out.Result, err.Result
    else
        (try proc.Kill true with :? InvalidOperationException -> ())
        124, "", $"{file} {String.Join(' ', args)} did not finish within {commandTimeout.TotalSeconds} s"

/// Mutable shutdown state of a cluster (so that disposing twice, or at process exit, is harmless).
type Lifetime() =
    let gate = obj ()
    let mutable stopped = false
    /// The daemons started so far, in order.
    member val Daemons: Daemon list = [] with get, set
    /// True the first time only: the caller stops the cluster.
    member _.Begin() = lock gate (fun () -> if stopped then false else stopped <- true; true)

/// Text of the last lines of a file, or "" when it cannot be read.
let private tailOf (file: string) (lines: int) =
    try File.ReadAllLines file |> Array.rev |> Array.truncate lines |> Array.rev |> String.concat "\n" with _ -> ""

let private signal (name: string) (pid: int) =
    match find "kill" with
    | Some kill -> runWith [] (kill, [ name; string pid ]) |> ignore
    | None -> ()

/// Stops the daemons of a cluster, last started first: SIGTERM, then SIGKILL after 15 s.
let private stopDaemons (daemons: Daemon list) =
    for d in List.rev daemons do
        try
            if not d.Process.HasExited then
                signal "-TERM" d.Process.Id
                if not (d.Process.WaitForExit(TimeSpan.FromSeconds 15.0)) then
                    d.Process.Kill()
                    d.Process.WaitForExit(TimeSpan.FromSeconds 5.0) |> ignore
        with :? InvalidOperationException -> ()
        d.Process.Dispose()

let private deleteFolder (folder: string) =
    let rec attempt n =
        try
            if Directory.Exists folder then Directory.Delete(folder, true)
        with :? IOException | :? UnauthorizedAccessException when n > 0 ->
            Thread.Sleep 200
            attempt (n - 1)
    try attempt 10 with _ -> ()

/// A running private cluster. Env (SLURM_CONF) points Slurm's commands at it.
type Cluster =
    { /// The temporary folder that holds everything.
      Folder: string
      /// Its slurm.conf.
      Conf: string
      /// The environment Slurm's commands need to reach this cluster.
      Env: (string * string) list
      /// The node's name.
      Node: string
      /// The configured MaxArraySize.
      MaxArraySize: int
      /// The daemons and whether the cluster was stopped.
      Lifetime: Lifetime }

    /// Cancels the cluster's jobs (bounded wait for them to leave), stops its daemons and deletes its folder.
    member this.Stop() =
        if this.Lifetime.Begin() then
            let controllerUp = this.Lifetime.Daemons |> List.exists (fun d -> d.Name = "slurmctld" && not d.Process.HasExited)
            match find "scancel", find "squeue" with
            | Some scancel, Some squeue when controllerUp ->
                runWith this.Env (scancel, [ "--quiet"; "--user"; Environment.UserName ]) |> ignore
                let deadline = DateTime.UtcNow + TimeSpan.FromSeconds 30.0
                let rec drain () =
                    let code, out, _ = runWith this.Env (squeue, [ "-h"; "-o"; "%i" ])
                    if code = 0 && out.Trim() <> "" && DateTime.UtcNow < deadline then
                        Thread.Sleep 500
                        drain ()
                drain ()
            | _ -> ()
            stopDaemons this.Lifetime.Daemons
            deleteFolder this.Folder

    interface IDisposable with
        member this.Dispose() = this.Stop()

/// Runs a program against the cluster (SLURM_CONF set): exit code, stdout, stderr.
let run (cluster: Cluster) (file: string, args: string list) : int * string * string =
    let program = if file.Contains '/' then file else defaultArg (find file) file
    runWith cluster.Env (program, args)

/// Sets the cluster's environment in this process (for code that starts Slurm commands itself, like the
/// Slurm executor) until disposed, then restores the previous values.
let useEnv (cluster: Cluster) : IDisposable =
    let saved = cluster.Env |> List.map (fun (key, _) -> key, Environment.GetEnvironmentVariable key)
    for key, value in cluster.Env do Environment.SetEnvironmentVariable(key, value)
    { new IDisposable with
        member _.Dispose() = for key, value in saved do Environment.SetEnvironmentVariable(key, value) }

let private freePort () =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    listener.Start()
    let port = (listener.LocalEndpoint :?> IPEndPoint).Port
    listener.Stop()
    port

let private memoryMb () =
    try
        File.ReadAllLines "/proc/meminfo"
        |> Array.tryPick (fun line ->
            if line.StartsWith "MemTotal:" then
                Some(int (Int64.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024L))
            else None)
        |> Option.defaultValue 1024
    with _ -> 1024

let private startDaemon (name: string) (file: string) (args: string list) : Daemon =
    let info = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for a in args do info.ArgumentList.Add a
    for key in List.ofSeq info.Environment.Keys do
        if key.StartsWith "SBATCH_" || key.StartsWith "SLURM_" then info.Environment.Remove key |> ignore
    let output = StringBuilder()
    let append (e: DataReceivedEventArgs) = if not (isNull e.Data) then lock output (fun () -> output.AppendLine e.Data |> ignore)
    let proc = new Process(StartInfo = info)
    proc.OutputDataReceived.Add append
    proc.ErrorDataReceived.Add append
    proc.Start() |> ignore
    proc.BeginOutputReadLine()
    proc.BeginErrorReadLine()
    { Name = name; Process = proc; Output = output }

/// Waits (bounded) until ready () holds; Error with what went wrong when the daemon exits or time runs out.
let private awaitReady (d: Daemon) (timeout: TimeSpan) (log: string) (ready: unit -> bool) : Result<unit, string> =
    let clock = Stopwatch.StartNew()
    let rec loop () =
        if ready () then Ok()
        elif d.Process.HasExited then
            Error $"{d.Name} exited with code {d.Process.ExitCode}: {lock d.Output (fun () -> d.Output.ToString().Trim())} {tailOf log 20}"
        elif clock.Elapsed > timeout then
            Error $"{d.Name} did not come up within {timeout.TotalSeconds} s: {lock d.Output (fun () -> d.Output.ToString().Trim())} {tailOf log 20}"
        else
            Thread.Sleep 250
            loop ()
    loop ()

/// The slurm.conf of a private single-node cluster.
let conf (folder: string) (host: string) (node: string) (ctldPort: int) (slurmdPort: int) (cpus: int) (memory: int) (maxArraySize: int) =
    let at name = Path.Combine(folder, name)
    String.concat "\n"
        [ "# A private single-node Slurm cluster written by the VaeResearch test fixture."
          "ClusterName=vaetest"
          $"SlurmctldHost={host}(127.0.0.1)"
          $"SlurmctldPort={ctldPort}"
          $"SlurmdPort={slurmdPort}"
          "SlurmUser=root"
          "SlurmdUser=root"
          "AuthType=auth/munge"
          "CredType=cred/munge"
          // cred_expire is also how long a requeued job waits before it may start again (default 120 s).
          $"""AuthInfo=socket={at "munge.socket"},cred_expire=10"""
          $"""StateSaveLocation={at "state"}"""
          $"""SlurmdSpoolDir={at "spool"}"""
          $"""SlurmctldPidFile={at "slurmctld.pid"}"""
          $"""SlurmdPidFile={at "slurmd.pid"}"""
          $"""SlurmctldLogFile={at "slurmctld.log"}"""
          $"""SlurmdLogFile={at "slurmd.log"}"""
          "ProctrackType=proctrack/linuxproc"
          "TaskPlugin=task/none"
          "SelectType=select/cons_tres"
          "SelectTypeParameters=CR_CPU"
          "SchedulerType=sched/backfill"
          // Schedule often: a requeued job becomes eligible on a timer, not on an event.
          "SchedulerParameters=bf_interval=2,sched_interval=2"
          "ReturnToService=2"
          "SlurmdParameters=config_overrides"
          $"MaxArraySize={maxArraySize}"
          "KillWait=10"
          "MpiDefault=none"
          "MailProg=/bin/true"
          "AccountingStorageType=accounting_storage/none"
          "JobAcctGatherType=jobacct_gather/none"
          "JobCompType=jobcomp/none"
          $"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN"
          $"PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP"
          "" ]

/// Starts a private cluster; Error with the reason when Slurm or munge is not installed or a daemon does not come up.
let startWith (options: Options) : Result<Cluster, string> =
    let tools = [ "munged"; "slurmctld"; "slurmd"; "sbatch"; "squeue"; "scontrol"; "scancel"; "sinfo" ]
    let missing = tools |> List.filter (fun t -> (find t).IsNone)
    if not missing.IsEmpty then Error $"""not installed: {String.Join(", ", missing)}""" else
    let tool name = (find name).Value
    let folder = (Directory.CreateTempSubdirectory "vae-slurm-").FullName
    let at name = Path.Combine(folder, name)
    let lifetime = Lifetime()
    let host = Dns.GetHostName().Split('.')[0]
    let node = host
    let confFile = at "slurm.conf"
    let cluster =
        { Folder = folder; Conf = confFile; Env = [ "SLURM_CONF", confFile ]; Node = node
          MaxArraySize = options.MaxArraySize; Lifetime = lifetime }
    let started (d: Daemon) = lifetime.Daemons <- lifetime.Daemons @ [ d ]; d
    let result =
        try
            Directory.CreateDirectory(at "state") |> ignore
            Directory.CreateDirectory(at "spool") |> ignore
            // munged wants a key readable by its user only; a fresh one per cluster.
            let key = at "munge.key"
            File.WriteAllBytes(key, Security.Cryptography.RandomNumberGenerator.GetBytes 1024)
            File.SetUnixFileMode(key, UnixFileMode.UserRead)
            let socket = at "munge.socket"
            let munged =
                started (startDaemon "munged" (tool "munged")
                    [ "--foreground"; "--force"; $"--socket={socket}"; $"""--pid-file={at "munged.pid"}"""
                      $"""--log-file={at "munged.log"}"""; $"""--seed-file={at "munged.seed"}"""; $"--key-file={key}" ])
            awaitReady munged options.StartTimeout (at "munged.log") (fun () -> File.Exists socket)
            |> Result.bind (fun () ->
                File.WriteAllText(confFile, conf folder host node (freePort ()) (freePort ()) Environment.ProcessorCount (max 256 (memoryMb () * 9 / 10)) options.MaxArraySize)
                let ctld = started (startDaemon "slurmctld" (tool "slurmctld") [ "-D"; "-f"; confFile ])
                awaitReady ctld options.StartTimeout (at "slurmctld.log") (fun () ->
                    let code, out, _ = run cluster (tool "scontrol", [ "ping" ])
                    code = 0 && out.Contains "UP"))
            |> Result.bind (fun () ->
                let slurmd = started (startDaemon "slurmd" (tool "slurmd") [ "-D"; "-f"; confFile; "-N"; node ])
                awaitReady slurmd options.StartTimeout (at "slurmd.log") (fun () ->
                    let code, out, _ = run cluster (tool "sinfo", [ "-h"; "-n"; node; "-o"; "%T" ])
                    code = 0 && out.Trim() = "idle"))
        with e -> Error $"{e.GetType().Name}: {e.Message}"
    match result with
    | Ok() ->
        AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> cluster.Stop())
        Ok cluster
    | Error why ->
        cluster.Stop()
        Error why

/// Starts a private cluster with the default options.
let start () : Result<Cluster, string> = startWith defaults
