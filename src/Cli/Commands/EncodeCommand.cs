using System.CommandLine;
using VaeResearch.Engine;
using VaeResearch.IO;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae encode RUN --npy FILE [--split train|test] [--subset N]</c>: posterior means E_q[z|x].</summary>
static class EncodeCommand
{
    public static Command Create()
    {
        var run = RunArgument.Create();
        var npy = new Option<FileInfo>("--npy") { Description = "Output file: float32 [n, D] posterior means.", Required = true };
        var split = Choice("--split", "Which images to encode.", "test", "train", "test");
        var subset = Optional<int>("--subset", "Encode the first N images only.");
        var labels = new Option<FileInfo?>("--labels") { Description = "Also write the labels as float32 [n] to this .npy file." };
        var dataDir = CliOptions.DataDirectory();
        var compute = new ComputeOptions();
        var command = new Command("encode",
            "Write the posterior means E_q[z|x] (for eVAE/mVAE: under each image's best epitome y*, other units 0) of the test " +
            "(or training) images, binarized as in the run (test: its fixed sample), as a float32 [n, D] .npy file.")
        {
            run, npy, split, subset, labels, dataDir,
        };
        compute.AddTo(command);
        command.SetAction(parse => CliRunner.Run("encode", () =>
        {
            if (parse.GetValue(subset) is < 1) throw new VaeResearchException($"--subset must be >= 1, got {parse.GetValue(subset)}");
            var trained = compute.Load(parse, parse.GetValue(run)!.FullName);
            var splits = Trainer.LoadData(trained.Config with { TrainSubset = null, TestSubset = null }, parse.GetValue(dataDir), m => Console.Error.WriteLine(m));
            var data = parse.GetValue(split) == "train" ? splits.Train : splits.Test;
            if (parse.GetValue(subset) is int m) data = data.Take(m);
            var means = Evaluation.PosteriorMeans(trained.Model, trained.Images(data), data.Count);
            var file = parse.GetValue(npy)!;
            Npy.Save(file.FullName, means, data.Count, trained.Model.Latent);
            Console.WriteLine($"wrote posterior means [{data.Count}, {trained.Model.Latent}] to {file.FullName}");
            if (parse.GetValue(labels) is { } labelFile)
            {
                Npy.Save(labelFile.FullName, data.Labels.Select(l => (float)l).ToArray(), data.Count);
                Console.WriteLine($"wrote labels [{data.Count}] to {labelFile.FullName}");
            }
            return 0;
        }));
        return command;
    }
}
