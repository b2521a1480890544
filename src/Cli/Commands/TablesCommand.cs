using System.CommandLine;
using VaeResearch.Analysis;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae tables DIR --out FILE</c>: a Markdown (and CSV) results table of every run under DIR.</summary>
static class TablesCommand
{
    public static Command Create()
    {
        var dir = new Argument<DirectoryInfo>("DIR") { Description = "A folder searched for run folders (folders with config.json)." };
        var outFile = new Option<FileInfo>("--out") { Description = "The Markdown file; the CSV goes beside it with the extension .csv.", Required = true };
        var threshold = Value("--threshold", "Activity threshold of the active-unit column.", Analysis.Activity.DefaultThreshold);
        var command = new Command("tables",
            "Write a Markdown table (and a CSV beside it) with, for every run under DIR: the model, epochs, final training and test " +
            "bounds, the L_k NLL from eval.json, the active units after the last epoch and the Parzen estimate from parzen.json. " +
            "A run folder that cannot be read is listed under the table with the reason; the command fails only when none can be read.")
        {
            dir, outFile, threshold,
        };
        command.SetAction(parse => CliRunner.Run("tables", () =>
        {
            double t = parse.GetValue(threshold);
            if (!double.IsFinite(t) || t < 0) throw new VaeResearchException($"--threshold must be a non-negative number, got {t}");
            var (markdown, csv, skipped) = Tables.write(parse.GetValue(dir)!.FullName, parse.GetValue(outFile)!.FullName, t);
            Console.Write(File.ReadAllText(markdown));
            if (!skipped.IsEmpty) Console.Error.WriteLine($"skipped {skipped.Length} run folder(s) that could not be read (listed under the table)");
            Console.Error.WriteLine($"wrote {markdown} and {csv}");
            return 0;
        }));
        return command;
    }
}
