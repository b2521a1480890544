using System.Diagnostics;
using VaeResearch.Compute;
using VaeResearch.Data;
using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>What a training run reports while it works (the CLI draws progress bars or prints lines).</summary>
public interface ITrainingProgress
{
    /// <summary>A one-line message (data loading, resuming, ...).</summary>
    void Info(string message);

    /// <summary>An epoch (1-based) begins with this many minibatches.</summary>
    void EpochStarted(int epoch, int epochs, int batches);

    /// <summary>A minibatch finished with this mean training bound.</summary>
    void BatchCompleted(int batch, double bound);

    /// <summary>An epoch finished; its metrics are saved.</summary>
    void EpochCompleted(MetricsRow row);
}

/// <summary>A progress sink that reports nothing (scripts, tests, batch jobs).</summary>
public sealed class SilentProgress : ITrainingProgress
{
    /// <summary>The one instance.</summary>
    public static readonly SilentProgress Instance = new();

    SilentProgress() { }

    /// <inheritdoc/>
    public void Info(string message) { }

    /// <inheritdoc/>
    public void EpochStarted(int epoch, int epochs, int batches) { }

    /// <inheritdoc/>
    public void BatchCompleted(int batch, double bound) { }

    /// <inheritdoc/>
    public void EpochCompleted(MetricsRow row) { }
}

/// <summary>Random streams of a training run: each a pure function of (seed, purpose, epoch), so resumed runs replay them.</summary>
public static class TrainStreams
{
    const ulong InitTag = 0x7E01, NoiseTag = 0x7E02, EvalTag = 0x7E03, ToolTag = 0x7E04, AssignTag = 0x7E05, ActivityTag = 0x7E06;

    /// <summary>Weight initialization.</summary>
    public const ulong Init = InitTag << 48;

    /// <summary>The training images of the train_random activity population (<see cref="ActivitySample"/>).</summary>
    public const ulong ActivitySubset = ActivityTag << 48;

    /// <summary>The first epoch's balanced random epitome assignment.</summary>
    public const ulong InitialAssignment = AssignTag << 48;

    /// <summary>
    /// The Monte-Carlo draws of the y* assignment at the start of epoch <paramref name="epoch"/> (0-based;
    /// <c>evae_assign monte_carlo</c>): a sub-stream of the assignment tag, apart from <see cref="InitialAssignment"/>.
    /// </summary>
    public static ulong Assignment(int epoch) => (AssignTag << 48) | (1UL << 32) | (uint)epoch;

    /// <summary>Sampling noise and dropout masks of epoch <paramref name="epoch"/> (0-based).</summary>
    public static ulong Noise(int epoch) => (NoiseTag << 48) | (uint)epoch;

    /// <summary>Sampling noise of the evaluation after epoch <paramref name="epoch"/> (0-based).</summary>
    public static ulong Eval(int epoch) => (EvalTag << 48) | (uint)epoch;

    /// <summary>Noise of a command run on a trained model (<c>vae eval</c>, <c>vae sample</c>, ...), by command id.</summary>
    public static ulong Tool(uint command) => (ToolTag << 48) | command;
}

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
/// <param name="Model">The trained model (in evaluation mode).</param>
/// <param name="Metrics">Every metrics row of the run, including those from before a resume.</param>
/// <param name="Stopped">Whether a stop request ended training early (after a completed, checkpointed epoch).</param>
public sealed record TrainingResult(IGenerativeModel Model, IReadOnlyList<MetricsRow> Metrics, bool Stopped = false);

/// <summary>
/// Trains a model on minibatches with Adam, one run folder per run: after every epoch it evaluates the test
/// set (and the activity on <see cref="TrainConfig.ActivityPopulation"/>), appends to metrics.csv and activity.csv and replaces the checkpoint atomically. A resumed run
/// continues from the last completed epoch and ends bit-identical to an uninterrupted run with the same
/// seed and thread count (every random draw is a pure function of the seed and the epoch).
/// </summary>
public static class Trainer
{
    /// <summary>Loads the data set a configuration names (MNIST is fetched on first use).</summary>
    public static DataSplits LoadData(TrainConfig config, string? dataDirectory, Action<string>? progress)
    {
        var splits = config.Dataset == SyntheticData.Name
            ? SyntheticData.Generate(config.Seed, config.SyntheticDimension)
            : Mnist.Load(dataDirectory, 0, progress);
        var train = config.TrainSubset is int n ? splits.Train.Take(n) : splits.Train;
        var test = config.TestSubset is int m ? splits.Test.Take(m) : splits.Test;
        return new DataSplits(train, splits.Validation, test);
    }

