using System.CommandLine;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae tables</c> (placeholder until the analysis layer lands).</summary>
static class TablesCommand
{
    public static Command Create() => new("tables", "(not yet available)");
}
