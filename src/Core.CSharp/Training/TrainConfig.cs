using VaeResearch.Compute;
using System.Text.Json.Serialization;
using VaeResearch.Data;
using VaeResearch.Engine;
using VaeResearch.Models;

namespace VaeResearch.Training;

/// <summary>Which model family to train.</summary>
public enum ModelKind
{
    /// <summary>Variational autoencoder (IWAE when k &gt; 1).</summary>
    Vae,
    /// <summary>Epitomic VAE (eVAE paper, section 4).</summary>
    Evae,
    /// <summary>Mixture of independent VAEs with the epitome layout (eVAE paper, section 5.2).</summary>
    Mvae,
}

/// <summary>Learning-rate schedule.</summary>
public enum ScheduleKind
{
    /// <summary>The base learning rate throughout.</summary>
    Constant,
    /// <summary>Burda et al. (2015): 8 stages, lr = base * 10^(-i/7) for 3^i epochs, i = 0..7 (3280 epochs).</summary>
    Burda,
    /// <summary>Burda et al.'s code: the same stages with the factor rounded, lr = base * round(10^(1 - i/7), 1) / 10.</summary>
    BurdaRounded,
}

/// <summary>How the eVAE/mVAE assigns the training images in the first epoch.</summary>
public enum FirstEpochAssignment
{
    /// <summary>A seeded balanced random assignment (see the remarks of <see cref="Trainer.EpochAssignment(IGenerativeModel, TrainConfig, Binarizer, int)"/>).</summary>
    Balanced,
    /// <summary>Algorithm 1 as stated: y* = argmin C_evae under the initial parameters.</summary>
    Assign,
}

/// <summary>How y* estimates the reconstruction term E_q[log p(x|y, z)] of C_evae (eVAE paper, eq. 7).</summary>
public enum AssignmentEstimate
{
    /// <summary>Plug-in: log p(x | m_y mu) at the posterior mean (deterministic).</summary>
    Plugin,
    /// <summary>Monte Carlo: the mean of log p(x | m_y z_s) over <c>evae_assign_samples</c> seeded draws z_s ~ q(z|x, y).</summary>
    MonteCarlo,
}

/// <summary>
/// The images on which the per-epoch activity A_u (activity.csv, metrics.csv's <c>active_units</c>) is measured.
/// </summary>
public enum ActivityPopulation
{
    /// <summary>The run's test set (or <c>test_subset</c>) with its fixed binarization: the default.</summary>
    Test,
    /// <summary>
    /// The first <c>activity_n</c> training images (Burda et al. 2015 use the first 500), binarized as the model
    /// sees them in its first epoch.
    /// </summary>
    TrainFirst,
    /// <summary>
    /// <c>activity_n</c> training images drawn without replacement by the run's seed (the same ones every epoch),
    /// binarized as the model sees them in its first epoch.
    /// </summary>
    TrainRandom,
}

/// <summary>
/// Every setting of a training run, as <c>vae train</c> takes them and <c>config.json</c> stores them
/// (snake_case keys). <see cref="Validate"/> names the configuration key that is wrong.
/// </summary>
public sealed record TrainConfig
{
    /// <summary>Data set: "mnist" or "synthetic".</summary>
    public string Dataset { get; init; } = "mnist";

    /// <summary>True latent dimension of the synthetic data set.</summary>
    public int SyntheticDimension { get; init; } = SyntheticData.DefaultLatentDimension;

    /// <summary>Model family.</summary>
    public ModelKind Model { get; init; } = ModelKind.Vae;

    /// <summary>
    /// Importance samples k in the training objective (1: the VAE's ELBO with analytic KL); Burda et al.'s k,
    /// config key <c>k</c> (K is the epitome size).
    /// </summary>
    [JsonPropertyName("k")]
    public int Samples { get; init; } = 1;

    /// <summary>Likelihood family of the decoder.</summary>
    public DecoderKind Decoder { get; init; } = DecoderKind.Bernoulli;

    /// <summary>Latent dimension D.</summary>
    public int Latent { get; init; } = 50;

    /// <summary>Hidden layer widths of encoder and decoder.</summary>
    public int[] Hidden { get; init; } = [200, 200];

    /// <summary>Hidden activation.</summary>
    public Activation Activation { get; init; } = Activation.Softplus;

    /// <summary>Minibatch size.</summary>
    public int Batch { get; init; } = 100;

