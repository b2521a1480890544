module VaeResearch.Regression.SweepTests

// Sweeps end to end through the CLI (`dotnet vae.dll sweep ...`) on synthetic data: two sweeps on one
// folder train each run once; a SIGKILLed sweep run again ends bit-identical to an uninterrupted one;
// status, dry run, table and the refusal of a changed spec; SIGTERM stops `vae train` at the end of an
// epoch with exit code 75; `vae train --config` and `--resume` on an empty folder; the saved campaigns'
// tables against `vae sweep table` and REPRODUCTION.md.

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open VaeResearch.Experiments
open VaeResearch.Training
open VaeResearch.TestSupport
open VaeResearch.Regression.CliTests

/// A 4-run synthetic sweep (2 latent sizes x 2 seeds), `epochs` epochs each, evaluated with L_10.
let private spec (epochs: int) (lr: string) =
    $"""name = "sweep-test"
description = "two latent sizes, two seeds"
[base]
dataset = "synthetic"
hidden = "32"
epochs = {epochs}
lr = {lr}
train_subset = 2000
test_subset = 200
[grid]
latent = [4, 8]
seed = [1, 2]
[eval]
k = 10
subset = 100
[table]
rows = ["latent"]
columns = ["model"]
value = "nll"
annotate = "active_units"
[[published]]
where = {{ latent = 4 }}
value = 500.0
"""

/// Writes the spec into the folder and returns its path.
let private writeSpec (folder: TempFolder) (name: string) (text: string) =
    let path = folder.File name
    File.WriteAllText(path, text)
    path

/// Starts `dotnet vae.dll ARGS` without waiting (output discarded).
let private start (args: string list) =
    let psi = ProcessStartInfo("dotnet", UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
    psi.ArgumentList.Add vaeDll
    for a in args do psi.ArgumentList.Add a
    let p = nonNull (Process.Start psi)
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p

/// Waits for a process, at most `seconds`; a process still running then is killed and fails the test.
let private finish (seconds: int) (p: Process) =
    if not (p.WaitForExit(TimeSpan.FromSeconds(float seconds))) then
        p.Kill true
        failtestf "a vae process did not finish within %d s" seconds
    p.ExitCode

/// The epochs listed in a run's metrics.csv.
let private epochsOf (runDir: string) =
    RunCsv.ReadMetrics(Path.Combine(runDir, "metrics.csv")) |> Seq.map (fun r -> r.Epoch) |> List.ofSeq

let private runDirs (sweep: string) = SweepPlan.Load(sweep).Runs |> Seq.map (fun r -> SweepStatus.RunDir(sweep, r)) |> List.ofSeq

/// The repository (paper-results/ holds the specs and the saved runs).
let private repoRoot = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, "..", ".."))

