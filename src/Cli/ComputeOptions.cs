using System.CommandLine;
using VaeResearch.Compute;
using VaeResearch.Engine;
using VaeResearch.Training;

namespace VaeResearch.Cli;

/// <summary>The <c>--backend</c> and <c>--device</c> options of every command that runs a model.</summary>
sealed class ComputeOptions
{
    /// <summary>The shared help text of <c>--backend</c>.</summary>
    public const string BackendHelp =
        "Backend that runs the model: native (the engine; the fastest on a CPU) or torch (libtorch 2.10 through TorchSharp; CUDA where installed).";

    /// <summary>The shared help text of <c>--device</c>.</summary>
    public const string DeviceHelp =
        "Device: cpu, cuda or cuda:N (CUDA needs --backend torch and a CUDA build of libtorch: see the README, \"GPU\").";

    /// <summary><c>--backend</c>.</summary>
    public Option<string> Backend { get; } = CliOptions.Choice("--backend", BackendHelp, ComputeBackends.Native, ComputeBackends.Native, ComputeBackends.Torch);

    /// <summary><c>--device</c>.</summary>
    public Option<string> Device { get; } = CliOptions.Value("--device", DeviceHelp, "cpu");

    /// <summary>Adds both options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Backend);
        command.Options.Add(Device);
    }

    /// <summary>The compute context the options name, with the engine's current thread count.</summary>
    public IComputeContext Context(ParseResult parse) =>
        ComputeBackends.Create(parse.GetValue(Backend)!, parse.GetValue(Device)!, Parallelism.Threads);

    /// <summary>The run at <paramref name="path"/> with its checkpoint loaded on the chosen backend and device.</summary>
    public TrainedRun Load(ParseResult parse, string path) => TrainedRun.Load(path, Context(parse));
}
