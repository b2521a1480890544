module VaeResearch.Regression.ParzenProtocolTests

// The papers' protocols through the CLI on real MNIST: `vae parzen` chooses sigma on validation images the
// model never trained on (Goodfellow et al. 2014: train on the first 50,000 images, choose sigma on the next
// ones), so it refuses a run trained on all 60,000 unless told to score it anyway, and then says so in
// parzen.json; and `vae train --activity-population train_first --activity-initial` records Burda et al.'s
// per-epoch activity, which `vae activity` summarizes at the papers' three thresholds.

open System.IO
open System.Text.RegularExpressions
open System.Text.Json
open Expecto
open VaeResearch.Analysis
open VaeResearch.Training
open VaeResearch.TestSupport
open VaeResearch.Regression.CliTests

/// One quick epoch of a tiny model (training images as given by the caller).
let private quick = [ "--test-subset"; "200"; "--epochs"; "1"; "--latent"; "2"; "--hidden"; "20"; "--seed"; "3"; "--threads"; string Threads ]

/// A small Parzen evaluation: 200 samples, 100 validation images (training images 50,000-50,099).
let private small = [ "--n"; "200"; "--validation"; "100"; "--threads"; string Threads ]

/// Whether a parzen.json file has the validation_in_training key (written only when true).
let private marked (path: string) =
    use doc = JsonDocument.Parse(File.ReadAllText path)
    match doc.RootElement.TryGetProperty "validation_in_training" with
    | true, v -> Some(v.GetBoolean())
    | _ -> None

/// The tests of this module.
let tests =
    testList "ParzenProtocol" [

        testCase "vae parzen refuses a run trained on its validation images, and scores it with --allow-trained-validation" <| fun () ->
            use folder = new TempFolder("vae-parzen-protocol-")
            let run = folder.Sub "all"
            succeeds ([ "train"; "--out"; run ] @ quick) |> ignore
            let refused = fails ([ "parzen"; run ] @ small)
            for part in [ run; "train_subset not set"; "50000-50099"; "--train-subset 50000"; "--allow-trained-validation" ] do
                Expect.stringContains refused.Stderr part "the error names the run, its train_subset, the validation range and the fix"
            Expect.isFalse (File.Exists(Path.Combine(run, RunStore.ParzenFile))) "nothing written"
            let allowed = succeeds ([ "parzen"; run; "--allow-trained-validation" ] @ small)
            Expect.stringContains allowed.Stderr "WARNING" "a loud warning"
            let json = Path.Combine(run, RunStore.ParzenFile)
            Expect.equal (marked json) (Some true) "parzen.json records validation_in_training"
            Expect.isTrue (RunStore.readParzen json).ValidationInTraining "and reads it back"
            // A given sigma is not chosen on the validation images, so nothing is refused.
            succeeds ([ "parzen"; run; "--sigma"; "0.2"; "--json"; folder.File "fixed.json" ] @ small) |> ignore
            Expect.equal (marked (folder.File "fixed.json")) None "no mark with a given sigma"

        testCase "vae parzen accepts a run trained on the first 50,000 images, and a run one image over is refused" <| fun () ->
            use folder = new TempFolder("vae-parzen-protocol-")
            let run = folder.Sub "first50k"
            succeeds ([ "train"; "--out"; run; "--train-subset"; "50000" ] @ quick) |> ignore
            let out = succeeds ([ "parzen"; run ] @ small)
            Expect.stringContains out.Stdout "Parzen log-likelihood =" "scored"
            notContains out.Stderr "WARNING" "no warning"
            let json = Path.Combine(run, RunStore.ParzenFile)
            Expect.equal (marked json) None "no validation_in_training key"
            Expect.isFalse (RunStore.readParzen json).ValidationInTraining "reads back as false"
            let over = folder.Sub "over"
            succeeds ([ "train"; "--out"; over; "--train-subset"; "50001" ] @ quick) |> ignore
            Expect.stringContains (fails ([ "parzen"; over ] @ small)).Stderr "train_subset 50001" "one validation image trained on is refused"

        testCase "vae train --activity-population train_first --activity-initial, summarized by vae activity" <| fun () ->
            use folder = new TempFolder("vae-parzen-protocol-")
            let run = folder.Sub "burda"
            succeeds ([ "train"; "--out"; run; "--train-subset"; "1000"; "--activity-population"; "train_first"; "--activity-n"; "500"; "--activity-initial" ] @ quick) |> ignore
            let config = RunFolder.Open(run).ReadConfig()
            Expect.equal (config.ActivityPopulation, config.ActivityN, config.ActivityInitial) (ActivityPopulation.TrainFirst, System.Nullable 500, true) "config.json"
            let epochs = RunCsv.ReadActivity(Path.Combine(run, "activity.csv")) |> Seq.map (fun r -> r.Epoch) |> Seq.distinct |> Seq.toList
            Expect.equal epochs [ 0; 1 ] "epoch 0 and epoch 1"
            let out = (succeeds [ "activity"; run ]).Stdout
            for t in [ "0.01"; "0.02"; "0.1" ] do
                Expect.isMatch out (Regex.Escape $"A_u > {t}: " + "epochs? 0") $"the per-epoch counts at {t}, from epoch 0"
            Expect.stringContains (fails [ "train"; "--out"; folder.Sub "bad"; "--activity-population"; "train_random" ]).Stderr "--activity-n" "N is required"
    ]