    /// <summary>
    /// Trains <paramref name="config"/> into <paramref name="run"/> up to <c>config.Epochs</c> epochs,
    /// continuing from the checkpoint when <paramref name="resume"/> is set.
    /// </summary>
    /// <remarks>
    /// When <paramref name="stop"/> is cancelled (SIGTERM, Ctrl-C, Slurm's pre-emption signal), training ends
    /// after the current epoch's checkpoint and the result says <see cref="TrainingResult.Stopped"/>; the run
    /// resumes from there.
    /// </remarks>
    /// <exception cref="TrainingDivergedException">The loss or the weights stopped being finite; the last good checkpoint is kept.</exception>
    public static TrainingResult Run(TrainConfig config, RunFolder run, bool resume, DataSplits data, ITrainingProgress progress,
        CancellationToken stop = default)
    {
        config.Validate();
        var context = ComputeBackends.Create(config.Backend, config.Device, Parallelism.Threads);
        return context.Apply(new Training(config, run, resume, data, progress, stop));
    }

    sealed record Training(TrainConfig Config, RunFolder Run, bool Resume, DataSplits Data, ITrainingProgress Progress, CancellationToken Stop)
        : IContextFunction<TrainingResult>
    {
        public TrainingResult Invoke<T>(ComputeContext<T> context) where T : class, ITensor<T> =>
            Train(context, Config, Run, Resume, Data, Progress, Stop);
    }

