/// The Slurm executor and the private-cluster fixture: the sbatch script (header, run lookup, signal forwarding,
/// exit file) run by bash alone, then job arrays, waiting, failures, splitting and requeues on a real single-node
/// Slurm started by SlurmFixture. Without Slurm these skip with the reason (and fail under CI=true).
module VaeResearch.Regression.SlurmTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open Expecto
open VaeResearch
open VaeResearch.TestSupport
open VaeResearch.Cli.Sweeps

type private S = SlurmExecutor.SlurmSettings

let private install = "apt-get install -y slurm-wlm munge"

/// Runs body on a fresh private cluster (skipped, or failed under CI, when it cannot start).
let withCluster (options: SlurmFixture.Options) (body: SlurmFixture.Cluster -> unit) =
    match SlurmFixture.startWith options with
    | Ok cluster ->
        use cluster = cluster
        use _env = SlurmFixture.useEnv cluster
        body cluster
    | Error why -> requireNative "Slurm" (Some why) install

/// Polls cond every 250 ms; fails the test with what after timeout seconds.
let waitUntil (seconds: float) (what: string) (cond: unit -> bool) =
    let clock = Stopwatch.StartNew()
    while not (cond ()) do
        if clock.Elapsed.TotalSeconds > seconds then failtestf "%s: not within %.0f s" what seconds
        Thread.Sleep 250

let private lines (file: string) = if File.Exists file then File.ReadAllLines file else [||]

let private writeScript (file: string) (text: string) =
    File.WriteAllText(file, "#!/bin/bash\n" + text)
    File.SetUnixFileMode(file, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute)

/// A stand-in for `vae`: called as `fake sweep task DIR --index I --threads N`, appends its arguments to
/// DIR/starts-I, then runs body (bash, with $DIR and $I set) and exits with its status.
let private fakeVae (folder: string) (body: string) =
    let file = Path.Combine(folder, "fake-vae")
    writeScript file ("DIR=$3; I=$5\necho \"$*\" >> \"$DIR/starts-$I\"\n" + body + "\n")
    file

let private poll = TimeSpan.FromMilliseconds 500.0

let squeueStates (cluster: SlurmFixture.Cluster) (job: string) =
    let _, out, _ = SlurmFixture.run cluster ("squeue", [ "-h"; "-j"; job; "-o"; "%i,%T" ])
    out