let tests =
    testList "Sweep" [

        testCase "paper-results/specs/seed-runs.toml plans exactly the configurations of the saved runs" <| fun () ->
            let plan = SweepPlan.Expand(SweepSpec.Load(Path.Combine(repoRoot, "paper-results", "specs", "seed-runs.toml")), 2)
            let saved =
                Directory.GetDirectories(Path.Combine(repoRoot, "paper-results", "runs"))
                |> Array.map (fun d -> SweepPlan.Hash(RunFolder.Open(d).ReadConfig()), Path.GetFileName d)
                |> Map.ofArray
            Expect.equal plan.Runs.Count saved.Count "one planned run per saved run"
            for run in plan.Runs do
                Expect.isTrue (saved.ContainsKey run.Hash) $"{run.Name} (hash {run.Hash}) is one of the saved runs {saved}"

        testCase "two sweeps started together on one folder train each run exactly once" <| fun () ->
            use folder = new TempFolder("vae-sweep-twice-")
            let specPath = writeSpec folder "spec.toml" (spec 3 "0.001")
            let out = folder.Sub "sweep"
            let a = start [ "sweep"; "run"; specPath; "--out"; out; "--workers"; "2" ]
            let b = start [ "sweep"; "run"; specPath; "--out"; out; "--workers"; "2" ]
            Expect.equal (finish 600 a, finish 600 b) (0, 0) "both sweeps succeed"
            let logs = Directory.GetFiles(Path.Combine(out, "logs")) |> Array.map File.ReadAllText |> String.concat "\n"
            for dir in runDirs out do
                Expect.equal (epochsOf dir) [ 1; 2; 3 ] $"{dir}: epochs 1..3, once each"
                let name = Path.GetFileName dir
                let starts = logs.Split('\n') |> Array.filter (fun l -> l.Contains $": {name}: 3 epochs") |> Array.length
                Expect.equal starts 1 $"{name} was trained by exactly one worker"
            let status = succeeds [ "sweep"; "status"; out ]
            Expect.stringContains status.Stdout "4 done of 4 runs" "status"

        testCase "a SIGKILLed sweep run again ends bit-identical to an uninterrupted sweep" <| fun () ->
            use folder = new TempFolder("vae-sweep-kill-")
            let specPath = writeSpec folder "spec.toml" (spec 6 "0.001")
            let straight = folder.Sub "straight"
            let killed = folder.Sub "killed"
            succeeds [ "sweep"; "run"; specPath; "--out"; straight; "--workers"; "2" ] |> ignore
            let p = start [ "sweep"; "run"; specPath; "--out"; killed; "--workers"; "2" ]
            // Kill the sweep and its workers (a lost machine) once some run has two epochs on disk.
            let deadline = DateTime.UtcNow.AddMinutes 5.0
            let twoEpochs () =
                Directory.Exists(Path.Combine(killed, "runs"))
                && Directory.GetDirectories(Path.Combine(killed, "runs"))
                   |> Array.exists (fun d -> File.Exists(Path.Combine(d, "metrics.csv")) && (try (epochsOf d).Length >= 2 with _ -> false))
            while not (twoEpochs ()) && not p.HasExited && DateTime.UtcNow < deadline do
                Threading.Thread.Sleep 50
            Expect.isFalse p.HasExited "the sweep was still running when it was killed"
            p.Kill true
            p.WaitForExit()
            // The workers die with the sweep (Kill of the process tree); give the kernel a bounded moment to drop their locks.
            let held () = SweepStatus.Of(killed, SweepPlan.Load killed) |> Seq.exists (fun s -> s.State = RunState.Running)
            let settle = DateTime.UtcNow.AddSeconds 10.0
            while held () && DateTime.UtcNow < settle do
                Threading.Thread.Sleep 50
            let before = SweepStatus.Of(killed, SweepPlan.Load killed)
            Expect.isTrue (before |> Seq.exists (fun s -> s.State <> RunState.Done)) "the kill left work to do"
            Expect.isTrue (before |> Seq.forall (fun s -> s.State <> RunState.Running)) "no run is held after the kill"
            succeeds [ "sweep"; "run"; specPath; "--out"; killed; "--workers"; "2" ] |> ignore
            for a, b in List.zip (runDirs straight) (runDirs killed) do
                Expect.equal (epochsOf b) [ 1 .. 6 ] $"{b}: every epoch once"
                Expect.isTrue (File.ReadAllBytes(Path.Combine(a, "checkpoint.safetensors")) = File.ReadAllBytes(Path.Combine(b, "checkpoint.safetensors")))
                    $"{Path.GetFileName b}: the same final checkpoint, bit for bit"
                let eval (dir: string) = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json"))).RootElement.GetProperty("nll").GetDouble()
                Expect.equal (eval b) (eval a) $"{Path.GetFileName b}: the same L_10"

        testCase "a dry run shows a run whose model cannot be built as unknown, and counts the others" <| fun () ->
            use folder = new TempFolder("vae-sweep-cost-")
            let specPath =
                writeSpec folder "unbuildable.toml" "name = \"unbuildable\"\ndescription = \"no mixture of 40 one-unit VAEs matches\"\n[base]\n\
                                                      dataset = \"synthetic\"\nhidden = \"2\"\nlatent = 40\nepochs = 1\n\
                                                      [[variants]]\nmodel = \"mvae\"\nepitome_size = 1\n[[variants]]\nmodel = \"vae\"\n"
            let dry = succeeds [ "sweep"; "run"; specPath; "--out"; folder.Sub "out"; "--dry-run"; "--rate"; "1e-6" ]
            let vaeRun = SweepPlan.Expand(SweepSpec.Load specPath, 1).Runs.[1]
            let hours = RunCost.Of(vaeRun.Config, Nullable()).Total / 1000.0 / 3600.0
            Expect.stringContains dry.Stdout "start       0        ? h  model=mvae,epitome_size=1" "the mVAE's cost is unknown"
            Expect.stringContains dry.Stdout $"compute still needed: {hours:F1} core-hours" "the VAE alone is counted"
            Expect.stringContains dry.Stdout "not counted: 1 of the runs (?), whose model cannot be built" "and the total says so"

        testCase "status, dry run, --only and table of a finished sweep; a changed spec is refused before anything runs" <| fun () ->
            use folder = new TempFolder("vae-sweep-cli-")
            let specPath = writeSpec folder "spec.toml" (spec 1 "0.001")
            let out = folder.Sub "sweep"
            // At 1,000 multiply-adds a second the tiny runs take hours: each line and the total show RunCost's count.
            let dry = succeeds [ "sweep"; "run"; specPath; "--out"; out; "--dry-run"; "--rate"; "1e-6" ]
            Expect.stringContains dry.Stdout "4 runs, 0 done, 4 to run" "dry run before"
            Expect.isFalse (Directory.Exists out) "a dry run writes nothing"
            let plan = SweepPlan.Expand(SweepSpec.Load specPath, 1)
            let hours (config: TrainConfig) = RunCost.Of(config, Nullable 10, EvaluationBudget.PerEpitome, Nullable 100).Total / 1000.0 / 3600.0
            for run in plan.Runs do
                Expect.stringContains dry.Stdout $"start    {run.Index,4}  {hours run.Config,7:F1} h  {run.Name}" $"run {run.Index}'s estimate"
            Expect.stringContains dry.Stdout $"compute still needed: {plan.Runs |> Seq.sumBy (fun r -> hours r.Config):F1} core-hours" "the total"
            Expect.stringContains (fails [ "sweep"; "run"; specPath; "--out"; out; "--dry-run"; "--rate"; "0" ]).Stderr "--rate must be > 0" "no rate"
            let pending = vae [ "sweep"; "status"; out ]
            Expect.notEqual pending.ExitCode 0 "status of a folder without sweep.json fails"
            // --only trains the chosen runs and plans all of them; an index outside the plan is refused before anything runs.
            let outside = fails [ "sweep"; "run"; specPath; "--out"; out; "--only"; "1,4" ]
            Expect.stringContains outside.Stderr "--only 4: sweep-test has runs 0 to 3" "the refusal names the index and the plan's range"
            Expect.isFalse (Directory.Exists out) "nothing was written"
            let chosen = succeeds [ "sweep"; "run"; specPath; "--out"; out; "--only"; "3,1" ]
            Expect.stringContains chosen.Stdout "4 runs (2 chosen by --only), 0 done, 2 to run" "the summary"
            let states = (vae [ "sweep"; "status"; out; "--json" ]).Stdout |> JsonDocument.Parse
            let stateOf =
                [ for r in states.RootElement.GetProperty("runs").EnumerateArray() -> r.GetProperty("index").GetInt32(), r.GetProperty("state").GetString() ]
            Expect.equal stateOf [ 0, "pending"; 1, "done"; 2, "pending"; 3, "done" ] "runs 1 and 3 trained, 0 and 2 still pending"
            let rest = succeeds [ "sweep"; "run"; specPath; "--out"; out ]
            Expect.stringContains rest.Stdout "4 runs, 2 done, 2 to run" "a plain run trains the others"
            let again = succeeds [ "sweep"; "run"; specPath; "--out"; out; "--dry-run" ]
            Expect.equal (again.Stdout.Split('\n') |> Array.filter (fun l -> l.TrimStart().StartsWith "skip") |> Array.length) 4 "every run skipped"
            use status = JsonDocument.Parse((succeeds [ "sweep"; "status"; out; "--json" ]).Stdout)
            Expect.equal (status.RootElement.GetProperty("totals").GetProperty("done").GetInt32()) 4 "status --json totals"
            // Each run's rate is its count over the seconds its metrics.csv records (one thread), in the text and the JSON.
            let text = (succeeds [ "sweep"; "status"; out ]).Stdout
            for run, json in Seq.zip plan.Runs (status.RootElement.GetProperty("runs").EnumerateArray()) do
                let metrics = RunCsv.ReadMetrics(Path.Combine(SweepStatus.RunDir(out, run), "metrics.csv"))
                let expected = float (RunCost.Of(run.Config, Nullable()).Total) / (metrics |> Seq.sumBy (fun m -> m.Seconds))
                Expect.floatClose Accuracy.veryHigh (json.GetProperty("multiply_adds_per_second_per_core").GetDouble()) expected $"run {run.Index}'s rate"
                Expect.stringContains text $"done     {run.Name}  {expected / 1e9:F1} G multiply-adds/s per core" $"run {run.Index}'s rate in the text"
            let table = succeeds [ "sweep"; "table"; out ]
            Expect.stringContains table.Stdout "| latent |" "the table's header"
            Expect.stringContains table.Stdout "[paper 500" "the published value"
            Expect.isTrue (File.Exists(Path.Combine(out, "table.csv"))) "table.csv"
            let specTable = File.ReadAllText(Path.Combine(out, "table.md"))
            let bounds = succeeds [ "sweep"; "table"; out; "--value"; "test_bound"; "--threshold"; "0.5" ]
            Expect.stringContains bounds.Stdout "Value: test_bound; in parentheses:" "another value"
            Expect.stringContains bounds.Stdout "activity threshold: 0.5." "another threshold"
            Expect.isFalse (bounds.Stdout.Contains "[paper 500") "no published values of another quantity"
            Expect.isTrue (File.Exists(Path.Combine(out, "table-test_bound-threshold-0.5.csv"))) "written under a name that says what changed"
            Expect.equal (File.ReadAllText(Path.Combine(out, "table.md"))) specTable "the spec's table is left as it was"
            let wrong = fails [ "sweep"; "table"; out; "--value"; "elbo" ]
            Expect.stringContains wrong.Stderr "--value: expected one of nll" "an unknown value is named"
            let figures = succeeds [ "sweep"; "figures"; out ]
            Expect.stringContains figures.Stderr "wrote 9 figures" "active units per epoch, and each run's shade plot and sorted units"
            Expect.stringContains (File.ReadAllText(Path.Combine(out, "figures", "figures.md"))) "Runs left out: none." "figures.md"
            // The same folders with another learning rate: refused, and nothing is touched.
            let checkpoint = Path.Combine(List.head (runDirs out), "checkpoint.safetensors")
            let bytes = File.ReadAllBytes checkpoint
            let changed = writeSpec folder "changed.toml" (spec 1 "0.002")
            let refused = fails [ "sweep"; "run"; changed; "--out"; out ]
            Expect.stringContains refused.Stderr "another configuration" "the refusal says why"
            Expect.equal (File.ReadAllBytes checkpoint) bytes "the run is left as it was"
            // A broken run folder is listed under the table, not fatal.
            File.WriteAllText(Path.Combine(List.last (runDirs out), "metrics.csv"), "epoch,lr\n1,x\n")
            let table = succeeds [ "sweep"; "table"; out ]
            Expect.stringContains table.Stdout "Skipped runs:" "skipped list"
            Expect.stringContains table.Stdout (nonNull (Path.GetFileName(List.last (runDirs out)))) "names the broken run"
            let figs = folder.Sub "figs"
            succeeds [ "sweep"; "figures"; out; "--out"; figs ] |> ignore
            Expect.stringContains (File.ReadAllText(Path.Combine(figs, "figures.md"))) $"- {Path.GetFileName(List.last (runDirs out))}: " "the broken run is left out, with the reason"
            // A trained run whose evaluation is still to come: its hours to go are its L_10's count at the rate it reached.
            File.Delete(Path.Combine(List.head (runDirs out), ".done.json"))
            use partial = JsonDocument.Parse((vae [ "sweep"; "status"; out; "--json" ]).Stdout)
            let first = partial.RootElement.GetProperty("runs").[0]
            Expect.equal (first.GetProperty("state").GetString()) "partial" "without its .done.json"
            let evaluation = RunCost.Of(plan.Runs.[0].Config, Nullable 10, EvaluationBudget.PerEpitome, Nullable 100, completedEpochs = 1)
            Expect.equal evaluation.Training 0.0 "nothing left to train"
            Expect.floatClose Accuracy.veryHigh (first.GetProperty("hours_to_go").GetDouble())
                (evaluation.Total / first.GetProperty("multiply_adds_per_second_per_core").GetDouble() / 3600.0) "hours to go"
            Expect.equal (partial.RootElement.GetProperty("runs").[1].GetProperty("hours_to_go").ValueKind) JsonValueKind.Null "a done run has none"

        testCase "every spec in paper-results/specs expands to the paper's grid, and every model builds" <| fun () ->
            // The runs each table or figure describes (see the comments at the top of each spec).
            let expected =
                [ "seed-runs", 7                 // the seven saved runs
                  "burda2015-table1", 5          // VAE k = 1; IWAE k = 5, 50; VAE trained with k = 5, 50
                  "burda2015-table1-code", 4     // Table 1's VAE x (scale head: log variance, log std) x (adam, burda_adam)
                  "yeung2017-table2", 6          // VAE and eVAE at D = 50, 100, 200
                  "yeung2017-table2-defaults", 6 // the first attempt at Table 2, on the library's defaults
                  "yeung2017-table2-protocol", 21 // 7 settings of the D = 50 VAE x 3 seeds
                  "yeung2017-table2-kl", 12      // (VAE, eVAE) x (analytic, Monte-Carlo KL) x 3 seeds
                  "yeung2017-table4", 90         // 3 D x 6 architectures x (VAE + mVAE, eVAE x K = 3, 4)
                  "yeung2017-fig7", 27           // 3 D x (VAE + eVAE, mVAE x K = 2, 3, 4, 8)
                  "yeung2017-fig1-3", 5          // KL weight 1, 0.5, 0.2; dropout 0.5; eVAE
                  "bettencourt-figures", 30 ]    // (2 decoders + 6 n_z + batch norm + warm-up) x 3 seeds
            let specs = Directory.GetFiles(Path.Combine(repoRoot, "paper-results", "specs"), "*.toml") |> Array.map Path.GetFileNameWithoutExtension |> Array.sort
            Expect.equal specs (expected |> List.map fst |> List.toArray |> Array.sort) "one count per spec"
            let plan name = SweepPlan.Expand(SweepSpec.Load(Path.Combine(repoRoot, "paper-results", "specs", name + ".toml")), 1)
            for name, count in expected do
                let plan = plan name
                Expect.equal plan.Runs.Count count $"{name}: runs"
                Expect.isSome (Option.ofObj plan.Table) $"{name}: has a [table]"
                for run in plan.Runs do
                    // The model factory's own checks (the mVAE's parameter match, the epitome layout) pass too.
                    ModelFactory.Build(run.Config, 784, VaeResearch.Engine.Rng(run.Config.Seed, TrainStreams.Init)) |> ignore
            // burda2015-table1-code's first run is Table 1's k = 1 run, so that its finished folder can be copied in.
            Expect.equal (plan "burda2015-table1-code").Runs[0].Hash (plan "burda2015-table1").Runs[0].Hash "the same configuration hash"
            // The first attempt's spec plans the runs its saved campaign holds, so that a queue resumes them.
            let saved = SweepPlan.Load(Path.Combine(repoRoot, "paper-results", "campaign", "yeung2017-table2-defaults"))
            Expect.sequenceEqual [ for r in (plan "yeung2017-table2-defaults").Runs -> r.Name, r.Hash ] [ for r in saved.Runs -> r.Name, r.Hash ]
                "yeung2017-table2-defaults: the saved campaign's runs"

        testCase "every table of the saved campaigns is what vae sweep table builds from their runs, and REPRODUCTION.md shows them as saved" <| fun () ->
            let campaigns = Directory.GetDirectories(Path.Combine(repoRoot, "paper-results", "campaign")) |> Array.sort
            Expect.isNonEmpty campaigns "saved campaigns"
            use folder = new TempFolder("vae-sweep-saved-tables-")
            let saved =
                [ for campaign in campaigns do
                      let tables = Directory.GetFiles(campaign, "table*.md") |> Array.sort
                      Expect.isNonEmpty tables $"{campaign}: campaign.sh save writes table.md"
                      for md in tables ->
                          // The options are in the name (SweepTable.defaultPath): table[-VALUE][-annotate-A][-threshold-T].md
                          let rec options (parts: string list) =
                              match parts with
                              | [] -> []
                              | "annotate" :: a :: rest -> "--annotate" :: a :: options rest
                              | "threshold" :: t -> [ "--threshold"; String.Join("-", t) ]
                              | value :: rest -> "--value" :: value :: options rest
                          let name = nonNull (Path.GetFileNameWithoutExtension md)
                          let campaignName = nonNull (Path.GetFileName campaign)
                          let args = options (name.Split('-') |> List.ofArray |> List.tail)
                          let out = Path.Combine(folder.Path, campaignName + "-" + name + ".md")
                          succeeds ([ "sweep"; "table"; campaign; "--out"; out ] @ args) |> ignore
                          let label = $"{campaignName}/{name} (vae sweep table {String.Join(' ', args)})"
                          Expect.equal (File.ReadAllText out) (File.ReadAllText md) $"{label}: the saved Markdown"
                          Expect.equal (File.ReadAllText(nonNull (Path.ChangeExtension(out, ".csv")))) (File.ReadAllText(nonNull (Path.ChangeExtension(md, ".csv"))))
                              $"{label}: the saved CSV"
                          File.ReadAllText md ]
            // Each table in REPRODUCTION.md is one of those, line for line, except the two written by hand.
            let written = set [ "| spec | runs | per run | total | status |"; "| share | what |" ]
            let lines = File.ReadAllLines(Path.Combine(repoRoot, "paper-results", "REPRODUCTION.md")) |> List.ofArray
            let rec blocks (lines: string list) =
                match lines |> List.skipWhile (fun l -> not (l.StartsWith "|")) with
                | [] -> []
                | rest -> (rest |> List.takeWhile (fun l -> l.StartsWith "|")) :: blocks (rest |> List.skipWhile (fun l -> l.StartsWith "|"))
            let shown = blocks lines |> List.filter (fun b -> not (written.Contains b.Head))
            Expect.isGreaterThanOrEqual shown.Length 5 "Tables 1 and 2, the protocol study, Figures 1-3 twice"
            for block in shown do
                let text = String.Join("\n", block) + "\n"
                Expect.isTrue (saved |> List.exists (fun md -> md.Contains text)) $"REPRODUCTION.md's table is a saved campaign table:\n{text}"

        testCase "a 4-run sweep on Slurm runs as one array, every run done, with its table" <| fun () ->
            SlurmTests.withCluster SlurmFixture.defaults (fun _ ->
                use folder = new TempFolder("vae-sweep-slurm-")
                let specPath = writeSpec folder "spec.toml" (spec 2 "0.001")
                let out = folder.Sub "sweep"
                let o = succeeds [ "sweep"; "run"; specPath; "--out"; out; "--executor"; "slurm"; "--workers"; "2"; "--wait" ]
                Expect.stringContains o.Stdout "submitted 4 runs as Slurm job" "one submission"
                let script = File.ReadAllText(Path.Combine(out, "slurm", "array.sbatch"))
                Expect.stringContains script "#SBATCH --array=0-3%2" "one array of 4 tasks, 2 at a time"
                Expect.stringContains (succeeds [ "sweep"; "status"; out ]).Stdout "4 done of 4 runs" "every run done"
                Expect.stringContains (succeeds [ "sweep"; "table"; out ]).Stdout "| latent |" "the table")

        testCase "scontrol requeue of a running Slurm task resumes its run to the same final checkpoint" <| fun () ->
            SlurmTests.withCluster SlurmFixture.defaults (fun cluster ->
                use folder = new TempFolder("vae-sweep-requeue-")
                let oneRun = (spec 12 "0.001").Replace("latent = [4, 8]", "latent = [4]").Replace("seed = [1, 2]", "seed = [1]")
                let specPath = writeSpec folder "spec.toml" oneRun
                let straight = folder.Sub "straight"
                succeeds [ "sweep"; "run"; specPath; "--out"; straight ] |> ignore
                let out = folder.Sub "slurm"
                let o = succeeds [ "sweep"; "run"; specPath; "--out"; out; "--executor"; "slurm" ]
                let job = o.Stdout.Split(' ', '\n') |> Array.skipWhile (fun w -> w <> "job") |> Array.item 1
                let task = $"{job.Trim()}_0"
                let runDir = List.head (runDirs out)
                SlurmTests.waitUntil 120.0 "the task has trained an epoch" (fun () ->
                    File.Exists(Path.Combine(runDir, "metrics.csv")) && (try (epochsOf runDir).Length >= 1 with _ -> false))
                let code, _, err = SlurmFixture.run cluster ("scontrol", [ "requeue"; task ])
                Expect.equal code 0 $"scontrol requeue {task} (stderr {err})"
                Expect.isLessThan (epochsOf runDir).Length 12 "requeued part-way"
                SlurmTests.waitUntil 300.0 "the requeued run is done" (fun () -> (vae [ "sweep"; "status"; out ]).ExitCode = 0)
                let log = Directory.GetFiles(Path.Combine(out, "slurm"), "*.log") |> Array.map File.ReadAllText |> String.concat "\n"
                Expect.stringContains log "resuming after epoch" "the second start resumed from the checkpoint"
                Expect.equal (epochsOf runDir) [ 1 .. 12 ] "every epoch once"
                let checkpoint dir = File.ReadAllBytes(Path.Combine(dir, "checkpoint.safetensors"))
                Expect.isTrue (checkpoint runDir = checkpoint (List.head (runDirs straight))) "the same final checkpoint as an uninterrupted run")

        testCase "SIGTERM stops vae train at the end of an epoch with exit code 75, and --resume finishes it" <| fun () ->
            use folder = new TempFolder("vae-sweep-sigterm-")
            let run = folder.Sub "run"
            let args = [ "train"; "--out"; run; "--dataset"; "synthetic"; "--latent"; "4"; "--hidden"; "32"; "--epochs"; "200"; "--train-subset"; "2000"; "--test-subset"; "200"; "--threads"; "1" ]
            let p = start args
            let deadline = DateTime.UtcNow.AddMinutes 3.0
            while not (File.Exists(Path.Combine(run, "checkpoint.safetensors"))) && not p.HasExited && DateTime.UtcNow < deadline do
                Threading.Thread.Sleep 20
            Expect.isFalse p.HasExited "training was still running"
            use kill = Process.Start("kill", [ "-TERM"; string p.Id ])
            kill.WaitForExit()
            Expect.equal (finish 120 p) 75 "exit code 75: stopped, resumable"
            let epochs = epochsOf run
            Expect.isLessThan epochs.Length 200 "stopped early"
            Expect.equal (RunFolder.Open(run).ReadConfig().Epochs) 200 "the configuration keeps the planned epochs"
            succeeds [ "train"; "--out"; run; "--resume"; "--threads"; "1"; "--epochs"; string (epochs.Length + 1) ] |> ignore
            Expect.equal (epochsOf run) [ 1 .. epochs.Length + 1 ] "resumed after the last saved epoch"

        testCase "train --config takes a run's settings; --resume on an empty folder starts the run" <| fun () ->
            use folder = new TempFolder("vae-sweep-config-")
            let first = folder.Sub "first"
            succeeds [ "train"; "--out"; first; "--dataset"; "synthetic"; "--latent"; "3"; "--hidden"; "16"; "--epochs"; "1"; "--train-subset"; "500"; "--test-subset"; "100"; "--lr"; "0.002"; "--threads"; "1" ] |> ignore
            let second = folder.Sub "second"
            let o = succeeds [ "train"; "--out"; second; "--config"; Path.Combine(first, "config.json"); "--resume"; "--threads"; "1" ]
            Expect.stringContains o.Stderr "holds no run yet: starting it" "--resume on an empty folder"
            let settings (run: string) = SweepPlan.Hash(RunFolder.Open(run).ReadConfig())
            Expect.equal (settings second) (settings first) "the same settings"
            Expect.isTrue (File.ReadAllBytes(Path.Combine(first, "checkpoint.safetensors")) = File.ReadAllBytes(Path.Combine(second, "checkpoint.safetensors")))
                "the same weights"
            let third = folder.Sub "third"
            succeeds [ "train"; "--out"; third; "--config"; Path.Combine(first, "config.json"); "--lr"; "0.001"; "--threads"; "1" ] |> ignore
            Expect.equal (RunFolder.Open(third).ReadConfig().Lr) 0.001 "an option given as well overrides the file"
            let burda = folder.Sub "burda"
            succeeds [ "train"; "--out"; burda; "--config"; Path.Combine(first, "config.json"); "--optimizer"; "burda_adam"; "--threads"; "1" ] |> ignore
            Expect.equal (RunFolder.Open(burda).ReadConfig().AdamBeta1) 0.99 "burda_adam without --adam-beta1 records beta1 = 0.99"
    ]
