module VaeResearch.Properties.SweepTests

// Properties of sweep specs and their expansion (src/Core.CSharp/Experiments):
//   1. the number of runs is the sum over variants of the grid products; names are unique and do not
//      depend on the order of the keys in the file; a plan round-trips through sweep.json;
//   2. every mistake in a spec names the file, the line and the key, before anything runs.

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open VaeResearch
open VaeResearch.Experiments
open VaeResearch.TestSupport

/// FsCheck (seed, gamma) every property of this module replays.
let private Seed = (20261201UL, 15485863UL)

/// Settings a generated spec may sweep, each with values that are valid for any combination.
let private axes =
    [ "latent", [ "4"; "8"; "16"; "24" ]
      "seed", [ "1"; "2"; "3" ]
      "lr", [ "0.001"; "0.0003"; "0.0001" ]
      "batch", [ "20"; "100"; "50" ]
      "activation", [ "\"relu\""; "\"tanh\""; "\"softplus\"" ]
      "hidden", [ "\"200,200\""; "\"500\""; "\"64\"" ] ]

/// A generated spec: grid axes (key, values) and variants (each a list of key, values); no key is both a
/// grid axis and a variant setting.
type private GeneratedSpec = { Grid: (string * string list) list; Variants: (string * string list) list list }

let private genSpec =
    gen {
        let! shuffled = Gen.shuffle (Array.ofList axes)
        let! gridCount = Gen.choose (0, 3)
        let chosen (key, values: string list) = gen {
            let! n = Gen.choose (1, values.Length)
            return key, List.truncate n values }
        let! grid = shuffled |> Array.take gridCount |> Array.toList |> List.map chosen |> Gen.sequenceToList
        let rest = shuffled |> Array.skip gridCount |> Array.toList
        let! variantCount = Gen.choose (0, 3)
        let! variants =
            Gen.listOfLength variantCount (gen {
                let! keys = Gen.choose (0, min 2 rest.Length)
                let! picked = Gen.shuffle (Array.ofList rest)
                return! picked |> Array.take keys |> Array.toList |> List.map chosen |> Gen.sequenceToList })
        // Each variant has its own KL weight, so two variants never expand to the same runs.
        let variants = variants |> List.mapi (fun i v -> ("kl_weight", [ $"0.{i + 5}" ]) :: v)
        return { Grid = grid; Variants = variants }
    }

/// TOML text of a generated spec; `reverse` writes every table's keys in the opposite order.
let private toml (spec: GeneratedSpec) (reverse: bool) =
    let order xs = if reverse then List.rev xs else xs
    let line (key, values: string list) = $"""{key} = [{String.Join(", ", values)}]"""
    [ yield "name = \"generated\""
      yield "[base]"
      yield! order [ "dataset = \"synthetic\""; "epochs = 1"; "train_subset = 100" ]
      yield "[grid]"
      yield! order spec.Grid |> List.map line
      for v in spec.Variants do
          yield "[[variants]]"
          yield! order v |> List.map line ]
    |> String.concat "\n"

let private expand (text: string) = SweepPlan.Expand(SweepSpec.Parse(text, "generated.toml"), 1)

/// The runs the spec should give: the sum over variants of the product of the axis sizes.
let private expectedCount (spec: GeneratedSpec) =
    let product axes = axes |> List.fold (fun n (_, values: string list) -> n * values.Length) 1
    let variants = if spec.Variants.IsEmpty then [ [] ] else spec.Variants
    variants |> List.sumBy (fun v -> product spec.Grid * product v)

/// The spec error of a TOML text.
let private specError (text: string) = throws<SpecException> (fun () -> expand text |> ignore)

