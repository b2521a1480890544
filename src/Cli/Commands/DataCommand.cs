using System.CommandLine;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae data ...</c> (placeholder until the data issue lands).</summary>
static class DataCommand
{
    public static Command Create() => new("data", "Data sets: fetch and verify MNIST.");
}