    /// <summary>Epochs to train (the burda schedule has 3280 in all; fewer cut it short).</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Learning-rate schedule.</summary>
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;

    /// <summary>Weight initialization: Xavier-Glorot normal (activity paper) or Glorot-uniform (Burda et al.'s code).</summary>
    public WeightInit Init { get; init; } = WeightInit.Normal;

    /// <summary>Initial decoder output bias: 0, or the logit of the clipped mean training image (Burda et al.'s code).</summary>
    public OutputBias OutputBias { get; init; } = OutputBias.Zero;

    /// <summary>Minibatch order: reshuffled every epoch, or the same every epoch (Burda et al.'s code).</summary>
    public BatchOrder Order { get; init; } = BatchOrder.Shuffled;

    /// <summary>Warm-up of beta per optimizer step, or per epoch (activity paper, section 2.6).</summary>
    public WarmupKind Warmup { get; init; } = WarmupKind.Step;

    /// <summary>KL estimator of the ELBO: analytic, or Monte-Carlo at the sampled z (Burda et al.'s VAE).</summary>
    public KlEstimator Kl { get; init; } = KlEstimator.Analytic;

    /// <summary>What the encoder's scale head gives: the log-variance, or the log standard deviation (Burda et al.'s code).</summary>
    public PosteriorScale PosteriorScale { get; init; } = PosteriorScale.LogVariance;

    /// <summary>What the k samples estimate: L_k (IWAE), or the k-sample ELBO (Burda et al. 2015, Table 1, "VAE" rows).</summary>
    public TrainObjective Objective { get; init; } = TrainObjective.Iwae;

    /// <summary>Adam's update rule: PyTorch's, or that of Burda et al.'s code (with a summed minibatch loss).</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>Base learning rate.</summary>
    public double Lr { get; init; } = 1e-3;

    /// <summary>Adam beta1 (its default depends on the optimizer: <see cref="DefaultAdamBeta1"/>).</summary>
    public double AdamBeta1 { get; init; } = 0.9;

    /// <summary>
    /// beta1 when none is given: 0.9 for Adam (the PyTorch rule), 0.99 for <see cref="OptimizerKind.BurdaAdam"/> (the
    /// default of Burda et al.'s <c>optimizers.py</c>). Front ends apply it and write the value to config.json.
    /// </summary>
    public static double DefaultAdamBeta1(OptimizerKind optimizer) => optimizer == OptimizerKind.BurdaAdam ? 0.99 : 0.9;

    /// <summary>Adam beta2.</summary>
    public double AdamBeta2 { get; init; } = 0.999;

    /// <summary>Adam epsilon.</summary>
    public double AdamEps { get; init; } = 1e-4;

    /// <summary>KL weight lambda (eVAE paper, section 3.1); 1 is the true bound.</summary>
    public double KlWeight { get; init; } = 1;

    /// <summary>Epochs over which beta rises linearly from 0 to 1, per step (activity paper, section 2.6).</summary>
    public int WarmupEpochs { get; init; }

    /// <summary>Batch normalization before every hidden activation.</summary>
    public bool Batchnorm { get; init; }

    /// <summary>Dropout probability on z during training (eVAE paper, section 3.2).</summary>
    public double DropoutZ { get; init; }

    /// <summary>Epitome size K (eVAE and mVAE).</summary>
    public int? EpitomeSize { get; init; }

    /// <summary>Epitome stride s (eVAE and mVAE; default K, i.e. non-overlapping).</summary>
    public int? EpitomeStride { get; init; }

    /// <summary>Placement of the epitomes when they do not tile D (config key <c>epitome_layout</c>; default tile = strict).</summary>
    public EpitomeLayoutKind EpitomeLayout { get; init; } = EpitomeLayoutKind.Tile;

    /// <summary>The first epoch's assignment (<c>evae_first_epoch</c>): balanced random (default) or Algorithm 1's argmin.</summary>
    public FirstEpochAssignment EvaeFirstEpoch { get; init; } = FirstEpochAssignment.Balanced;

    /// <summary>The estimate of the reconstruction term that y* minimizes (<c>evae_assign</c>; default plug-in).</summary>
    public AssignmentEstimate EvaeAssign { get; init; } = AssignmentEstimate.Plugin;

    /// <summary>Draws z_s ~ q(z|x, y) per image and epitome for <see cref="AssignmentEstimate.MonteCarlo"/> (<c>evae_assign_samples</c>).</summary>
    public int EvaeAssignSamples { get; init; } = 10;

