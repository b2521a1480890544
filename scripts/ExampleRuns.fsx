// Run folders for the example analyses: the folders given on the command line, or, without arguments,
// small runs trained now (in seconds) on the synthetic data set with true latent dimension d = 5.
//
//   dotnet fsi scripts/compare-runs.fsx RUN_A RUN_B
//   dotnet fsi scripts/compare-runs.fsx                 (trains two small example runs first)

#load "../src/Analysis.FSharp/VaeResearch.fsx"

open System
open System.IO
open VaeResearch.Training

/// Trains a small VAE (D = 20) with KL weight `klWeight` on the synthetic data set (d = 5) into `folder`, quietly.
let trainExample (folder: string) (klWeight: float) =
    let config =
        TrainConfig(Dataset = "synthetic", SyntheticDimension = 5, Latent = 20, Hidden = [| 100; 100 |], Epochs = 6,
                    TrainSubset = Nullable 3000, KlWeight = klWeight, Seed = 7UL)
    let data = Trainer.LoadData(config, null, null)
    Trainer.Run(config, RunFolder.Create folder, false, data, SilentProgress.Instance) |> ignore
    folder

/// A fresh folder for outputs under the temporary folder.
let scratch (name: string) = Directory.CreateTempSubdirectory($"vaeresearch-{name}-").FullName

/// The run folders named on the command line, else `count` example runs trained now: a VAE, then (for the
/// second) the same VAE with the KL weight lambda = 0.5 (eVAE paper, section 3.1), which keeps more units active.
let runsOrExamples (count: int) : string list =
    match fsi.CommandLineArgs |> Array.toList |> List.tail with
    | [] ->
        let root = scratch "example-runs"
        printfn "training %d example run(s) on the synthetic data set (d = 5) in %s" count root
        [ for i, (name, lambda) in List.indexed [ "vae", 1.0; "vae-lambda0.5", 0.5 ] do
              if i < count then trainExample (Path.Combine(root, name)) lambda ]
    | given when given.Length >= count -> List.truncate count given
    | given -> failwithf "give %d run folder(s), got %d: %A" count given.Length given
