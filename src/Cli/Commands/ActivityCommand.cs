using System.CommandLine;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae activity</c> (placeholder until the analysis layer lands).</summary>
static class ActivityCommand
{
    public static Command Create() => new("activity", "(not yet available)");
}
