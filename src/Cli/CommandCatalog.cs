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
        yield return BenchCommand.Create();
    }
}