/// Runs a one-task array script (task 0 = run 6, job 42) under bash with a stand-in `scontrol` that records its
/// calls in scontrol-calls, sends the batch shell `signal` once the task has started, and returns the script's
/// exit code and output.
let private signalArrayTask (temp: TempFolder) (fake: string) (signal: string) =
    let bin = temp.Sub "bin"
    Directory.CreateDirectory bin |> ignore
    writeScript (Path.Combine(bin, "scontrol")) $"""echo "$*" >> {temp.File "scontrol-calls"}"""
    Directory.CreateDirectory(temp.Sub "slurm") |> ignore
    let script = temp.File "array.sbatch"
    File.WriteAllText(script, SlurmExecutor.RenderArray(temp.Path, [| 6 |], 0, 1, 1, S(1, null, []), fake))
    let info = ProcessStartInfo("/bin/bash", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    info.ArgumentList.Add script
    for k, v in [ "SLURM_ARRAY_JOB_ID", "42"; "SLURM_ARRAY_TASK_ID", "0"; "SLURM_JOB_ID", "42" ] do info.Environment[k] <- v
    info.Environment["PATH"] <- bin + ":" + Environment.GetEnvironmentVariable "PATH"
    use proc = nonNull (Process.Start info)
    let output = proc.StandardOutput.ReadToEndAsync()
    proc.StandardError.ReadToEndAsync() |> ignore
    waitUntil 10.0 "the task starts" (fun () -> File.Exists(temp.File "starts-6"))
    SlurmFixture.runWith [] ("/bin/kill", [ signal; string proc.Id ]) |> ignore
    Expect.isTrue (proc.WaitForExit(TimeSpan.FromSeconds 15.0)) "the script ends after the task stops"
    proc.ExitCode, output.Result

let private scriptTests =
    testList "script" [
        test "RenderArray writes the header, the throttle, the run lookup and the signal" {
            let dir = "/data/sweeps/vae-mnist"
            let s = S(2, "01:00:00", [ "--partition=debug"; "#SBATCH --qos=low" ])
            let text = SlurmExecutor.RenderArray(dir, [| 3; 5; 7; 8; 9 |], 2, 3, 2, s, "/opt/vae/vae")
            let has (line: string) = Expect.contains (text.Split '\n') line $"the script has the line {line}"
            has "#!/bin/bash"
            has "#SBATCH --job-name=vae-vae-mnist"
            has "#SBATCH --array=0-2%2"
            has "#SBATCH --cpus-per-task=2"
            has "#SBATCH --time=01:00:00"
            has "#SBATCH --requeue"
            has "#SBATCH --signal=B:USR1@120"
            has "#SBATCH --output=/data/sweeps/vae-mnist/slurm/%A_%a.log"
            has "#SBATCH --partition=debug"
            has "#SBATCH --qos=low"
            has "RUNS=(7 8 9)"
            has "I=${RUNS[$SLURM_ARRAY_TASK_ID]}"
            has "trap 'requeue=1; stop_child' USR1"
            has "/opt/vae/vae sweep task /data/sweeps/vae-mnist --index \"$I\" --threads 2 &"
            let sbatchLines = text.Split '\n' |> Array.takeWhile (fun l -> l.StartsWith "#") |> Array.filter (fun l -> l.StartsWith "#SBATCH")
            Expect.equal sbatchLines.Length 10 "every #SBATCH line comes before the first command (sbatch stops reading at it)"
            let untimed = SlurmExecutor.RenderArray(dir, [| 4 |], 0, 1, 1, S(1, null, []), "vae")
            notContains untimed "--time" "no --time without a time limit"
            Expect.stringContains untimed "#SBATCH --array=0-0%1" "one task"
        }

        test "RenderArray rejects what sbatch cannot take" {
            let s = S(1, null, [])
            let e = throws<VaeResearchException> (fun () -> SlurmExecutor.RenderArray("/tmp/a b", [| 1 |], 0, 1, 1, s, "vae") |> ignore)
            Expect.stringContains e.Message "spaces" "a folder with a space"
            let e = throws<VaeResearchException> (fun () -> SlurmExecutor.RenderArray("/tmp/ab", [| 1 |], 0, 1, 0, s, "vae") |> ignore)
            Expect.stringContains e.Message "--workers" "no workers"
            let e = throws<VaeResearchException> (fun () -> SlurmExecutor.RenderArray("/tmp/ab", [| 1 |], 0, 1, 1, S(1, null, [ "--a\n--b" ]), "vae") |> ignore)
            Expect.stringContains e.Message "one line" "a two-line option"
            throws<ArgumentOutOfRangeException> (fun () -> SlurmExecutor.RenderArray("/tmp/ab", [| 1; 2 |], 1, 2, 1, s, "vae") |> ignore) |> ignore
        }

        test "the script maps the array task to its run, passes the threads and writes the exit file (bash alone)" {
            use temp = new TempFolder "vae-slurm-script-"
            let fake = fakeVae temp.Path "exit 3"
            let script = temp.File "array.sbatch"
            File.WriteAllText(script, SlurmExecutor.RenderArray(temp.Path, [| 3; 5; 7; 8; 9 |], 2, 3, 2, S(4, null, []), fake))
            Directory.CreateDirectory(temp.Sub "slurm") |> ignore
            let env = [ "SLURM_ARRAY_JOB_ID", "42"; "SLURM_ARRAY_TASK_ID", "1"; "SLURM_JOB_ID", "44" ]
            let code, out, err = SlurmFixture.runWith env ("/bin/bash", [ script ])
            Expect.equal code 3 $"the script exits with the task's code (stdout {out}, stderr {err})"
            Expect.equal (lines (temp.File "starts-8")) [| $"sweep task {temp.Path} --index 8 --threads 4" |] "task 1 of RUNS=(7 8 9) is run 8"
            Expect.equal (File.ReadAllText(temp.File "slurm/42_1.exit").Trim()) "3" "the exit file has the code"
        }

        test "USR1 reaches the task as TERM, and the task then requeues itself by JOBID_TASK (bash alone)" {
            use temp = new TempFolder "vae-slurm-signal-"
            // The trainer's behaviour: on SIGTERM, finish the epoch, checkpoint, exit 0.
            let fake = fakeVae temp.Path "trap 'echo stopped >> \"$DIR/stopped-$I\"; exit 0' TERM\nfor s in $(seq 1 200); do sleep 0.1; done\nexit 9"
            let code, output = signalArrayTask temp fake "-USR1"
            Expect.equal code 0 $"the script exits with the task's code (0 after a clean stop): {output}"
            Expect.equal (lines (temp.File "stopped-6")) [| "stopped" |] "the task got SIGTERM once"
            Expect.equal (File.ReadAllText(temp.File "slurm/42_0.exit").Trim()) "0" "exit file"
            Expect.equal (lines (temp.File "scontrol-calls")) [| "requeue 42_0" |] "the task requeues itself by JOBID_TASK"
        }

        test "TERM is forwarded and does not requeue (bash alone)" {
            use temp = new TempFolder "vae-slurm-term-"
            let fake = fakeVae temp.Path "trap 'exit 5' TERM\nfor s in $(seq 1 200); do sleep 0.1; done\nexit 9"
            let code, output = signalArrayTask temp fake "-TERM"
            Expect.equal code 5 $"the task's own code, not the signal's: {output}"
            Expect.equal (File.ReadAllText(temp.File "slurm/42_0.exit").Trim()) "5" "exit file"
            Expect.isFalse (File.Exists(temp.File "scontrol-calls")) "no requeue after TERM"
        }

        test "Split cuts the pending runs at MaxArraySize" {
            let parts = SlurmExecutor.Split(7, 3) |> Seq.map (fun p -> p.Offset, p.Count) |> List.ofSeq
            Expect.equal parts [ 0, 3; 3, 3; 6, 1 ] "7 runs, MaxArraySize 3"
            Expect.equal (SlurmExecutor.Split(1001, 1001).Count) 1 "exactly MaxArraySize"
            Expect.isEmpty (SlurmExecutor.Split(0, 5)) "nothing pending"
        }

        test "MaxArraySize is read from scontrol show config" {
            Expect.equal (SlurmExecutor.ParseMaxArraySize "AuthType                = auth/munge\nMaxArraySize            = 40001\nMaxJobCount = 10000\n") 40001 "named"
            Expect.equal (SlurmExecutor.ParseMaxArraySize "MaxJobCount = 10000\n") SlurmExecutor.DefaultMaxArraySize "absent"
        }

        test "CurrentCliCommand starts this CLI (dotnet vae.dll from a test runner)" {
            let command = SlurmExecutor.CurrentCliCommand()
            Expect.stringContains command "vae.dll" $"the CLI's assembly, not the test runner: {command}"
            let code, out, err = SlurmFixture.runWith [] ("/bin/bash", [ "-c"; command + " --help" ])
            Expect.equal code 0 $"{command} --help runs (stderr {err})"
            Expect.stringContains out "train" "and prints the CLI's commands"
        }

        test "without sbatch on the PATH the error names sbatch and --executor local" {
            use temp = new TempFolder "vae-slurm-nopath-"
            let saved = Environment.GetEnvironmentVariable "PATH"
            Environment.SetEnvironmentVariable("PATH", temp.Path)
            let e =
                try throws<VaeResearchException> (fun () -> SlurmExecutor.Submit(temp.Path, [| 0 |], 1, S(1, null, []), "vae") |> ignore)
                finally Environment.SetEnvironmentVariable("PATH", saved)
            Expect.stringContains e.Message "sbatch" "names sbatch"
            Expect.stringContains e.Message "--executor local" "suggests the local executor"
            Expect.isFalse (Directory.Exists(temp.Sub "slurm")) "nothing written"
        }
    ]

let private clusterTests =
    testList "cluster" [
        test "the fixture starts, and a throttled 4-task job array runs every task" {
            withCluster SlurmFixture.defaults (fun cluster ->
                use temp = new TempFolder "vae-slurm-array-"
                let code, out, err =
                    SlurmFixture.run cluster
                        ("sbatch", [ "--parsable"; "--array=0-3%2"; $"--output={temp.Path}/%%A_%%a.out"
                                     "--wrap"; $"echo $SLURM_ARRAY_TASK_ID > {temp.Path}/task-$SLURM_ARRAY_TASK_ID" ])
                Expect.equal code 0 $"sbatch submits (stderr {err})"
                let job = out.Trim()
                waitUntil 120.0 "the array leaves the queue" (fun () -> (squeueStates cluster job).Trim() = "")
                for t in 0..3 do
                    Expect.equal (lines (temp.File $"task-{t}")) [| string t |] $"task {t} ran")
        }

        test "Submit writes array.sbatch, returns the job id, and Wait tells a failed run from all done" {
            withCluster SlurmFixture.defaults (fun _ ->
                use temp = new TempFolder "vae-slurm-submit-"
                let fake = fakeVae temp.Path "if [ \"$I\" = 5 ]; then exit 1; fi\nexit 0"
                let ids = SlurmExecutor.Submit(temp.Path, [| 1; 3; 5; 8 |], 2, S(1, null, []), fake)
                Expect.equal ids.Count 1 "one array"
                let script = File.ReadAllText(temp.File "slurm/array.sbatch")
                Expect.stringContains script "RUNS=(1 3 5 8)" "lookup table"
                Expect.stringContains script "#SBATCH --array=0-3%2" "throttled to the workers"
                let messages = ResizeArray()
                let ok = SlurmExecutor.Wait(temp.Path, ids, poll, Action<string> messages.Add, TimeSpan.FromSeconds 120.0)
                Expect.isFalse ok "run 5 exited 1"
                for run in [ 1; 3; 5; 8 ] do
                    Expect.equal (lines (temp.File $"starts-{run}")).Length 1 $"run {run} started once"
                let failures = messages |> Seq.filter (fun m -> m.Contains "failed") |> List.ofSeq
                Expect.equal failures.Length 1 $"one failure reported: {String.Join(Environment.NewLine, messages)}"
                Expect.stringContains failures[0] $"run 5 (task {ids[0]}_2) failed with exit code 1" "names the run, its task and the code"
                Expect.isTrue (File.Exists(temp.File $"slurm/{ids[0]}_2.log")) "per-task log in DIR/slurm"
                Expect.isFalse (SlurmExecutor.Wait(temp.Path, ids, poll, null, TimeSpan.FromSeconds 30.0)) "waiting again on the finished array gives the same answer"
                let again = SlurmExecutor.Submit(temp.Path, [| 1; 3; 8 |], 3, S(1, null, []), fake)
                Expect.isTrue (SlurmExecutor.Wait(temp.Path, again, poll, null, TimeSpan.FromSeconds 120.0)) "every run exited 0"
                let jobs = lines (temp.File "slurm/jobs.tsv")
                Expect.equal jobs [| $"{ids[0]}\tarray.sbatch\t1,3,5,8"; $"{again[0]}\tarray.sbatch\t1,3,8" |] "jobs.tsv lists both submissions")
        }

        test "with MaxArraySize=3, 7 pending runs go in 3 arrays with the right offsets" {
            withCluster { SlurmFixture.defaults with MaxArraySize = 3 } (fun _ ->
                Expect.equal (SlurmExecutor.MaxArraySize()) 3 "read from the cluster"
                use temp = new TempFolder "vae-slurm-split-"
                let fake = fakeVae temp.Path "exit 0"
                let pending = [| 2; 4; 6; 8; 10; 12; 14 |]
                let ids = SlurmExecutor.Submit(temp.Path, pending, 2, S(1, null, []), fake)
                Expect.equal ids.Count 3 "three arrays"
                let scriptOf name = File.ReadAllText(temp.File $"slurm/{name}")
                Expect.stringContains (scriptOf "array.sbatch") "RUNS=(2 4 6)\n" "first array"
                Expect.stringContains (scriptOf "array-1.sbatch") "RUNS=(8 10 12)\n" "second array"
                Expect.stringContains (scriptOf "array-2.sbatch") "RUNS=(14)\n" "third array"
                Expect.stringContains (scriptOf "array-2.sbatch") "#SBATCH --array=0-0%1" "throttle no larger than the array"
                Expect.isTrue (SlurmExecutor.Wait(temp.Path, ids, poll, null, TimeSpan.FromSeconds 180.0)) "every run exited 0"
                for run in pending do
                    Expect.equal (lines (temp.File $"starts-{run}")).Length 1 $"run {run} ran once"
                Expect.isEmpty (Directory.GetFiles(temp.Path, "starts-*") |> Array.filter (fun f -> not (pending |> Array.exists (fun r -> f.EndsWith $"starts-{r}")))) "no other run")
        }

        test "scontrol requeue JOBID_TASK of a running task runs it again, and Wait follows it" {
            withCluster SlurmFixture.defaults (fun cluster ->
                use temp = new TempFolder "vae-slurm-requeue-"
                // First start: keep running (bounded, 60 s) until killed; a later start: done at once.
                let fake = fakeVae temp.Path "if [ $(wc -l < \"$DIR/starts-$I\") -eq 1 ]; then for s in $(seq 1 600); do sleep 0.1; done; exit 7; fi\nexit 0"
                let ids = SlurmExecutor.Submit(temp.Path, [| 4 |], 1, S(1, null, []), fake)
                let task = $"{ids[0]}_0"
                waitUntil 60.0 "the task starts" (fun () -> (lines (temp.File "starts-4")).Length = 1 && (squeueStates cluster task).Contains "RUNNING")
                let code, _, err = SlurmFixture.run cluster ("scontrol", [ "requeue"; task ])
                Expect.equal code 0 $"scontrol requeue {task} (stderr {err})"
                Expect.isTrue (SlurmExecutor.Wait(temp.Path, ids, poll, null, TimeSpan.FromSeconds 180.0)) "the requeued task ends with exit 0"
                Expect.equal (lines (temp.File "starts-4")).Length 2 "the run started twice"
                let log = File.ReadAllText(temp.File $"slurm/{task}.log")
                Expect.equal (log.Split("vae sweep: run 4 as task").Length - 1) 2 $"the log (appended) shows both starts: {log}")
        }

        test "the time-limit signal (USR1) stops the task, which requeues itself and resumes" {
            withCluster SlurmFixture.defaults (fun cluster ->
                use temp = new TempFolder "vae-slurm-usr1-"
                // Like the trainer: SIGTERM stops at the end of the epoch (exit 0) on the first start; a later start finishes.
                let fake = fakeVae temp.Path "if [ $(wc -l < \"$DIR/starts-$I\") -eq 1 ]; then trap 'echo stopped >> \"$DIR/stopped-$I\"; exit 0' TERM; for s in $(seq 1 600); do sleep 0.1; done; exit 7; fi\necho done >> \"$DIR/done-$I\"; exit 0"
                let ids = SlurmExecutor.Submit(temp.Path, [| 2 |], 1, S(1, null, []), fake)
                let task = $"{ids[0]}_0"
                waitUntil 60.0 "the task starts" (fun () -> (lines (temp.File "starts-2")).Length = 1 && (squeueStates cluster task).Contains "RUNNING")
                // What Slurm does SignalLeadSeconds before the time limit (--signal=B:USR1@120).
                let code, _, err = SlurmFixture.run cluster ("scancel", [ "--batch"; "--signal=USR1"; task ])
                Expect.equal code 0 $"scancel --batch --signal=USR1 {task} (stderr {err})"
                Expect.isTrue (SlurmExecutor.Wait(temp.Path, ids, poll, null, TimeSpan.FromSeconds 180.0)) "the task comes back and ends with exit 0"
                Expect.equal (lines (temp.File "stopped-2")) [| "stopped" |] "the task was stopped by SIGTERM"
                Expect.equal (lines (temp.File "starts-2")).Length 2 "then started again"
                Expect.equal (lines (temp.File "done-2")) [| "done" |] "and finished")
        }
    ]

/// The Slurm tests: the script alone, then on a private cluster.
let tests = testList "Slurm" [ scriptTests; clusterTests ]