    /// <summary>The Gaussian decoder's log-variance head (<c>gaussian_logvar</c>): tanh-bounded (default) or linear (eVAE paper, eq. 2).</summary>
    public GaussianLogVariance GaussianLogvar { get; init; } = GaussianLogVariance.Bounded;

    /// <summary>Binarization of the pixels (default: dynamic for Bernoulli, none for Gaussian).</summary>
    public Binarization? Binarize { get; init; }

    /// <summary>Train on the first N training images only.</summary>
    public int? TrainSubset { get; init; }

    /// <summary>Evaluate per-epoch statistics on the first N test images only.</summary>
    public int? TestSubset { get; init; }

    /// <summary>Which images the per-epoch activity is measured on (see <see cref="ActivityPopulation"/>).</summary>
    public ActivityPopulation ActivityPopulation { get; init; } = ActivityPopulation.Test;

    /// <summary>Size N of a training-image activity population (required by train_first and train_random).</summary>
    public int? ActivityN { get; init; }

    /// <summary>
    /// Also record the activity of the untrained model as epoch 0 of activity.csv (the activity paper's shade plot,
    /// Figure 3.3, sorts the units by their initial activity); metrics.csv gets no row for it.
    /// </summary>
    public bool ActivityInitial { get; init; }

    /// <summary>Seed of every random choice in the run.</summary>
    public ulong Seed { get; init; }

    /// <summary>The backend that runs the model: "native" (the engine, CPU) or "torch" (libtorch through TorchSharp).</summary>
    public string Backend { get; init; } = ComputeBackends.Native;

    /// <summary>The device: "cpu", "cuda" or "cuda:N" (CUDA needs the torch backend).</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>The training bound: k samples, the objective and the KL estimator.</summary>
    [JsonIgnore]
    public TrainingBound Bound => new(Samples, Objective, Kl);

    /// <summary>Whether the minibatch loss is summed over the examples rather than averaged (Burda et al.'s code, with <see cref="OptimizerKind.BurdaAdam"/>).</summary>
    [JsonIgnore]
    public bool SummedLoss => Optimizer == OptimizerKind.BurdaAdam;

    /// <summary>The binarization in effect.</summary>
    [JsonIgnore]
    public Binarization EffectiveBinarization =>
        Binarize ?? (Decoder == DecoderKind.Gaussian ? Binarization.None : Binarization.Dynamic);