let tests =
    testList "Sweeps" [

        property Seed 150 "a spec expands to the sum over variants of the grid products, with unique names" <| fun () ->
            Prop.forAll (Arb.fromGen genSpec) (fun spec ->
                let plan = expand (toml spec false)
                let names = plan.Runs |> Seq.map (fun r -> r.Name) |> Seq.toList
                plan.Runs.Count = expectedCount spec
                && (names |> List.distinct |> List.length) = names.Length
                && (plan.Runs |> Seq.mapi (fun i r -> r.Index = i) |> Seq.forall id))

        property Seed 150 "names and hashes do not depend on the order of the keys in the file" <| fun () ->
            Prop.forAll (Arb.fromGen genSpec) (fun spec ->
                let runs (plan: SweepPlan) = plan.Runs |> Seq.map (fun r -> r.Name, r.Hash) |> Set.ofSeq
                runs (expand (toml spec false)) = runs (expand (toml spec true)))

        property Seed 60 "a plan round-trips through sweep.json" <| fun () ->
            Prop.forAll (Arb.fromGen genSpec) (fun spec ->
                use folder = new TempFolder("vae-sweep-plan-")
                let plan = expand (toml spec false)
                plan.Save folder.Path
                let loaded = SweepPlan.Load folder.Path
                let key (p: SweepPlan) =
                    p.Name, p.ThreadsPerRun, p.Eval, [ for r in p.Runs -> r.Index, r.Name, r.Hash, SweepPlan.Hash r.Config ]
                key loaded = key plan && loaded.ToJson().ToJsonString() = plan.ToJson().ToJsonString())

        testCase "a spec's base settings choose the backend and device of every run; a bad one names the key" <| fun () ->
            let plan = expand "name = \"t\"\n[base]\ndataset = \"synthetic\"\nbackend = \"torch\"\ndevice = \"cuda:1\"\n[grid]\nseed = [1, 2]"
            Expect.sequenceEqual [ for r in plan.Runs -> r.Config.Backend, r.Config.Device ] [ "torch", "cuda:1"; "torch", "cuda:1" ] "backend and device"
            let e = specError "name = \"t\"\n[base]\nbackend = \"jax\""
            Expect.equal (e.Key, e.Line) ("base.backend", 3) "the key and its line"
            Expect.stringContains e.Message "native or torch" "the valid values"

        testCase "the settings of each run are base, then its grid and variant values" <| fun () ->
            let plan =
                expand "name = \"t\"\n[base]\ndataset = \"synthetic\"\nlatent = 3\nepochs = 2\n[grid]\nseed = [1, 2]\n[[variants]]\nmodel = \"vae\"\n[[variants]]\nmodel = \"evae\"\nlatent = 4\nepitome_size = [2, 4]"
            let summary = [ for r in plan.Runs -> r.Name, r.Config.Model, r.Config.Latent, Option.ofNullable r.Config.EpitomeSize, r.Config.Seed, r.Config.Epochs ]
            let vae, evae = Training.ModelKind.Vae, Training.ModelKind.Evae
            Expect.equal summary
                [ "model=vae,latent=3,seed=1", vae, 3, None, 1UL, 2
                  "model=vae,latent=3,seed=2", vae, 3, None, 2UL, 2
                  "model=evae,latent=4,epitome_size=2,seed=1", evae, 4, Some 2, 1UL, 2
                  "model=evae,latent=4,epitome_size=4,seed=1", evae, 4, Some 4, 1UL, 2
                  "model=evae,latent=4,epitome_size=2,seed=2", evae, 4, Some 2, 2UL, 2
                  "model=evae,latent=4,epitome_size=4,seed=2", evae, 4, Some 4, 2UL, 2 ]
                "runs in grid order, named by the settings that vary"
            Expect.equal ((nonNull plan.Runs[2].Settings["latent"]).ToJsonString()) "4" "the variant's value overrides [base]"
            let burda = expand "name = \"b\"\n[grid]\noptimizer = [\"adam\", \"burda_adam\"]\n[[variants]]\n[[variants]]\nadam_beta1 = 0.5\n"
            Expect.equal [ for r in burda.Runs -> r.Config.AdamBeta1 ] [ 0.9; 0.99; 0.5; 0.5 ] "beta1: the optimizer's default unless the spec sets it"

        testCase "spec mistakes name the file, the line and the key" <| fun () ->
            let cases =
                [ "unknown setting", "name = \"t\"\n[base]\nlatnet = 8\n", 3, "base.latnet", "is not a training setting"
                  "wrong type", "name = \"t\"\n[grid]\nlatent = [8, \"x\"]\n", 3, "grid.latent", "wrong type"
                  "invalid value", "name = \"t\"\n[base]\nepochs = 1\n[grid]\nlatent = [8, 0]\n", 5, "grid.latent", "(D) must be >= 1"
                  "bad layout", "name = \"t\"\n[base]\nmodel = \"evae\"\nlatent = 8\n\nepitome_size = 3\n", 6, "base.epitome_size", "do not tile"
                  "unknown table", "name = \"t\"\n[grids]\nlatent = [8]\n", 2, "grids", "unknown table"
                  "table array as table", "name = \"t\"\n[variants]\nmodel = \"vae\"\n", 2, "variants", "write [[variants]]"
                  "unknown top-level key", "name = \"t\"\nepochs = 3\n", 2, "epochs", "unknown key"
                  "same folder twice", "name = \"t\"\n[grid]\nlatent = [8, 8]\n", 3, "grid.latent", "the same folder"
                  "key in grid and variant", "name = \"t\"\n[grid]\nlatent = [8]\n[[variants]]\nlatent = 4\n", 5, "variants[1].latent", "also a [grid] axis"
                  "threads", "name = \"t\"\n[base]\nthreads = 2\n", 3, "base.threads", "--threads-per-run"
                  "eval key", "name = \"t\"\n[eval]\nk = 5000\nsamples = 3\n", 4, "eval.samples", "unknown key"
                  "reduce", "name = \"t\"\n[table]\nreduce = \"median\"\n", 3, "table.reduce", "mean, max or min"
                  "published without where", "name = \"t\"\n[[published]]\nvalue = 3\n", 2, "published[1].where", "is required"
                  "empty axis", "name = \"t\"\n[grid]\nseed = []\n", 3, "grid.seed", "empty list"
                  "syntax", "name = \"t\"\n[base\nlatent = 8\n", 2, "syntax", "" ]
            for what, text, line, key, fragment in cases do
                let e = specError text
                Expect.equal (e.File, e.Line, e.Key) ("generated.toml", line, key) $"{what}: {e.Message}"
                Expect.stringStarts e.Message $"generated.toml:{line}: {key}: " what
                Expect.stringContains e.Message fragment what
            let missing = specError "[base]\nlatent = 8\n"
            Expect.equal missing.Key "name" "a spec without a name"

        testCase "a missing spec file and a folder without sweep.json are clear errors" <| fun () ->
            use folder = new TempFolder("vae-sweep-missing-")
            Expect.stringContains (catches<VaeResearchException> (fun () -> SweepSpec.Load(folder.File "none.toml") |> ignore)).Message "does not exist" "spec"
            Expect.stringContains (catches<VaeResearchException> (fun () -> SweepPlan.Load folder.Path |> ignore)).Message "sweep.json is missing" "plan"
            File.WriteAllText(folder.File "sweep.json", "{ \"name\": 3 ")
            Expect.stringContains (catches<VaeResearchException> (fun () -> SweepPlan.Load folder.Path |> ignore)).Message "not a valid sweep plan" "corrupt plan"
    ]
