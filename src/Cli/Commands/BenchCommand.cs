using System.CommandLine;

namespace VaeResearch.Cli.Commands;

/// <summary><c>vae bench</c> (placeholder until the engine lands).</summary>
static class BenchCommand
{
    public static Command Create() => new("bench", "Benchmark sgemm and the training step.");
}