    /// <summary>The training loop, written once for every backend.</summary>
    static TrainingResult Train<T>(ComputeContext<T> context, TrainConfig config, RunFolder run, bool resume, DataSplits data,
        ITrainingProgress progress, CancellationToken stop) where T : class, ITensor<T>
    {
        var train = data.Train;
        int dim = train.Dim;
        var model = ModelFactory.Build(context, config, dim, new Rng(config.Seed, TrainStreams.Init));
        ModelFactory.InitializeOutputBias(model, config, train);
        var adam = context.Adam(model.Parameters(),
            new AdamSettings((float)config.Lr, (float)config.AdamBeta1, (float)config.AdamBeta2, (float)config.AdamEps, config.Optimizer));
        var bound = config.Bound;

        int start = 0;
        var metrics = new List<MetricsRow>();
        var metricsCsv = RunCsv.Metrics();
        var activity = RunCsv.Activity();
        var assignments = RunCsv.Assignments();
        // A resumed run records itself in config.json (its epoch total, threads and versions) once an epoch has completed under it.
        bool resumeUnrecorded = resume && run.HasCheckpoint;
        if (resumeUnrecorded)
        {
            var saved = run.ReadConfig();
            if (!SameSettings(saved with { Epochs = config.Epochs }, config))
                throw new VaeResearchException(
                    $"{run.Path}: a resumed run keeps its configuration (only the epochs may change); the given settings differ from config.json");
            // NOTE: the native engine's GEMM kernel is part of a run's float32 arithmetic: resume on the one it trained with.
            if (context.Backend == ComputeBackends.Native && run.ReadGemmKernel() is { } kernel && Gemm.UseRecorded(kernel) is { } note)
                progress.Info(note);
            start = run.LoadCheckpoint(model, adam);
            // NOTE: rows past the checkpoint come from an epoch that was killed before its checkpoint landed.
            if (File.Exists(run.MetricsPath)) metrics.AddRange(RunCsv.ReadMetrics(run.MetricsPath).Where(r => r.Epoch <= start));
            metricsCsv.With(metrics);
            if (File.Exists(run.ActivityPath)) activity.With(RunCsv.ReadActivity(run.ActivityPath).Where(r => r.Epoch <= start));
            if (File.Exists(run.AssignmentsPath)) assignments.With(RunCsv.ReadAssignments(run.AssignmentsPath).Where(r => r.Epoch <= start));
            progress.Info(start >= config.Epochs
                ? $"run already has {start} epochs (asked for {config.Epochs}): nothing to train"
                : $"resuming after epoch {start} of {config.Epochs}");
        }
        else
        {
            run.WriteConfig(config, context);
        }
        // Said here, once the kernel is settled: a resumed run continues on the one it recorded, not the calibrated default.
        progress.Info(context.Backend == ComputeBackends.Native ? $"gemm {Gemm.KernelDescription}" : $"backend {context.Backend} on {context.Device}");

        var binarizer = new Binarizer(train, config.EffectiveBinarization, config.Seed);
        var testImages = new Binarizer(data.Test, config.EffectiveBinarization, config.Seed).Epoch(0);
        var (activityImages, activityCount) = ActivitySample.Images(config, data, testImages);
        bool separateActivity = config.ActivityPopulation != ActivityPopulation.Test;
        if (config.ActivityInitial && start == 0)
            AddActivity(activity, 0, Evaluation.Units(model, activityImages, activityCount));
        int batches = Batches.Count(train.Count, config.Batch);
        var groupBuffer = new int[config.Batch];
        var rowBuffer = new int[config.Batch];

        for (int epoch = start; epoch < config.Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            double lr = Schedules.LearningRate(config.Schedule, config.Lr, epoch);
            adam.LearningRate = (float)lr;
            progress.EpochStarted(epoch + 1, config.Epochs, batches);

            int[]? assignment = model.Groups <= 1 ? null : EpochAssignment(model, config, binarizer, epoch);
            var order = assignment is null
                ? Batches.Order(config.Order, config.Seed, epoch, train.Count)
                : Batches.Stratified(assignment, config.Batch, config.Seed, epoch, config.Order);
            var noise = new Rng(config.Seed, TrainStreams.Noise(epoch));
            model.Train();
            double boundSum = 0;
            double beta = 1.0;
            for (int b = 0; b < batches; b++)
            {
                var rows = Batches.Batch(order, config.Batch, b);
                var groups = groupBuffer.AsSpan(0, rows.Length);
                for (int i = 0; i < rows.Length; i++) groups[i] = assignment?[rows[i]] ?? 0;
                beta = config.KlWeight * Schedules.WarmupBeta(config.Warmup, config.WarmupEpochs, batches, adam.StepCount, epoch);
                float loss;
                using (context.Scope())
                {
                    rows.CopyTo(rowBuffer);
                    int count = rows.Length, e = epoch;
                    var x = context.Fill(values => binarizer.Fill(rowBuffer.AsSpan(0, count), e, values), count, dim);
                    var perExample = model.TrainingObjective(x, groups, bound, (float)beta, noise);
                    // NOTE: a summed loss (Burda et al.'s code) scales the gradient by the batch size; the reported loss
                    // is the mean either way.
                    var objective = config.SummedLoss ? -perExample.Sum() : -perExample.Mean();
                    objective.Backward();
                    loss = config.SummedLoss ? objective.Item() / rows.Length : objective.Item();
                }
                if (!float.IsFinite(loss))
                    throw new TrainingDivergedException(run, epoch + 1, b + 1, $"the loss is {loss}");
                adam.Step();
                adam.ZeroGrad();
                boundSum -= (double)loss * rows.Length;
                progress.BatchCompleted(b + 1, -loss);
            }
            foreach (var p in model.Parameters())
                foreach (float v in p.ToArray())
                    if (!float.IsFinite(v))
                        throw new TrainingDivergedException(run, epoch + 1, batches, "a weight is not finite");

            var eval = Evaluation.Evaluate(model, testImages, data.Test.Count, bound, new Rng(config.Seed, TrainStreams.Eval(epoch)));
            var units = separateActivity ? Evaluation.Units(model, activityImages, activityCount) : eval.Units;
            var row = new MetricsRow(epoch + 1, lr, beta, boundSum / train.Count, eval.Bound, eval.Units.TotalKl,
                units.ActiveUnits(), clock.Elapsed.TotalSeconds);
            metrics.Add(row);
            metricsCsv.Add(row);
            AddActivity(activity, epoch + 1, units);
            if (resumeUnrecorded)
            {
                run.RecordResume(config, context, start);
                resumeUnrecorded = false;
            }
            metricsCsv.Save(run.MetricsPath);
            activity.Save(run.ActivityPath);
            if (assignment is not null)
            {
                var counts = new int[model.Groups];
                foreach (int y in assignment) counts[y]++;
                for (int y = 0; y < counts.Length; y++) assignments.Add(new AssignmentRow(epoch + 1, y, counts[y]));
                assignments.Save(run.AssignmentsPath);
            }
            run.SaveCheckpoint(model, adam, epoch + 1);
            progress.EpochCompleted(row);
            if (stop.IsCancellationRequested && epoch + 1 < config.Epochs)
            {
                progress.Info($"stopped after epoch {epoch + 1} of {config.Epochs} (checkpoint saved; resume to continue)");
                model.Eval();
                return new TrainingResult(model, metrics, Stopped: true);
            }
        }
        model.Eval();
        return new TrainingResult(model, metrics);
    }