    /// <summary>Checks every setting; throws a <see cref="ConfigException"/> naming the configuration key that is wrong.</summary>
    public TrainConfig Validate()
    {
        static void Require(bool ok, string key, string detail)
        {
            if (!ok) throw new ConfigException(key, detail);
        }
        Require(Dataset is "mnist" or "synthetic", "dataset", $"must be mnist or synthetic, got '{Dataset}'");
        Require(Backend is ComputeBackends.Native or ComputeBackends.Torch, "backend", $"must be native or torch, got '{Backend}'");
        Require(ComputeBackends.IsValidDevice(Device), "device", $"must be cpu, cuda or cuda:N, got '{Device}'");
        Require(Device == "cpu" || Backend == ComputeBackends.Torch, "device", $"must be cpu for the native backend, got '{Device}' (backend torch runs on CUDA)");
        Require(SyntheticDimension >= 1, "synthetic_dimension", $"must be >= 1, got {SyntheticDimension}");
        Require(Samples >= 1, "k", $"(importance samples) must be >= 1, got {Samples}");
        Require(Latent >= 1, "latent", $"(D) must be >= 1, got {Latent}");
        Require(Hidden.Length >= 1 && Hidden.All(h => h >= 1), "hidden", $"must list positive widths, got '{string.Join(",", Hidden)}'");
        Require(Batch >= 2 || !Batchnorm, "batch", $"must be >= 2 with batch norm, got {Batch}");
        Require(Batch >= 1, "batch", $"must be >= 1, got {Batch}");
        Require(Epochs >= 1, "epochs", $"must be >= 1, got {Epochs}");
        Require(double.IsFinite(Lr) && Lr > 0, "lr", $"must be positive, got {Lr}");
        Require(Enum.IsDefined(Init), "init", $"must be normal or uniform, got {Init}");
        Require(Enum.IsDefined(OutputBias), "output_bias", $"must be zero or data_mean, got {OutputBias}");
        Require(Enum.IsDefined(Order), "order", $"must be shuffled or sequential, got {Order}");
        Require(Enum.IsDefined(Schedule), "schedule", $"must be constant, burda or burda_rounded, got {Schedule}");
        Require(Enum.IsDefined(Warmup), "warmup", $"must be step or epoch, got {Warmup}");
        Require(Enum.IsDefined(Kl), "kl", $"must be analytic or monte_carlo, got {Kl}");
        Require(Enum.IsDefined(PosteriorScale), "posterior_scale", $"must be log_variance or log_std, got {PosteriorScale}");
        Require(Enum.IsDefined(Objective), "objective", $"must be iwae or vae, got {Objective}");
        Require(Enum.IsDefined(Optimizer), "optimizer", $"must be adam or burda_adam, got {Optimizer}");
        Require(AdamBeta1 >= 0 && AdamBeta1 < 1, "adam_beta1", $"must be in [0, 1), got {AdamBeta1}");
        Require(AdamBeta2 >= 0 && AdamBeta2 < 1, "adam_beta2", $"must be in [0, 1), got {AdamBeta2}");
        Require(double.IsFinite(AdamEps) && AdamEps > 0, "adam_eps", $"must be positive, got {AdamEps}");
        Require(double.IsFinite(KlWeight) && KlWeight >= 0, "kl_weight", $"must be >= 0, got {KlWeight}");
        Require(WarmupEpochs >= 0, "warmup_epochs", $"must be >= 0, got {WarmupEpochs}");
        Require(DropoutZ >= 0 && DropoutZ < 1, "dropout_z", $"must be in [0, 1), got {DropoutZ}");
        Require(TrainSubset is null or >= 1, "train_subset", $"must be >= 1, got {TrainSubset}");
        Require(TestSubset is null or >= 1, "test_subset", $"must be >= 1, got {TestSubset}");
        Require(Decoder == DecoderKind.Gaussian || GaussianLogvar == GaussianLogVariance.Bounded, "gaussian_logvar",
            "applies to the gaussian decoder only");
        Require(Enum.IsDefined(ActivityPopulation), "activity_population", $"must be test, train_first or train_random, got {ActivityPopulation}");
        if (ActivityPopulation == ActivityPopulation.Test)
            Require(ActivityN is null, "activity_n", "applies to the train_first and train_random populations only (test_subset sizes the test population)");
        else
        {
            Require(ActivityN is not null, "activity_n", $"(N training images) is required by activity_population = {System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(ActivityPopulation.ToString())}, e.g. 500 (Burda et al.)");
            Require(ActivityN >= 1, "activity_n", $"must be >= 1, got {ActivityN}");
            Require(TrainSubset is null || ActivityN <= TrainSubset, "activity_n", $"must be at most train_subset = {TrainSubset}, got {ActivityN}");
        }
        Require(Decoder == DecoderKind.Gaussian || EffectiveBinarization != Binarization.None, "binarize",
            "none gives grey levels, which need the gaussian decoder (a Bernoulli decoder needs binary pixels)");
        if (Model == ModelKind.Vae)
        {
            Require(EpitomeSize is null, "epitome_size", "applies to the evae and mvae models only");
            Require(EpitomeStride is null, "epitome_stride", "applies to the evae and mvae models only");
            Require(EpitomeLayout == EpitomeLayoutKind.Tile, "epitome_layout", "applies to the evae and mvae models only");
            Require(EvaeFirstEpoch == FirstEpochAssignment.Balanced, "evae_first_epoch", "applies to the evae and mvae models only");
            Require(EvaeAssign == AssignmentEstimate.Plugin, "evae_assign", "applies to the evae and mvae models only");
        }
        else
        {
            Require(EpitomeSize is not null, "epitome_size", $"(K) is required by the {Model.ToString().ToLowerInvariant()} model");
            Require(EvaeAssignSamples >= 1, "evae_assign_samples", $"must be >= 1, got {EvaeAssignSamples}");
            try
            {
                Models.EpitomeLayout.Create(Latent, EpitomeSize!.Value, EpitomeStride ?? EpitomeSize.Value, EpitomeLayout);
            }
            catch (ConfigException e) when (e.Key == "epitome_stride" && EpitomeStride is null)
            {
                // NOTE: the stride defaults to K, so an unset stride's layout error is the epitome size's.
                throw new ConfigException("epitome_size", e.Detail);
            }
        }
        return this;
    }
}
