namespace VaeResearch.Training;

/// <summary>How the KL warm-up factor beta advances.</summary>
public enum WarmupKind
{
    /// <summary>Linear per optimizer step: beta = min(1, t / (warmup_epochs * batches per epoch)).</summary>
    Step,
    /// <summary>
    /// Linear per epoch, constant within an epoch: beta = min(1, e / warmup_epochs) for the 0-based epoch e, so beta = 0
    /// throughout the first epoch and 1 from epoch warmup_epochs + 1 on (activity paper, section 2.6, eq. 4).
    /// </summary>
    Epoch,
}

/// <summary>Learning-rate and warm-up schedules as pure functions of the position in training.</summary>
public static class Schedules
{
    /// <summary>Number of stages of the Burda schedule.</summary>
    public const int BurdaStages = 8;

    /// <summary>Total epochs of the Burda schedule: sum of 3^i for i = 0..7 = 3280.</summary>
    public const int BurdaEpochs = 3280;

    /// <summary>
    /// Learning rate for 0-based <paramref name="epoch"/>: constant, or Burda et al. (2015): stage i (i = 0..7)
    /// lasts 3^i epochs with lr = base * 10^(-i/7) (<see cref="ScheduleKind.Burda"/>) or that factor rounded as in
    /// their code, base * round(10^(1 - i/7), 1) / 10 (<see cref="ScheduleKind.BurdaRounded"/>: 1e-3, 7.2e-4, 5.2e-4,
    /// 3.7e-4, 2.7e-4, 1.9e-4, 1.4e-4, 1e-4 at base 1e-3; another base scales them proportionally). After the last
    /// stage the last rate is kept.
    /// </summary>
    public static double LearningRate(ScheduleKind kind, double baseRate, int epoch) => kind switch
    {
        ScheduleKind.Constant => baseRate,
        ScheduleKind.Burda => baseRate * Math.Pow(10, -BurdaStage(epoch) / 7.0),
        // NOTE: Math.Round rounds half to even, as Python 3's round; no stage's 10^(1 - i/7) lies on a midpoint.
        ScheduleKind.BurdaRounded => baseRate * Math.Round(Math.Pow(10, 1 - BurdaStage(epoch) / 7.0), 1) / 10,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown schedule"),
    };

    /// <summary>
    /// The Burda stage i (0..7) of 0-based <paramref name="epoch"/>: stage i covers epochs [(3^i - 1) / 2, (3^(i+1) - 1) / 2),
    /// i.e. 3^i epochs; epochs past 3280 stay in stage 7.
    /// </summary>
    public static int BurdaStage(int epoch)
    {
        int stage = 0, end = 1;
        while (epoch >= end && stage < BurdaStages - 1)
        {
            stage++;
            end += (int)Math.Pow(3, stage);
        }
        return stage;
    }

    /// <summary>
    /// Warm-up beta after <paramref name="step"/> completed optimizer steps: rises linearly from 0 (step 0) to 1
    /// at <paramref name="warmupEpochs"/> * <paramref name="stepsPerEpoch"/> steps and stays 1 (activity paper, section 2.6).
    /// </summary>
    public static double WarmupBeta(int warmupEpochs, int stepsPerEpoch, long step)
    {
        if (warmupEpochs <= 0) return 1.0;
        double total = (double)warmupEpochs * stepsPerEpoch;
        return Math.Min(1.0, step / total);
    }

    /// <summary>
    /// Warm-up beta of <paramref name="kind"/>: per step (<see cref="WarmupBeta(int, int, long)"/>), or per epoch,
    /// min(1, <paramref name="epoch"/> / <paramref name="warmupEpochs"/>) for the 0-based epoch (activity paper, section 2.6:
    /// "the first epoch [is] a standard deterministic autoencoder", fully variational "after N_T epochs").
    /// </summary>
    public static double WarmupBeta(WarmupKind kind, int warmupEpochs, int stepsPerEpoch, long step, int epoch)
    {
        if (kind == WarmupKind.Step) return WarmupBeta(warmupEpochs, stepsPerEpoch, step);
        if (warmupEpochs <= 0) return 1.0;
        return Math.Min(1.0, (double)epoch / warmupEpochs);
    }
}
