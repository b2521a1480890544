namespace VaeResearch.Training;

/// <summary>Learning-rate and warm-up schedules as pure functions of the position in training.</summary>
public static class Schedules
{
    /// <summary>Number of stages of the Burda schedule.</summary>
    public const int BurdaStages = 8;

    /// <summary>Total epochs of the Burda schedule: sum of 3^i for i = 0..7 = 3280.</summary>
    public const int BurdaEpochs = 3280;

    /// <summary>
    /// Learning rate for 0-based <paramref name="epoch"/>: constant, or Burda et al. (2015): stage i (i = 0..7)
    /// lasts 3^i epochs with lr = base * 10^(-i/7); after the last stage the last rate is kept.
    /// </summary>
    public static double LearningRate(ScheduleKind kind, double baseRate, int epoch)
    {
        if (kind == ScheduleKind.Constant) return baseRate;
        int stage = 0, end = 1;
        while (epoch >= end && stage < BurdaStages - 1)
        {
            stage++;
            end += (int)Math.Pow(3, stage);
        }
        return baseRate * Math.Pow(10, -stage / 7.0);
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
}
