using System.CommandLine;
using Microsoft.FSharp.Core;
using VaeResearch.Analysis;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae report RUN... --out DIR</c>: an offline HTML page with the metrics table, charts and image grids.</summary>
static class ReportCommand
{
    public static Command Create()
    {
        var runs = new Argument<DirectoryInfo[]>("RUN") { Description = "Run folders written by `vae train`.", Arity = ArgumentArity.OneOrMore };
        var outDir = new Option<DirectoryInfo>("--out") { Description = "Folder for index.html and its SVG and PNG files.", Required = true };
        var threshold = Value("--threshold", "Activity threshold of the active-unit counts.", Analysis.Activity.DefaultThreshold);
        var samples = Value("--samples", "Samples from the prior per run.", Report.defaults.Samples);
        var reconstructions = Value("--reconstructions", "Test images reconstructed per run.", Report.defaults.Reconstructions);
        var seed = Value("--seed", "Seed of the prior samples (as `vae sample --seed`).", 0UL);
        var dataDir = CliOptions.DataDirectory();
        var command = new Command("report",
            "Write one self-contained offline HTML page (index.html) with the metrics table, the bound and active-unit charts, " +
            "each run's activity shade plot and sorted activity with KL, and image grids from the checkpoint: reconstructions, " +
            "samples, per-epitome samples (eVAE/mVAE), and for 2-D latents the test-encoding scatter and the decoded manifold lattice.")
        {
            runs, outDir, threshold, samples, reconstructions, seed, dataDir,
        };
        command.SetAction(parse => CliRunner.Run("report", () =>
        {
            double t = parse.GetValue(threshold);
            if (!double.IsFinite(t) || t < 0) throw new VaeResearchException($"--threshold must be a non-negative number, got {t}");
            if (parse.GetValue(samples) < 1) throw new VaeResearchException($"--samples must be >= 1, got {parse.GetValue(samples)}");
            if (parse.GetValue(reconstructions) < 1) throw new VaeResearchException($"--reconstructions must be >= 1, got {parse.GetValue(reconstructions)}");
            var dir = parse.GetValue(dataDir);
            var defaults = Report.defaults;
            var options = new ReportOptions(
                dir is null ? FSharpOption<string>.None : FSharpOption<string>.Some(dir), t, parse.GetValue(reconstructions),
                parse.GetValue(samples), defaults.PerEpitome, defaults.ScatterPoints, defaults.LatticeSteps, parse.GetValue(seed));
            var files = Report.write(parse.GetValue(runs)!.Select(r => r.FullName), parse.GetValue(outDir)!.FullName, options,
                FuncConvert.FromAction<string>(m => Console.Error.WriteLine(m)));
            Console.WriteLine($"wrote {files.Head} ({files.Length - 1} figure files beside it)");
            return 0;
        }));
        return command;
    }
}
