using VaeResearch.Compute;
using NamedTensor = VaeResearch.Engine.NamedTensor;
using OptimizerKind = VaeResearch.Engine.OptimizerKind;
using SafetensorsContent = VaeResearch.Engine.SafetensorsContent;
using Tensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace VaeResearch.Torch;

/// <summary>
/// Adam over <see cref="TorchTensor"/> parameters with the native <see cref="Engine.Adam"/>'s two update rules, as
/// in-place libtorch operations on the parameters' device (float32, the same operations in the same order).
/// </summary>
/// <remarks>
/// <see cref="OptimizerKind.Adam"/> (PyTorch's rule), step t: m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
/// p -= (lr / (1 - beta1^t)) m / (sqrt(v) (1 / sqrt(1 - beta2^t)) + eps).
/// <see cref="OptimizerKind.BurdaAdam"/> (Burda et al.'s code): m starts at 0 and v at 1;
/// p -= (lr sqrt(1 - beta2^t) / (1 - beta1^t)) m / (sqrt(v) + eps) with the previous step's moments, then m and v are
/// updated as above (so the first step leaves the parameters unchanged).
/// A parameter that no backward pass has reached counts as a zero gradient. The moments are one tensor per parameter;
/// <see cref="StateDict"/> concatenates them in parameter order into the checkpoint's flat layout.
/// </remarks>
public sealed class TorchAdam : IOptimizer
{
    readonly TorchTensor[] parameters;
    readonly Tensor[] m, v;
    readonly int total;

    /// <summary>An optimizer over <paramref name="parameters"/> (distinct trainable leaves of one device).</summary>
    public TorchAdam(IReadOnlyList<TorchTensor> parameters, AdamSettings settings)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validated();
        if (parameters.Distinct(ReferenceEqualityComparer.Instance).Count() != parameters.Count)
            throw new ArgumentException("Adam: a parameter is listed twice");
        foreach (var p in parameters)
            if (!p.RequiresGrad || !p.Value.is_leaf) throw new ArgumentException($"Adam: {p} is not a trainable leaf");
        Kind = settings.Kind;
        LearningRate = settings.LearningRate;
        Beta1 = settings.Beta1;
        Beta2 = settings.Beta2;
        Eps = settings.Eps;
        this.parameters = [.. parameters];
        m = new Tensor[this.parameters.Length];
        v = new Tensor[this.parameters.Length];
        for (int i = 0; i < this.parameters.Length; i++)
        {
            var p = this.parameters[i].Value;
            m[i] = zeros_like(p, requires_grad: false).DetachFromDisposeScope();
            // NOTE: Burda et al.'s second moment starts at 1, so early steps are about lr * m rather than lr * sign(g).
            v[i] = (Kind == OptimizerKind.BurdaAdam ? ones_like(p, requires_grad: false) : zeros_like(p, requires_grad: false)).DetachFromDisposeScope();
            total += this.parameters[i].Size;
        }
    }

    /// <summary>The parameters, in the order of the flat state.</summary>
    public IReadOnlyList<TorchTensor> Parameters => parameters;

    /// <summary>The update rule.</summary>
    public OptimizerKind Kind { get; }

    /// <inheritdoc/>
    public float LearningRate { get; set; }

    /// <summary>Decay of the first-moment estimate.</summary>
    public float Beta1 { get; }

    /// <summary>Decay of the second-moment estimate.</summary>
    public float Beta2 { get; }

    /// <summary>Added to the bias-corrected root second moment (<see cref="OptimizerKind.BurdaAdam"/>: to the raw root).</summary>
    public float Eps { get; }

    /// <inheritdoc/>
    public long StepCount { get; private set; }

    /// <summary>Total number of parameter values.</summary>
    public int Size => total;

    /// <inheritdoc/>
    public void Step()
    {
        StepCount++;
        float b1 = Beta1, b2 = Beta2, eps = Eps;
        // NOTE: the same float32 scalars as the native engine computes.
        float bc1 = 1f - MathF.Pow(b1, StepCount);
        float sqrtBc2 = MathF.Sqrt(1f - MathF.Pow(b2, StepCount));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < parameters.Length; i++)
        {
            var p = parameters[i].Value;
            var g = p.grad ?? zeros_like(p);
            if (Kind == OptimizerKind.BurdaAdam)
            {
                float alpha = LearningRate * sqrtBc2 / bc1;
                // p -= alpha m / (sqrt(v) + eps) with the old moments; then the moments take this gradient.
                p.sub_(m[i].mul(alpha).div_(v[i].sqrt().add_(eps)));
                UpdateMoments(i, g, b1, b2);
            }
            else
            {
                float stepSize = LearningRate / bc1;
                UpdateMoments(i, g, b1, b2);
                // p -= stepSize m / (sqrt(v) (1 / sqrt(bc2)) + eps).
                p.sub_(m[i].mul(stepSize).div_(v[i].sqrt().mul_(1f / sqrtBc2).add_(eps)));
            }
        }
    }

    /// <summary>m = beta1 m + (1 - beta1) g; v = beta2 v + ((1 - beta2) g) g, in place.</summary>
    void UpdateMoments(int i, Tensor g, float b1, float b2)
    {
        m[i].mul_(b1).add_(g.mul(1f - b1));
        v[i].mul_(b2).add_(g.mul(1f - b2).mul_(g));
    }

    /// <inheritdoc/>
    public void ZeroGrad()
    {
        foreach (var p in parameters)
        {
            using var grad = p.Value.grad;
            grad?.zero_();
        }
    }

    /// <inheritdoc/>
    public IEnumerable<NamedTensor> StateDict() =>
    [
        new NamedTensor("optimizer.exp_avg", [total], Flatten(m)),
        new NamedTensor("optimizer.exp_avg_sq", [total], Flatten(v)),
    ];

    /// <inheritdoc/>
    public void LoadStateDict(SafetensorsContent content, long stepCount)
    {
        ArgumentNullException.ThrowIfNull(content);
        var avg = content.Get("optimizer.exp_avg", total).Data;
        var avgSq = content.Get("optimizer.exp_avg_sq", total).Data;
        Unflatten(avg, m);
        Unflatten(avgSq, v);
        StepCount = stepCount;
    }

    float[] Flatten(Tensor[] moments)
    {
        var values = new float[total];
        int at = 0;
        for (int i = 0; i < moments.Length; i++)
        {
            int size = parameters[i].Size;
            TorchTensor.Download(moments[i], values.AsSpan(at, size));
            at += size;
        }
        return values;
    }

    void Unflatten(float[] values, Tensor[] moments)
    {
        using var noGrad = no_grad();
        int at = 0;
        for (int i = 0; i < moments.Length; i++)
        {
            int size = parameters[i].Size;
            using var host = TorchTensor.Host(values.AsSpan(at, size), moments[i].shape);
            moments[i].copy_(host);
            at += size;
        }
    }
}
