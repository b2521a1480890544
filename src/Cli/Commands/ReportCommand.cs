using System.CommandLine;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae report</c> (placeholder until the analysis layer lands).</summary>
static class ReportCommand
{
    public static Command Create() => new("report", "(not yet available)");
}
