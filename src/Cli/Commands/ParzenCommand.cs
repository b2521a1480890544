using System.CommandLine;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae parzen</c> (placeholder until the analysis layer lands).</summary>
static class ParzenCommand
{
    public static Command Create() => new("parzen", "(not yet available)");
}
