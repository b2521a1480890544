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
/// <param name="Testing">
/// Every epoch's test bound and unit statistics (with y* for a model with groups), the activity population's, and the
/// initial activity (<c>activity_initial</c>).
/// </param>
/// <param name="Final">
/// The sweep's L_k over the test images (<c>[eval] k</c>): the samples its budget draws, and the encoder passes of
/// its chunks (<see cref="Evaluation.Chunk"/>), with y*'s choice under the <c>ystar</c> budget.
/// </param>
public sealed record RunCost(double Training, double Assignment, double Testing, double Final)
{
    /// <summary>All of it.</summary>
    public double Total => Training + Assignment + Testing + Final;

    /// <summary>
    /// The cost of <paramref name="config"/>'s epochs after the first <paramref name="completedEpochs"/>, and of the final
    /// evaluation with <paramref name="finalK"/> samples under <paramref name="budget"/> (none when null) on
    /// <paramref name="finalImages"/> test images (the whole test set when null, as <c>vae eval</c> takes it).
    /// </summary>
    public static RunCost Of(TrainConfig config, int? finalK, EvaluationBudget budget = EvaluationBudget.PerEpitome,
        int? finalImages = null, int completedEpochs = 0)
    {
        var net = Network.Of(config);
        int first = Math.Min(completedEpochs, config.Epochs);
        var epochs = Enumerable.Range(first, config.Epochs - first).Select(net.Epoch).ToList();
        double final = finalK is int k ? Math.Min(finalImages ?? net.FullTest, net.FullTest) * net.FinalPerImage(k, budget) : 0;
        return new RunCost(epochs.Sum(e => e.Training), epochs.Sum(e => e.Assignment),
            epochs.Sum(e => e.Testing) + (first == 0 ? net.InitialActivity : 0), final);
    }

    /// <summary>
    /// The multiply-adds per core and second that the epochs of <paramref name="metrics"/> (a run's metrics.csv, epochs 1
    /// to n) reached: their count over the seconds recorded for them, divided by the <paramref name="threads"/> each ran
    /// on; null before an epoch has been timed. What <c>vae sweep status</c> shows, to set <c>--dry-run</c>'s rate from
    /// runs on the same machine.
    /// </summary>
    public static double? Rate(TrainConfig config, IReadOnlyList<MetricsRow> metrics, int threads)
    {
        double seconds = metrics.Sum(r => r.Seconds);
        if (!(seconds > 0)) return null;
        var net = Network.Of(config);
        return Enumerable.Range(0, metrics.Count).Sum(e => net.Epoch(e).Total) / seconds / Math.Max(1, threads);
    }

    /// <summary>
    /// A run's passes per example: encoder E and decoder W of one group's network, the groups y* is chosen among and
    /// whether they share the encoder (the eVAE) or each have one (the mVAE's components), and its data sizes.
    /// </summary>
    sealed record Network(TrainConfig Config, double E, double W, int Groups, double Encoders, double OnInput, int Train, int Test, int FullTest)
    {
        public static Network Of(TrainConfig config)
        {
            bool synthetic = config.Dataset == SyntheticData.Name;
            int input = Mnist.Pixels;
            int fullTrain = synthetic ? SyntheticData.DefaultTrainCount : Mnist.TrainCount;
            int fullTest = synthetic ? SyntheticData.DefaultTestCount : Mnist.TestCount;
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
            return new Network(config, e, w, groups, config.Model == ModelKind.Mvae ? groups * e : e, (double)input * hidden[0],
                Math.Min(config.TrainSubset ?? fullTrain, fullTrain), Math.Min(config.TestSubset ?? fullTest, fullTest), fullTest);
        }

        int Activity => Config.ActivityPopulation == ActivityPopulation.Test ? 0 : Config.ActivityN ?? 0;

        /// <summary>Choosing y* among the groups with <paramref name="samples"/> decoder passes each (none without groups).</summary>
        double Choose(int samples) => Groups == 1 ? 0 : Encoders + Groups * samples * W;

        /// <summary>y* and the posterior means of the unit statistics.</summary>
        double Units => Choose(1) + E;

        /// <summary>The activity of epoch 0, before any training (<c>activity_initial</c>).</summary>
        public double InitialActivity => Config.ActivityInitial ? (Activity > 0 ? Activity : Test) * Units : 0;

        /// <summary>Epoch <paramref name="index"/> (0-based).</summary>
        public RunCost Epoch(int index)
        {
            bool balanced = index == 0 && Config.EvaeFirstEpoch == FirstEpochAssignment.Balanced;
            int drawn = Config.EvaeAssign == AssignmentEstimate.MonteCarlo ? Config.EvaeAssignSamples : 1;
            int k = Config.Samples;
            return new RunCost(
                Training: Train * (3 * (E + k * W) - OnInput),
                Assignment: balanced ? 0 : Train * Choose(drawn),
                Testing: Test * (Units + E + k * W) + Activity * Units,
                Final: 0);
        }

        /// <summary>L_k of one image under <paramref name="budget"/>, as the model evaluator computes it (<c>vae eval --budget</c>).</summary>
        public double FinalPerImage(int k, EvaluationBudget budget)
        {
            static int Chunks(int samples, int chunk) => (samples + chunk - 1) / chunk;
            int chunk = Evaluation.Chunk(budget, k, Groups);
            // The marginal encodes once per group and chunk; the strata (every group holding samples, or y*) once per chunk.
            if (budget == EvaluationBudget.PerEpitome || Groups == 1) return Chunks(k, chunk) * Groups * E + (double)k * Groups * W;
            int[] strata = budget == EvaluationBudget.Total ? [.. Evaluation.Allocation(k, Groups).Where(a => a > 0)] : [k];
            return (budget == EvaluationBudget.Ystar ? Choose(1) : 0) + strata.Sum(a => Chunks(a, chunk)) * E + (double)k * W;
        }
    }
}
