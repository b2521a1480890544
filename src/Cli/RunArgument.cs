using System.CommandLine;

namespace VaeResearch.Cli;

/// <summary>The RUN argument shared by the commands that read a trained run.</summary>
static class RunArgument
{
    public static Argument<DirectoryInfo> Create() => new("RUN") { Description = "A run folder written by `vae train`." };
}
