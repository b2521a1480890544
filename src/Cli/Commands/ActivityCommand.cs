using System.CommandLine;
using System.Globalization;
using Microsoft.FSharp.Core;
using VaeResearch.Analysis;
using VaeResearch.Training;
using static VaeResearch.Cli.CliOptions;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae activity RUN [--threshold 0.01] [--csv FILE]</c>: per-unit activity A_u and KL over the test set.</summary>
static class ActivityCommand
{
    /// <summary>Characters of the per-epoch chart.</summary>
    const int SparklineWidth = 60;

    public static Command Create()
    {
        var run = RunArgument.Create();
        var threshold = Value("--threshold", "A unit is active when A_u > threshold (0.01 Burda et al.; 0.02 eVAE paper; 0.1 activity paper).", Analysis.Activity.DefaultThreshold);
        var csv = new Option<FileInfo?>("--csv") { Description = "Also write unit, activity, kl, active (unit order) to this CSV file." };
        var split = Choice("--split", "Which images (the same ones `vae encode --split` exports).", "test", "train", "test");
        var subset = Optional<int>("--subset", "Use the first N images of the split only.");
        var dataDir = CliOptions.DataDirectory();
        var compute = new ComputeOptions();
        var command = new Command("activity",
            "Compute each latent unit's activity A_u = Cov_x(E_q[u]) (population variance over the images of the posterior mean; " +
            "default: the whole test set, the images `vae encode --split test` exports) and its mean KL to the prior from the " +
            "checkpoint; print the units " +
            "sorted by activity, the active counts at the threshold and at the papers' 0.01, 0.02 and 0.1, and the per-epoch active " +
            "counts recorded in activity.csv at the same thresholds (the epochs where a count changes, and a one-line chart).")
        {
            run, threshold, csv, split, subset, dataDir,
        };
        compute.AddTo(command);
        command.SetAction(parse => CliRunner.Run("activity", () =>
        {
            double t = parse.GetValue(threshold);
            if (!double.IsFinite(t) || t < 0) throw new VaeResearchException($"--threshold must be a non-negative number, got {t}");
            var folder = parse.GetValue(run)!.FullName;
            var stored = RunStore.load(folder);
            var trained = compute.Load(parse, folder);
            var dir = parse.GetValue(dataDir);
            if (parse.GetValue(subset) is < 1) throw new VaeResearchException($"--subset must be >= 1, got {parse.GetValue(subset)}");
            var splitName = parse.GetValue(split)!;
            var (data, images) = Analysis.Activity.splitImages(trained, splitName, dir is null ? FSharpOption<string>.None : FSharpOption<string>.Some(dir));
            int count = Math.Min(data.Count, parse.GetValue(subset) ?? data.Count);
            var units = Analysis.Activity.ofImages(trained.Model, images, count);
            var activity = units.Select(u => u.Activity).ToArray();
            string F(double v) => v.ToString(CultureInfo.InvariantCulture);

            Console.WriteLine($"{stored.Name}: {RunStore.describe(stored)}, checkpoint after epoch {trained.Epoch}");
            Console.WriteLine($"A_u = Cov_x(E_q[u]) over {count} {splitName} images (population variance), KL in nats:");
            Console.WriteLine($"{"rank",5} {"unit",5} {"activity",12} {"kl",10}  active");
            var order = Analysis.Activity.sortedUnits(activity);
            for (int rank = 0; rank < order.Length; rank++)
            {
                var u = units[order[rank]];
                Console.WriteLine($"{rank + 1,5} {u.Unit,5} {u.Activity,12:G4} {u.Kl,10:F4}  {(u.Activity > t ? "yes" : "")}");
            }
            var counts = Analysis.Activity.PaperThresholds.Append(t).Distinct().Order()
                .Select(th => $"{Analysis.Activity.activeCount(th, activity)} at {F(th)}");
            Console.WriteLine($"active units (of {activity.Length}): {string.Join(", ", counts)}; total KL {units.Sum(u => u.Kl):F2} nats");

            var history = Analysis.Activity.history(stored);
            if (history.Epochs.Length > 0)
            {
                var span = history.Epochs.Length == 1 ? $"epoch {history.Epochs[0]}" : $"epochs {history.Epochs[0]}-{history.Epochs[^1]}";
                Console.WriteLine($"active units per epoch from activity.csv ({span}; " +
                                  $"chart: mean count per bin, 0 to {history.Units} units):");
                foreach (var th in Analysis.Activity.PaperThresholds.Append(t).Distinct().Order())
                {
                    var perEpoch = Analysis.Activity.activeCounts(th, history);
                    Console.WriteLine($"  A_u > {F(th)}: {Analysis.Activity.compactCounts(perEpoch)}");
                    Console.WriteLine($"  {"",-8}{Analysis.Activity.sparkline(SparklineWidth, history.Units, perEpoch)}");
                }
            }
            if (parse.GetValue(csv) is { } file)
            {
                Analysis.Activity.writeCsv(file.FullName, t, units);
                Console.Error.WriteLine($"wrote {file.FullName}");
            }
            return 0;
        }));
        return command;
    }
}
