using VaeResearch.Compute;
using VaeResearch.Engine;
using VaeResearch.Training;

namespace VaeResearch.Models;

/// <summary>
/// A trained or training model seen without its tensor type: what the trainer's bookkeeping, checkpoints, evaluation
/// and analysis need. Every <see cref="GenerativeModel{T}"/> is one, on whichever backend it lives.
/// </summary>
public interface IGenerativeModel
{
    /// <summary>Data dimension N.</summary>
    int Input { get; }

    /// <summary>Latent dimension D (all units of z across groups).</summary>
    int Latent { get; }

    /// <summary>Number of values of the discrete choice y (1 for a plain VAE).</summary>
    int Groups { get; }

    /// <summary>The backend and device the model's tensors live on.</summary>
    IComputeContext Compute { get; }

    /// <summary>Whether the model is in training mode.</summary>
    bool Training { get; }

    /// <summary>Sets training mode (or evaluation mode, with <c>false</c>).</summary>
    void Train(bool on = true);

    /// <summary>Sets evaluation mode.</summary>
    void Eval();

    /// <summary>Parameters and buffers as named CPU copies (the checkpoint's tensors).</summary>
    IEnumerable<NamedTensor> StateDict();

    /// <summary>Copies every parameter and buffer from a checkpoint.</summary>
    void LoadStateDict(SafetensorsContent content);

    /// <summary>Total number of trainable values.</summary>
    long ParameterCount();

    /// <summary>Batched evaluation of this model on CPU images (bounds, unit statistics, encodings, samples).</summary>
    IModelEvaluator Evaluator { get; }
}

/// <summary>
/// A latent-variable model the trainer, evaluation and analysis work with: a VAE, or a model with a
/// discrete choice y among <see cref="Groups"/> alternatives (epitomes, mixture components) made by a
/// point estimate y* per example (eVAE paper, section 4.2). Written once for every backend.
/// </summary>
/// <typeparam name="T">The backend's tensor type.</typeparam>
public abstract class GenerativeModel<T> : Module<T>, IGenerativeModel where T : class, ITensor<T>
{
    ModelEvaluator<T>? evaluator;

    /// <summary>A model whose tensors live in <paramref name="context"/>.</summary>
    protected GenerativeModel(ComputeContext<T> context) : base(context) { }

    /// <inheritdoc/>
    public abstract int Input { get; }

    /// <inheritdoc/>
    public abstract int Latent { get; }

    /// <inheritdoc/>
    public virtual int Groups => 1;

    /// <inheritdoc/>
    public IComputeContext Compute => Context;

    /// <inheritdoc/>
    public IModelEvaluator Evaluator => evaluator ??= new ModelEvaluator<T>(this);

    /// <summary>
    /// The training objective per example, [n]: the bound for the given group assignment (ignored when
    /// <see cref="Groups"/> is 1), with <paramref name="beta"/> scaling the KL / prior-ratio term
    /// (beta = 1: the true bound). k = 1 uses the analytic KL; k &gt; 1 the importance-weighted bound.
    /// </summary>
    public T Objective(T x, ReadOnlySpan<int> groups, int k, float beta, Rng rng) =>
        TrainingObjective(x, groups, new TrainingBound(k), beta, rng);

    /// <summary>
    /// The training objective per example, [n], estimating <paramref name="bound"/> (L_k, or the k-sample ELBO with the
    /// analytic or Monte-Carlo KL) for the given group assignment, with <paramref name="beta"/> scaling the KL /
    /// prior-ratio term.
    /// </summary>
    public abstract T TrainingObjective(T x, ReadOnlySpan<int> groups, TrainingBound bound, float beta, Rng rng);

    /// <summary>
    /// A stochastic lower bound on log p(x) per example, [n], with k importance samples and beta = 1;
    /// for models with groups it marginalizes y (see the implementing class for the estimator).
    /// </summary>
    public abstract T LogLikelihoodBound(T x, int k, Rng rng);

    /// <summary>
    /// L_k(x | y) per example for the given groups y_i, [n], without log p(y) and with beta = 1: k samples from
    /// q(z|x, y_i) (Burda et al. 2015, eq. 8, under the epitome's mask or the component). A plain VAE ignores the groups.
    /// </summary>
    public abstract T GroupBound(T x, ReadOnlySpan<int> groups, int k, Rng rng);

    /// <summary>
    /// The assignment score of every group, [groups][n]: -C_evae(x, y) up to the constant log p(y) (eVAE paper,
    /// eq. 7 with q(y|x) a point mass at y), i.e. E_q(z|x,y)[log p(x|y, z)] - sum_d KL(q(z_d|x, y) || p(z_d)).
    /// The reconstruction term is the plug-in log p(x | m_y mu) when <paramref name="samples"/> is 0, else the mean
    /// over that many draws from <paramref name="rng"/> (see <see cref="Bounds.AssignmentScore{T}"/>). No gradient.
    /// </summary>
    public abstract float[][] AssignmentScores(T x, int samples = 0, Rng? rng = null);

    /// <summary>
    /// The best group y* = argmin_y C_evae per example (Algorithm 1, step 3; ties to the lower index) from
    /// <see cref="AssignmentScores"/>; all zeros for a plain VAE. Evaluated without gradients in the current mode.
    /// </summary>
    public int[] Assign(T x, int samples = 0, Rng? rng = null)
    {
        int n = x.Dim(0);
        var best = new int[n];
        if (Groups == 1) return best;
        var scores = AssignmentScores(x, samples, rng);
        var bestScore = new float[n];
        Array.Fill(bestScore, float.NegativeInfinity);
        for (int y = 0; y < scores.Length; y++)
            for (int i = 0; i < n; i++)
                if (scores[y][i] > bestScore[i])
                {
                    bestScore[i] = scores[y][i];
                    best[i] = y;
                }
        return best;
    }

    /// <summary>
    /// The posterior q(z|x, y) for the given groups: mean and log-variance [n, D], with units outside the
    /// group set to the prior (mean 0, log-variance 0).
    /// </summary>
    public abstract Posterior<T> Encode(T x, ReadOnlySpan<int> groups);

    /// <summary>Decoder means E[x|z] for z [n, D] (with the given groups' masks or components), [n, N].</summary>
    public abstract T DecodeMean(T z, ReadOnlySpan<int> groups);

    /// <summary>Draws y uniformly (when there are groups) and z from the prior; returns decoder means [n, N].</summary>
    public T Sample(int n, Rng rng)
    {
        var groups = new int[n];
        for (int i = 0; i < n; i++) groups[i] = Groups == 1 ? 0 : rng.NextInt(Groups);
        return DecodeMean(Context.Normal(rng, n, Latent), groups);
    }
}
