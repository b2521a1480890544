using System.CommandLine;
using VaeResearch.Engine;
using VaeResearch.IO;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae sample RUN --n N (--npy FILE | --png FILE)</c>: decoder means of samples from the prior.</summary>
static class SampleCommand
{
    public static Command Create()
    {
        var run = RunArgument.Create();
        var n = Value("--n", "Number of samples.", 100);
        var npy = new Option<FileInfo?>("--npy") { Description = "Write the samples as float32 [n, 784] to FILE.npy." };
        var png = new Option<FileInfo?>("--png") { Description = "Write the samples as a PNG grid." };
        var seed = Value("--seed", "Seed of the prior draws.", 0UL);
        var compute = new ComputeOptions();
        var command = new Command("sample",
            "Draw z ~ N(0, I) (and, for eVAE/mVAE, y uniformly) and write the decoder means E[x|z] (pixel probabilities for a " +
            "Bernoulli decoder) as .npy or a PNG grid.")
        {
            run, n, npy, png, seed,
        };
        compute.AddTo(command);
        command.SetAction(parse => CliRunner.Run("sample", () =>
        {
            int count = parse.GetValue(n);
            if (count < 1) throw new VaeResearchException($"--n must be >= 1, got {count}");
            var npyFile = parse.GetValue(npy);
            var pngFile = parse.GetValue(png);
            if (npyFile is null && pngFile is null) throw new VaeResearchException("give --npy FILE or --png FILE (or both)");
            var trained = compute.Load(parse, parse.GetValue(run)!.FullName);
            var samples = Evaluation.Samples(trained.Model, count, new Rng(parse.GetValue(seed), TrainStreams.Tool(2)));
            if (npyFile is not null)
            {
                Npy.Save(npyFile.FullName, samples, count, trained.Model.Input);
                Console.WriteLine($"wrote {count} samples to {npyFile.FullName}");
            }
            if (pngFile is not null)
            {
                ImageGrid.SavePng(pngFile.FullName, samples, count);
                Console.WriteLine($"wrote a grid of {count} samples to {pngFile.FullName}");
            }
            return 0;
        }));
        return command;
    }
}
