using System.CommandLine;
using System.Text.Json;
using VaeResearch.Data;
using VaeResearch.Engine;
using VaeResearch.Models;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae train --out RUN ...</c>: trains a VAE, IWAE, eVAE or mVAE into a run folder.</summary>
static class TrainCommand
{
    public static Command Create()
    {
        var defaults = new TrainConfig();
        var outDir = new Option<DirectoryInfo>("--out") { Description = "Run folder to create (or, with --resume, to continue).", Required = true };
        var dataset = Choice("--dataset", "Data set.", "mnist", "mnist", "synthetic");
        var syntheticDim = Value("--synthetic-dim", "True latent dimension d of the synthetic data set.", defaults.SyntheticDimension);
        var model = Choice("--model", "Model: vae (IWAE when k > 1), evae (epitomic VAE) or mvae (mixture VAE).", "vae", "vae", "evae", "mvae");
        var k = Value("--k", "Importance samples k in the training bound (1: ELBO with analytic KL).", defaults.Samples);
        var decoder = Choice("--decoder", "Decoder likelihood.", "bernoulli", "bernoulli", "gaussian");
        var latent = Value("--latent", "Latent dimension D.", defaults.Latent);
        var hidden = IntList("--hidden", "Hidden layer widths, comma-separated.", defaults.Hidden);
        var activation = Choice("--activation", "Hidden activation.", "softplus", "softplus", "tanh", "relu");
        var batch = Value("--batch", "Minibatch size.", defaults.Batch);
        var epochs = Value("--epochs", "Epochs to train (the burda schedule has 3280; fewer cut it short).", defaults.Epochs);
        var schedule = Choice("--schedule",
            "Learning-rate schedule: constant, burda (lr * 10^(-i/7) for 3^i epochs, i = 0..7) or burda_rounded (Burda et al.'s code: " +
            "lr * round(10^(1-i/7), 1) / 10, i.e. 1e-3, 7.2e-4, ..., 1e-4 at lr 1e-3).", "constant", "constant", "burda", "burda_rounded");
        var init = Choice("--init", "Weight initialization: normal (Xavier-Glorot normal) or uniform (Glorot-uniform, Burda et al.'s code).",
            "normal", "normal", "uniform");
        var outputBias = Choice("--output-bias",
            "Initial decoder output bias: zero, or data_mean (logit of the clipped mean training image, Burda et al.'s code).", "zero", "zero", "data_mean");
        var order = Choice("--order", "Minibatch order: shuffled every epoch, or sequential (the same every epoch, Burda et al.'s code).",
            "shuffled", "shuffled", "sequential");
        var warmupKind = Choice("--warmup", "Warm-up of beta: per step, or per epoch (constant within an epoch, 0 in the first; activity paper).",
            "step", "step", "epoch");
        var kl = Choice("--kl", "KL estimator of the ELBO: analytic, or monte_carlo (log q(z|x) - log p(z) at the sampled z, Burda et al.'s VAE).",
            "analytic", "analytic", "monte_carlo");
        var posteriorScale = Choice("--posterior-scale",
            "What the encoder's scale head gives: log_variance (sigma = exp(h / 2)) or log_std (sigma = exp(h), Burda et al.'s code).",
            "log_variance", "log_variance", "log_std");
        var objective = Choice("--objective", "What the k samples estimate: iwae (L_k) or vae (the mean over the samples of log w; Burda et al., Table 1).",
            "iwae", "iwae", "vae");
        var optimizer = Choice("--optimizer",
            "Adam variant: adam (PyTorch's rule) or burda_adam (Burda et al.'s code: v from 1, eps on the raw sqrt(v), summed minibatch loss; " +
            "beta1 0.99 unless --adam-beta1 is given).", "adam", "adam", "burda_adam");
        var lr = Value("--lr", "Base learning rate.", defaults.Lr);
        var beta1 = Value("--adam-beta1", "Adam beta1.", defaults.AdamBeta1);
        var beta2 = Value("--adam-beta2", "Adam beta2.", defaults.AdamBeta2);
        var adamEps = Value("--adam-eps", "Adam epsilon.", defaults.AdamEps);
        var klWeight = Value("--kl-weight", "KL weight lambda (1: the true bound).", defaults.KlWeight);
        var warmup = Value("--warmup-epochs", "Epochs of linear KL warm-up (beta from 0 to 1, per step).", defaults.WarmupEpochs);
        var batchnorm = new Option<bool>("--batchnorm") { Description = "Batch normalization before every hidden activation." };
        var dropoutZ = Value("--dropout-z", "Dropout probability on z during training.", defaults.DropoutZ);
        var epitomeSize = Optional<int>("--epitome-size", "Epitome size K (evae, mvae).");
        var epitomeStride = Optional<int>("--epitome-stride", "Epitome stride s (evae, mvae; default K).");
        var epitomeLayout = Choice("--epitome-layout",
            "Epitomes that do not tile D: tile rejects them; cover adds a last epitome [D-K, D) so every unit is covered (evae, mvae).",
            "tile", "tile", "cover");
        var evaeFirstEpoch = Choice("--evae-first-epoch",
            "First epoch's assignment: balanced (seeded random, equal shares) or assign (Algorithm 1: argmin C_evae under the initial weights).",
            "balanced", "balanced", "assign");
        var evaeAssign = Choice("--evae-assign",
            "Reconstruction term of y*: plugin (at the posterior mean) or monte_carlo (mean over --evae-assign-samples seeded draws).",
            "plugin", "plugin", "monte_carlo");
        var evaeAssignSamples = Value("--evae-assign-samples", "Draws per image and epitome for --evae-assign monte_carlo.", defaults.EvaeAssignSamples);
        var gaussianLogvar = Choice("--gaussian-logvar",
            "Gaussian decoder log-variance: bounded (tanh, activity paper) or unbounded (linear f2, eVAE paper eq. 2).",
            "bounded", "bounded", "unbounded");
        var binarize = OptionalChoice("--binarize", "Binarization (default: dynamic for bernoulli, none for gaussian).", BinarizationNames.All.ToArray());
        var trainSubset = Optional<int>("--train-subset", "Train on the first N training images.");
        var testSubset = Optional<int>("--test-subset", "Per-epoch statistics on the first N test images.");
        var activityPopulation = Choice("--activity-population",
            "Images of the per-epoch activity: test (the test set), train_first (the first --activity-n training images, as Burda et al.) " +
            "or train_random (--activity-n seeded random training images); training images binarized as in the first epoch.",
            "test", "test", "train_first", "train_random");
        var activityN = Optional<int>("--activity-n", "Training images N of the train_first and train_random activity populations (Burda et al.: 500).");
        var activityInitial = new Option<bool>("--activity-initial") { Description = "Also record the untrained model's activity as epoch 0 of activity.csv." };
        var seed = Value("--seed", "Seed of every random choice.", 0UL);
        var compute = new ComputeOptions();
        var backend = compute.Backend;
        var device = compute.Device;
        var threads = CliOptions.Threads("Worker threads (default: all cores). Bit-identical resume needs the same value.");
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its last completed epoch up to --epochs (starts it when --out holds no run yet)." };
        var configFile = new Option<FileInfo?>("--config")
        {
            Description = "Take the settings from this file: a run's config.json or a run entry of a sweep.json (options given as well override it).",
        };
        var dataDir = CliOptions.DataDirectory();

        var command = new Command("train",
            "Train a model into a run folder: config.json, metrics.csv and activity.csv (one row per epoch), and an atomic " +
            "checkpoint.safetensors after every epoch. --resume continues a stopped or killed run bit-identically.")
        {
            outDir, dataset, syntheticDim, model, k, decoder, latent, hidden, activation, batch, epochs, schedule,
            init, outputBias, order, warmupKind, kl, posteriorScale, objective, optimizer, lr, beta1, beta2,
            adamEps, klWeight, warmup, batchnorm, dropoutZ, epitomeSize, epitomeStride, epitomeLayout, evaeFirstEpoch, evaeAssign,
            evaeAssignSamples, gaussianLogvar, binarize, trainSubset, testSubset, activityPopulation, activityN, activityInitial,
            seed, backend, device, threads, resume, configFile, dataDir,
        };
        Option[] settings =
        [
            dataset, syntheticDim, model, k, decoder, latent, hidden, activation, batch, schedule,
            init, outputBias, order, warmupKind, kl, posteriorScale, objective, optimizer, lr, beta1, beta2, adamEps,
            klWeight, warmup, batchnorm, dropoutZ, epitomeSize, epitomeStride, epitomeLayout, evaeFirstEpoch, evaeAssign,
            evaeAssignSamples, gaussianLogvar, binarize, trainSubset, testSubset, activityPopulation, activityN, activityInitial, seed,
            backend, device,
        ];

        command.SetAction(parse => CliRunner.Run("train", () =>
        {
            if (parse.GetValue(threads) is int t) Parallelism.Threads = t;
            var optimizerKind = ParseEnum<OptimizerKind>(parse.GetValue(optimizer)!);
            // Without --adam-beta1 the optimizer's default beta1 (0.99 for burda_adam), written explicitly to config.json.
            bool burdaBeta1 = optimizerKind == OptimizerKind.BurdaAdam && !parse.IsExplicit(beta1);
            bool Given(Option option) => parse.IsExplicit(option) || (option == beta1 && burdaBeta1);
            var fromOptions = new TrainConfig
            {
                Dataset = parse.GetValue(dataset)!,
                SyntheticDimension = parse.GetValue(syntheticDim),
                Model = ParseEnum<ModelKind>(parse.GetValue(model)!),
                Samples = parse.GetValue(k),
                Decoder = ParseEnum<DecoderKind>(parse.GetValue(decoder)!),
                Latent = parse.GetValue(latent),
                Hidden = parse.GetValue(hidden)!,
                Activation = ParseEnum<Activation>(parse.GetValue(activation)!),
                Batch = parse.GetValue(batch),
                Epochs = parse.GetValue(epochs),
                Schedule = ParseEnum<ScheduleKind>(parse.GetValue(schedule)!),
                Init = ParseEnum<WeightInit>(parse.GetValue(init)!),
                OutputBias = ParseEnum<OutputBias>(parse.GetValue(outputBias)!),
                Order = ParseEnum<BatchOrder>(parse.GetValue(order)!),
                Warmup = ParseEnum<WarmupKind>(parse.GetValue(warmupKind)!),
                Kl = ParseEnum<KlEstimator>(parse.GetValue(kl)!),
                PosteriorScale = ParseEnum<PosteriorScale>(parse.GetValue(posteriorScale)!),
                Objective = ParseEnum<TrainObjective>(parse.GetValue(objective)!),
                Optimizer = optimizerKind,
                Lr = parse.GetValue(lr),
                AdamBeta1 = parse.IsExplicit(beta1) ? parse.GetValue(beta1) : TrainConfig.DefaultAdamBeta1(optimizerKind),
                AdamBeta2 = parse.GetValue(beta2),
                AdamEps = parse.GetValue(adamEps),
                KlWeight = parse.GetValue(klWeight),
                WarmupEpochs = parse.GetValue(warmup),
                Batchnorm = parse.GetValue(batchnorm),
                DropoutZ = parse.GetValue(dropoutZ),
                EpitomeSize = parse.GetValue(epitomeSize),
                EpitomeStride = parse.GetValue(epitomeStride),
                EpitomeLayout = ParseEnum<EpitomeLayoutKind>(parse.GetValue(epitomeLayout)!),
                EvaeFirstEpoch = ParseEnum<FirstEpochAssignment>(parse.GetValue(evaeFirstEpoch)!),
                EvaeAssign = ParseEnum<AssignmentEstimate>(parse.GetValue(evaeAssign)!.Replace("_", "")),
                EvaeAssignSamples = parse.GetValue(evaeAssignSamples),
                GaussianLogvar = ParseEnum<GaussianLogVariance>(parse.GetValue(gaussianLogvar)!),
                Binarize = parse.GetValue(binarize) is { } b ? BinarizationNames.Parse(b) : null,
                TrainSubset = parse.GetValue(trainSubset),
                TestSubset = parse.GetValue(testSubset),
                ActivityPopulation = ParseEnum<ActivityPopulation>(parse.GetValue(activityPopulation)!),
                ActivityN = parse.GetValue(activityN),
                ActivityInitial = parse.GetValue(activityInitial),
                Seed = parse.GetValue(seed),
                Backend = parse.GetValue(backend)!,
                Device = parse.GetValue(device)!,
            };
            if (parse.GetValue(configFile) is { } file)
            {
                var node = JsonSerializer.SerializeToNode(RunFolder.ParseConfig(file.FullName), RunFolder.Json)!.AsObject();
                var given = JsonSerializer.SerializeToNode(fromOptions, RunFolder.Json)!.AsObject();
                foreach (var option in settings.Append(epochs).Where(Given))
                    node[CliOptions.Key(option.Name)] = given[CliOptions.Key(option.Name)]?.DeepClone();
                fromOptions = node.Deserialize<TrainConfig>(RunFolder.Json)!;
            }
            var path = parse.GetValue(outDir)!.FullName;
            RunFolder run;
            TrainConfig config;
            bool resuming = parse.GetValue(resume);
            if (resuming && !File.Exists(Path.Combine(path, "config.json")))
            {
                Console.Error.WriteLine($"vae train: {path} holds no run yet: starting it");
                resuming = false;
            }
            if (resuming)
            {
                run = RunFolder.Open(path);
                var saved = run.ReadConfig();
                var savedJson = JsonSerializer.SerializeToNode(saved, RunFolder.Json)!.AsObject();
                var givenJson = JsonSerializer.SerializeToNode(fromOptions, RunFolder.Json)!.AsObject();
                foreach (var option in settings.Where(Given))
                {
                    var key = CliOptions.Key(option.Name);
                    if (!JsonElement.DeepEquals(JsonSerializer.SerializeToElement(savedJson[key]), JsonSerializer.SerializeToElement(givenJson[key])))
                        throw new VaeResearchException(
                            $"{option.Name} {givenJson[key]?.ToJsonString()} differs from the run's saved setting {savedJson[key]?.ToJsonString() ?? "(none)"}; " +
                            "a resumed run keeps its configuration (only --epochs and --threads may change)");
                }
                if (run.ReadThreads() is int savedThreads && savedThreads != Parallelism.Threads)
                    Console.Error.WriteLine($"vae train: note: the run was trained with {savedThreads} threads, now {Parallelism.Threads}: " +
                        "results stay valid but are not bit-identical to an uninterrupted run");
                config = saved with { Epochs = parse.IsExplicit(epochs) || parse.GetValue(configFile) is null ? parse.GetValue(epochs) : fromOptions.Epochs };
            }
            else
            {
                config = fromOptions.Validate();
                run = RunFolder.Create(path);
            }
            config.Validate();
            var data = Trainer.LoadData(config, parse.GetValue(dataDir), m => Console.Error.WriteLine(m));
            Console.Error.WriteLine(
                $"training {CliOptions.Name(config.Model)} (D = {config.Latent}, k = {config.Samples}) on {data.Train.Name}: " +
                $"{data.Train.Count} train / {data.Test.Count} test images, {config.Epochs} epochs");
            using var stop = new StopSignal(signal => Console.Error.WriteLine($"vae train: {signal}: stopping at the end of the epoch"));
            var result = TrainingProgress.Run(progress => Trainer.Run(config, run, resuming, data, progress, stop.Token));
            if (result.Metrics.Count > 0)
            {
                var last = result.Metrics[^1];
                Console.WriteLine($"epoch {last.Epoch}: train bound {last.TrainBound:F2}, test bound {last.TestBound:F2} nats, " +
                    $"KL {last.Kl:F2}, {last.ActiveUnits} active units; run in {run.Path}");
            }
            return result.Stopped ? StopSignal.ExitCode : 0;
        }));
        return command;
    }
}
