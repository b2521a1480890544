using System.CommandLine;
using System.Diagnostics;
using VaeResearch.Data;
using VaeResearch.Engine;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae eval RUN [--k 5000]</c>: the importance-weighted NLL estimate -mean L_k on the test set.</summary>
static class EvalCommand
{
    public static Command Create()
    {
        var run = RunArgument.Create();
        var k = Value("--k", "Importance samples k (the papers report k = 5000).", 5000);
        var subset = Optional<int>("--subset", "Evaluate the first N test images only.");
        var binarize = OptionalChoice("--binarize", "Binarization of the test images (default: the run's; the test set uses one fixed seeded sample).",
            BinarizationNames.All.ToArray());
        var binarizeSeed = Optional<ulong>("--binarize-seed",
            "Seed of the test images' binarization (default: the run's seed, as in training); another seed draws another fixed sample.");
        var json = new Option<FileInfo?>("--json") { Description = "Where to write the result (default: RUN/eval.json)." };
        var budget = Choice("--budget",
            "eVAE/mVAE: per_epitome (k samples for every epitome), total (k in all, shared: floor(k/G) each, the remainder to " +
            "the first epitomes; stratified estimator) or ystar (k under the plug-in y* only: log p(y*) + L_k(x|y*)).",
            "per_epitome", "per_epitome", "total", "ystar");
        var seed = Value("--seed", "Seed of the importance samples.", 0UL);
        var threads = CliOptions.Threads();
        var dataDir = CliOptions.DataDirectory();
        var compute = new ComputeOptions();
        var command = new Command("eval",
            "Estimate the test negative log-likelihood NLL = -mean_x L_k(x) in nats with its standard error, batched so memory " +
            "stays bounded for any k. For eVAE and mVAE the discrete y is marginalized: log sum_y p(y) (1/k) sum_i w_(y,i), " +
            "k samples per epitome (a lower bound on log p(x) in expectation; --budget changes the allocation). Writes eval.json " +
            "(nll, standard_error, k, n, binarize, budget, samples_drawn, and binarize_seed when given).")
        {
            run, k, subset, binarize, binarizeSeed, budget, json, seed, threads, dataDir,
        };
        compute.AddTo(command);
        command.SetAction(parse => CliRunner.Run("eval", () =>
        {
            if (parse.GetValue(threads) is int t) Parallelism.Threads = t;
            int kValue = parse.GetValue(k);
            if (kValue < 1) throw new ConfigException("k", $"must be >= 1, got {kValue}");
            if (parse.GetValue(subset) is < 1) throw new ConfigException("subset", $"must be >= 1, got {parse.GetValue(subset)}");
            var trained = compute.Load(parse, parse.GetValue(run)!.FullName);
            var data = Trainer.LoadData(trained.Config with { TestSubset = parse.GetValue(subset) }, parse.GetValue(dataDir), m => Console.Error.WriteLine(m));
            var mode = parse.GetValue(binarize) is { } b ? BinarizationNames.Parse(b) : trained.Config.EffectiveBinarization;
            var testSeed = parse.GetValue(binarizeSeed);
            var images = trained.Images(data.Test, mode, testSeed);
            var clock = Stopwatch.StartNew();
            int n = data.Test.Count;
            int reported = 0;
            var spend = ParseEnum<EvaluationBudget>(parse.GetValue(budget)!.Replace("_", ""));
            long drawn = Evaluation.SamplesDrawn(spend, kValue, trained.Model.Groups);
            var bounds = Evaluation.LogLikelihoodBounds(trained.Model, images, n, kValue, spend, new Rng(parse.GetValue(seed), TrainStreams.Tool(1)), done =>
            {
                if (done * 10 / n > reported * 10 / n || done == n)
                {
                    Console.Error.WriteLine($"eval: {done}/{n} images ({clock.Elapsed.TotalSeconds:F0} s)");
                    reported = done;
                }
            });
            var estimate = Estimate.Of(bounds.Select(v => -v).ToList());
            Console.WriteLine($"NLL = {estimate.Mean:F2} +/- {estimate.StandardError:F2} nats (-mean L_{kValue} over {n} test images, {mode.ToName()}, " +
                $"budget {parse.GetValue(budget)}, {drawn} samples per image, {clock.Elapsed.TotalSeconds:F1} s)");
            var path = parse.GetValue(json)?.FullName ?? trained.Folder.EvalPath;
            var result = new Analysis.EvalResult(estimate.Mean, estimate.StandardError, kValue, n, mode.ToName(),
                Microsoft.FSharp.Core.FSharpOption<int>.Some(trained.Epoch), Microsoft.FSharp.Core.FSharpOption<string>.Some(parse.GetValue(budget)!),
                Microsoft.FSharp.Core.FSharpOption<int>.Some(checked((int)drawn)),
                testSeed is { } s ? Microsoft.FSharp.Core.FSharpOption<ulong>.Some(s) : null);
            Analysis.RunStore.writeEval(path, result, clock.Elapsed.TotalSeconds);
            Console.Error.WriteLine($"wrote {path}");
            return 0;
        }));
        return command;
    }
}
