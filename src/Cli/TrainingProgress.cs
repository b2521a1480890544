using Spectre.Console;
using VaeResearch.Training;

namespace VaeResearch.Cli;

/// <summary>Training progress: Spectre.Console progress bars on a terminal, one plain line per epoch otherwise.</summary>
static class TrainingProgress
{
    /// <summary>Runs <paramref name="work"/> with the progress display that suits the output.</summary>
    public static T Run<T>(Func<ITrainingProgress, T> work)
    {
        if (Console.IsOutputRedirected || Console.IsErrorRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            return work(new Plain());
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx => result = work(new Bars(ctx)));
        return result;
    }

    static string Line(MetricsRow r) =>
        $"epoch {r.Epoch,4}  lr {r.Lr:G3}  beta {r.Beta:F3}  train {r.TrainBound,9:F3}  test {r.TestBound,9:F3}  " +
        $"KL {r.Kl,7:F3}  active {r.ActiveUnits,3}  {r.Seconds,6:F1} s";

    sealed class Plain : ITrainingProgress
    {
        public void Info(string message) => Console.Error.WriteLine(message);
        public void EpochStarted(int epoch, int epochs, int batches) { }
        public void BatchCompleted(int batch, double bound) { }
        public void EpochCompleted(MetricsRow row) => Console.WriteLine(Line(row));
    }

    sealed class Bars(ProgressContext ctx) : ITrainingProgress
    {
        ProgressTask? task;

        public void Info(string message) => AnsiConsole.MarkupLine(Markup.Escape(message));

        public void EpochStarted(int epoch, int epochs, int batches)
        {
            task = ctx.AddTask($"epoch {epoch}/{epochs}", maxValue: batches);
        }

        public void BatchCompleted(int batch, double bound)
        {
            if (task is null) return;
            task.Value = batch;
            if (batch % 20 == 0) task.Description = $"{task.Description.Split(' ')[0]} {task.Description.Split(' ')[1]} bound {bound:F2}";
        }

        public void EpochCompleted(MetricsRow row)
        {
            if (task is not null)
            {
                task.Description = Markup.Escape(Line(row));
                task.StopTask();
            }
        }
    }
}
