using System.CommandLine;

namespace VaeResearch.Cli.Commands;

/// <summary>Every subcommand of <c>vae</c>, in the order <c>--help</c> lists them.</summary>
static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return DataCommand.Create();
        yield return TrainCommand.Create();
        yield return EvalCommand.Create();
        yield return EncodeCommand.Create();
        yield return SampleCommand.Create();
        yield return ReconstructCommand.Create();
        yield return ActivityCommand.Create();
        yield return ParzenCommand.Create();
        yield return ReportCommand.Create();
        yield return TablesCommand.Create();
        yield return SweepCommand.Create();
        yield return BenchCommand.Create();
    }

    /// <summary>The <c>vae</c> root command with every subcommand.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("vae: variational autoencoders and the over-pruning of their latent units.");
        foreach (var command in All()) root.Subcommands.Add(command);
        return root;
    }

    /// <summary>Runs a <c>vae</c> command line in this process (a sweep task's evaluations); returns its exit code.</summary>
    public static int Invoke(string[] args) => Root().Parse(args).Invoke();
}
