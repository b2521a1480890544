using System.CommandLine;
using VaeResearch.Engine;
using VaeResearch.IO;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae reconstruct RUN --png FILE [--n 50]</c>: test images above their reconstructions.</summary>
static class ReconstructCommand
{
    public static Command Create()
    {
        var run = RunArgument.Create();
        var png = new Option<FileInfo>("--png") { Description = "Output PNG grid.", Required = true };
        var n = Value("--n", "Number of test images (the first n).", 50);
        var columns = Value("--columns", "Images per grid row.", 10);
        var dataDir = CliOptions.DataDirectory();
        var compute = new ComputeOptions();
        var command = new Command("reconstruct",
            "Write a PNG grid with the first n test images (as the model sees them) in the top half and their reconstructions " +
            "E[x | z = E_q[z|x]] in the bottom half.")
        {
            run, png, n, columns, dataDir,
        };
        compute.AddTo(command);
        command.SetAction(parse => CliRunner.Run("reconstruct", () =>
        {
            int count = parse.GetValue(n), cols = parse.GetValue(columns);
            if (count < 1) throw new VaeResearchException($"--n must be >= 1, got {count}");
            if (cols < 1) throw new VaeResearchException($"--columns must be >= 1, got {cols}");
            var trained = compute.Load(parse, parse.GetValue(run)!.FullName);
            var test = Trainer.LoadData(trained.Config with { TestSubset = count }, parse.GetValue(dataDir), m => Console.Error.WriteLine(m)).Test;
            var images = trained.Images(test);
            var output = Evaluation.Reconstructions(trained.Model, images, test.Count);
            // Inputs fill whole rows, then the reconstructions start on a fresh row.
            int rows = (test.Count + cols - 1) / cols;
            var grid = new float[2 * rows * cols * trained.Model.Input];
            images.AsSpan(0, test.Count * trained.Model.Input).CopyTo(grid);
            output.CopyTo(grid.AsSpan(rows * cols * trained.Model.Input));
            var file = parse.GetValue(png)!;
            ImageGrid.SavePng(file.FullName, grid, 2 * rows * cols, columns: cols);
            Console.WriteLine($"wrote {test.Count} test images and their reconstructions to {file.FullName}");
            return 0;
        }));
        return command;
    }
}
