using System.CommandLine;
using System.Diagnostics;
using Microsoft.FSharp.Core;
using VaeResearch.Analysis;
using VaeResearch.Engine;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae parzen (RUN [--n 10000] | --samples FILE.npy) [--json FILE] [--sigma S] [--validation N] [--allow-trained-validation]</c>.</summary>
static class ParzenCommand
{
    public static Command Create()
    {
        var run = new Argument<DirectoryInfo?>("RUN") { Description = "A run folder written by `vae train` (or give --samples).", Arity = ArgumentArity.ZeroOrOne };
        var n = Value("--n", "Samples to draw from the run's prior.", Parzen.DefaultSamples);
        var samples = new Option<FileInfo?>("--samples") { Description = "Score these samples instead: a float32 .npy file [n, 784] (or [n, 28, 28])." };
        var json = new Option<FileInfo?>("--json") { Description = "Where to write the result (default with RUN: RUN/parzen.json)." };
        var sigma = Optional<double>("--sigma", "Kernel width; skips the search over logspace(-1, 0, 10).");
        var validation = Value("--validation", "Validation images of the sigma search (the first of the last 10,000 training images).", Parzen.DefaultValidation);
        var allowTrained = new Option<bool>("--allow-trained-validation")
        {
            Description = "Score a run that trained on the validation images (trained without --train-subset 50000) instead of refusing: " +
                          "warns, and records validation_in_training in the JSON.",
        };
        var seed = Value("--seed", "Seed of the prior draws (the same draws as `vae sample --seed`).", 0UL);
        var threads = CliOptions.Threads();
        var dataDir = CliOptions.DataDirectory();
        var compute = new ComputeOptions();
        var command = new Command("parzen",
            "Parzen-window log-likelihood of generated samples (the protocol of Goodfellow et al. 2014): Gaussian kernels on n " +
            "samples (decoder means; for a Bernoulli decoder the pixel probabilities), scored on the grey-level test images; sigma " +
            "maximizes the mean log-likelihood of the validation images (training images 50,000 on, which the run must not have " +
            "trained on: train with --train-subset 50000) over logspace(-1, 0, 10). Prints the mean test " +
            "log-likelihood in nats +/- its standard error; writes sigma, log_likelihood, standard_error, " +
            "validation_log_likelihood, n_samples as JSON.")
        {
            run, n, samples, json, sigma, validation, allowTrained, seed, threads, dataDir,
        };
        compute.AddTo(command);
        command.SetAction(parse => CliRunner.Run("parzen", () =>
        {
            if (parse.GetValue(threads) is int t) Parallelism.Threads = t;
            var folder = parse.GetValue(run);
            var samplesFile = parse.GetValue(samples);
            if ((folder is null) == (samplesFile is null)) throw new VaeResearchException("give either RUN or --samples FILE.npy (exactly one)");
            if (samplesFile is not null && parse.IsExplicit(n)) throw new VaeResearchException("--n applies to RUN only (--samples scores every row of the file)");
            var dir = parse.GetValue(dataDir);
            var dirOption = dir is null ? FSharpOption<string>.None : FSharpOption<string>.Some(dir);
            var clock = Stopwatch.StartNew();

            Points points;
            FSharpOption<TrainConfig> config = FSharpOption<TrainConfig>.None;
            string? defaultJson = null;
            bool validationInTraining = false;
            if (folder is not null)
            {
                var trained = compute.Load(parse, folder.FullName);
                config = FSharpOption<TrainConfig>.Some(trained.Config);
                // NOTE: a given --sigma is not chosen on the validation images, so they may have been trained on.
                validationInTraining = parse.GetValue(sigma) is null && Parzen.checkValidation(trained.Folder.Path, trained.Config, parse.GetValue(validation), parse.GetValue(allowTrained));
                if (validationInTraining)
                    Console.Error.WriteLine($"parzen: WARNING: {trained.Folder.Path} trained on the validation images that choose sigma " +
                        "(--allow-trained-validation): the sigma and the estimate are biased towards the training data, not Goodfellow et al.'s protocol; " +
                        "parzen.json records \"validation_in_training\": true");
                points = Parzen.samplesOfRun(trained, parse.GetValue(n), parse.GetValue(seed));
                defaultJson = Path.Combine(trained.Folder.Path, RunStore.ParzenFile);
                Console.Error.WriteLine($"parzen: drew {points.Count} samples from {trained.Folder.Path} ({clock.Elapsed.TotalSeconds:F1} s)");
            }
            else
            {
                points = Parzen.ofNpy(samplesFile!.FullName);
                Console.Error.WriteLine($"parzen: read {points.Count} samples of dimension {points.Dim} from {samplesFile.FullName}");
            }
            var (valid, test) = Parzen.referenceData(config, dirOption, parse.GetValue(validation));
            if (points.Dim != test.Dim)
                throw new VaeResearchException($"the samples have {points.Dim} values per row but the test images have {test.Dim} pixels");
            var loaded = clock.Elapsed.TotalSeconds;
            var sigmaOption = parse.GetValue(sigma) is double s ? FSharpOption<double>.Some(s) : FSharpOption<double>.None;
            var result = Parzen.evaluate(points, valid, test, sigmaOption);
            if (validationInTraining) result = Parzen.inTraining(result);
            var scored = clock.Elapsed.TotalSeconds - loaded;
            if (sigmaOption is null)
                foreach (var (sg, ll) in result.SigmaSearch)
                    Console.Error.WriteLine($"parzen: sigma {sg:F4}: validation log-likelihood {ll:F2}{(sg == result.Sigma ? "  <- best" : "")}");
            Console.WriteLine($"Parzen log-likelihood = {result.LogLikelihood:F2} +/- {result.StandardError:F2} nats (sigma = {result.Sigma:F4}, " +
                              $"{result.NSamples} samples, {result.NTest} test images; validation {result.ValidationLogLikelihood:F2} on {result.NValidation}; " +
                              $"scoring {scored:F1} s)");
            var path = parse.GetValue(json)?.FullName ?? defaultJson;
            if (path is not null)
            {
                RunStore.writeParzen(path, result);
                Console.Error.WriteLine($"wrote {path}");
            }
            return 0;
        }));
        return command;
    }
}
