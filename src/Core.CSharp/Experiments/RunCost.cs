using VaeResearch.Data;
using VaeResearch.Models;
using VaeResearch.Training;

namespace VaeResearch.Experiments;

/// <summary>
/// The multiply-adds a run costs, counted from its configuration before anything trains, to plan a sweep's compute
/// (<c>vae sweep run --dry-run</c>). A dense layer costs one multiply-add per weight and example in a forward pass and
/// two in the backward pass, so per example a pass through the encoder costs its weight count E and one through the
/// decoder its count W (<see cref="VaeShape"/>; an mVAE's are one component's). Element-wise work (activations, the
/// bounds' sums, Adam) and Parzen's scoring are not counted.
/// </summary>
/// <param name="Training">
/// Forward and backward over every training example every epoch: 3 (E + k W) each, less the input gradient of the layer
/// on x (nothing needs it).
/// </param>
/// <param name="Assignment">
/// The eVAE's and mVAE's choice of y* for every training example every epoch but a balanced first one (Algorithm 1,
/// step 3): one decoder pass per group and drawn sample, after the eVAE's one encoder pass or each component's.
/// </param>
/// <param name="Evaluation">
/// Every epoch's test bound and unit statistics (with y* for a model with groups), the activity population's, and the
/// initial activity (<c>activity_initial</c>).
/// </param>
/// <param name="Final">The sweep's L_k over the test images (<c>[eval] k</c>): the samples its budget draws, and an encoder pass per group.</param>
public sealed record RunCost(double Training, double Assignment, double Evaluation, double Final)
{
    /// <summary>All of it.</summary>
    public double Total => Training + Assignment + Evaluation + Final;

    /// <summary>
    /// The multiply-adds per second <paramref name="config"/>'s first epochs reached: their cost over the seconds
    /// metrics.csv records for them (<paramref name="epochs"/>, epochs 1 to n); null before an epoch has been timed. What
    /// <c>vae sweep status</c> shows, to set <c>--dry-run</c>'s rate from runs on the same machine.
    /// </summary>
    public static double? Rate(TrainConfig config, IReadOnlyList<MetricsRow> epochs)
    {
        double seconds = epochs.Sum(r => r.Seconds);
        if (!(seconds > 0)) return null;
        return (Of(config, null).Total - Of(config, null, completedEpochs: epochs.Count).Total) / seconds;
    }

    /// <summary>
    /// The cost of <paramref name="config"/>'s epochs after the first <paramref name="completedEpochs"/>, and of the final
    /// evaluation with <paramref name="finalK"/> samples under <paramref name="budget"/> (none when null) on
    /// <paramref name="finalImages"/> test images (all when null).
    /// </summary>
    public static RunCost Of(TrainConfig config, int? finalK, EvaluationBudget budget = EvaluationBudget.PerEpitome,
        int? finalImages = null, int completedEpochs = 0)
    {
        bool synthetic = config.Dataset == SyntheticData.Name;
        int input = Mnist.Pixels;
        int train = config.TrainSubset ?? (synthetic ? SyntheticData.DefaultTrainCount : Mnist.TrainCount);
        int test = config.TestSubset ?? (synthetic ? SyntheticData.DefaultTestCount : Mnist.TestCount);

        int groups = 1, latent = config.Latent;
        IReadOnlyList<int> hidden = config.Hidden;
        if (config.Model != ModelKind.Vae)
        {
            var layout = ModelFactory.Layout(config);
            groups = layout.Count;
            if (config.Model == ModelKind.Mvae) (latent, hidden) = (layout.Size, ModelFactory.MixtureHidden(config, input, layout));
        }
        double e = VaeShape.Weights(VaeShape.Encoder(input, latent, hidden));
        double w = VaeShape.Weights(VaeShape.Decoder(input, latent, hidden, config.Decoder));
        // The encoder passes of choosing y*: the eVAE's groups share one, each mVAE component has its own.
        double encoders = config.Model == ModelKind.Mvae ? groups * e : e;
        double Choose(int samples) => groups == 1 ? 0 : encoders + groups * samples * w;

        int epochs = Math.Max(0, config.Epochs - completedEpochs);
        int assigned = config.EvaeFirstEpoch == FirstEpochAssignment.Balanced && completedEpochs == 0 ? epochs - 1 : epochs;
        int drawn = config.EvaeAssign == AssignmentEstimate.MonteCarlo ? config.EvaeAssignSamples : 1;
        double units = Choose(1) + e;
        int activity = config.ActivityPopulation == ActivityPopulation.Test ? 0 : config.ActivityN ?? 0;
        int initial = config.ActivityInitial && completedEpochs == 0 ? (activity > 0 ? activity : test) : 0;
        double onInput = hidden.Count > 0 ? (double)input * hidden[0] : 2.0 * input * latent;
        // The final L_k's encoder passes: one per group (for every group, or those holding samples), or y*'s choice and one.
        // NOTE: k beyond one chunk of the evaluator's row budget adds an encoder pass per chunk: < 0.01 % at k = 5000.
        double final = finalK is int k
            ? (double)(finalImages ?? test) * (budget switch
            {
                EvaluationBudget.PerEpitome => groups * e,
                EvaluationBudget.Total => e * Math.Min(groups, k),
                _ => Choose(1) + e,
            } + VaeResearch.Training.Evaluation.SamplesDrawn(budget, k, groups) * w)
            : 0;
        return new RunCost(
            Training: (double)epochs * train * (3 * (e + config.Samples * w) - onInput),
            Assignment: (double)Math.Max(0, assigned) * train * Choose(drawn),
            Evaluation: (double)epochs * (test * (units + e + config.Samples * w) + activity * units) + initial * units,
            Final: final);
    }
}