    /// <summary>Appends one activity.csv row per latent unit for <paramref name="epoch"/> (0: before training).</summary>
    static void AddActivity(GrowingCsv<ActivityRow> rows, int epoch, UnitStatistics units)
    {
        for (int u = 0; u < units.Activity.Length; u++) rows.Add(new ActivityRow(epoch, u, units.Activity[u], units.Kl[u]));
    }

    /// <summary>Whether two configurations agree in every setting (compared as their config.json form).</summary>
    static bool SameSettings(TrainConfig a, TrainConfig b) =>
        System.Text.Json.JsonSerializer.Serialize(a, RunFolder.Json) == System.Text.Json.JsonSerializer.Serialize(b, RunFolder.Json);

    /// <summary>
    /// The training images' groups for epoch <paramref name="epoch"/> (0-based) of a model with groups, [count]:
    /// Algorithm 1, step 3, y* = argmin_y C_evae under the current parameters on that epoch's binarized images,
    /// with the reconstruction term estimated as <c>evae_assign</c> says; in the first epoch, unless
    /// <c>evae_first_epoch</c> is <c>assign</c>, a seeded balanced random assignment (group i mod G of a random
    /// permutation) instead. A pure function of the parameters, the seed and the epoch (resume replays it).
    /// </summary>
    /// <remarks>
    /// Why the balanced start is the default: before any training the costs differ only by the random
    /// initialization, and following them lets one epitome take most examples while the ones it starves never
    /// train (seen on MNIST: 1034/0/3966/0 with four epitomes). With it every epitome trains on an equal share
    /// first; from the second epoch on, y* follows Algorithm 1. <c>evae_first_epoch assign</c> is the algorithm as
    /// the paper states it.
    /// </remarks>
    public static int[] EpochAssignment(IGenerativeModel model, TrainConfig config, Binarizer binarizer, int epoch)
    {
        if (epoch == 0 && config.EvaeFirstEpoch == FirstEpochAssignment.Balanced)
            return InitialAssignment(binarizer.Data.Count, model.Groups, config.Seed);
        return config.EvaeAssign == AssignmentEstimate.MonteCarlo
            ? AssignAll(model, binarizer, epoch, config.EvaeAssignSamples, new Rng(config.Seed, TrainStreams.Assignment(epoch)))
            : AssignAll(model, binarizer, epoch, 0, null);
    }

    /// <summary>The seeded balanced random assignment of <paramref name="count"/> images to <paramref name="groups"/> groups.</summary>
    static int[] InitialAssignment(int count, int groups, ulong seed)
    {
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        new Rng(seed, TrainStreams.InitialAssignment).Shuffle<int>(order);
        var assignment = new int[count];
        for (int i = 0; i < count; i++) assignment[order[i]] = i % groups;
        return assignment;
    }

    /// <summary>
    /// Each training example's best group y* under this epoch's binarized images (Algorithm 1, step 3), in evaluation
    /// mode; <paramref name="samples"/> Monte-Carlo draws per image and group from <paramref name="rng"/>, in example order
    /// (0: plug-in).
    /// </summary>
    static int[] AssignAll(IGenerativeModel model, Binarizer binarizer, int epoch, int samples, Rng? rng, int batch = 500)
    {
        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            return model.Evaluator.Assign(binarizer.Data.Count, (start, count, values) => binarizer.FillRange(start, count, epoch, values),
                samples, rng, batch);
        }
        finally
        {
            model.Train(wasTraining);
        }
    }
}

/// <summary>Training stopped because the loss or the weights became NaN or infinite.</summary>
public sealed class TrainingDivergedException : VaeResearchException
{
    internal TrainingDivergedException(RunFolder run, int epoch, int batch, string what)
        : base($"training diverged in epoch {epoch}, minibatch {batch}: {what}. " +
               (epoch > 1
                   ? $"The last good checkpoint (epoch {epoch - 1}) is kept in {run.Path}; "
                   : $"No epoch completed, so {run.Path} has no checkpoint; ") +
               "try a smaller lr, a larger adam_eps or a KL warm-up (warmup_epochs).")
    {
        Epoch = epoch;
    }

    /// <summary>The epoch (1-based) in which training diverged.</summary>
    public int Epoch { get; }
}
