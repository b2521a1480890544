using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace VaeResearch.Engine;

/// <summary>Which Adam update rule an <see cref="Adam"/> optimizer applies.</summary>
public enum OptimizerKind
{
    /// <summary>Kingma and Ba (2015) in PyTorch's arrangement: moments from 0, epsilon added to sqrt(v) / sqrt(1 - beta2^t).</summary>
    Adam,
    /// <summary>
    /// The Adam of Burda et al.'s code (yburda/iwae, <c>optimizers.py</c>): first moment from 0, second moment from 1,
    /// step size lr sqrt(1 - beta2^t) / (1 - beta1^t), epsilon added to the raw sqrt(v), and the parameters moved with
    /// the moments of the previous step (see <see cref="Adam"/>'s remarks). Their default beta1 is 0.99.
    /// </summary>
    BurdaAdam,
}

/// <summary>
/// Adam (Kingma and Ba 2015) with PyTorch's update rule, fused: all parameters and gradients are moved
/// into one contiguous buffer each, and a step is a single SIMD pass over it.
/// </summary>
/// <remarks>
/// For step t: m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
/// p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
/// <see cref="OptimizerKind.BurdaAdam"/> (Burda et al.'s code) starts with m = 0, v = 1, and for step t (1-based) applies
/// p -= (lr sqrt(1 - beta2^t) / (1 - beta1^t)) * m_(t-1) / (sqrt(v_(t-1)) + eps), then
/// m_t = beta1 m_(t-1) + (1 - beta1) g, v_t = beta2 v_(t-1) + (1 - beta2) g^2. The parameter update reads the moments
/// before this step's gradient enters them because their Theano update list computes every new value from the old
/// ones; the first step therefore leaves the parameters unchanged.
/// Constructing the optimizer rebinds each parameter's values and gradient to views of the shared
/// buffers (values are kept); the parameter tensors themselves stay the same objects.
/// </remarks>
public sealed class Adam : Compute.IOptimizer
{
    readonly float[] values, grads, m, v;

    /// <summary>An optimizer over <paramref name="parameters"/> (each must be a distinct trainable leaf).</summary>
    public Adam(IReadOnlyList<Tensor> parameters, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f,
        OptimizerKind kind = OptimizerKind.Adam)
    {
        new Compute.AdamSettings(lr, beta1, beta2, eps, kind).Validated();
        Kind = kind;
        LearningRate = lr;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        Parameters = parameters;
        if (parameters.Distinct(ReferenceEqualityComparer.Instance).Count() != parameters.Count)
            throw new ArgumentException("Adam: a parameter is listed twice");
        int total = parameters.Sum(p => p.Size);
        values = new float[total];
        grads = new float[total];
        m = new float[total];
        v = new float[total];
        // NOTE: Burda et al.'s second moment starts at 1, so early steps are about lr * m rather than lr * sign(g).
        if (kind == OptimizerKind.BurdaAdam) Array.Fill(v, 1f);
        int at = 0;
        foreach (var p in parameters)
        {
            if (!p.RequiresGrad || !p.IsLeaf) throw new ArgumentException($"Adam: {p} is not a trainable leaf");
            p.Data.CopyTo(values.AsSpan(at));
            if (p.gradBuffer is not null) p.Grad.CopyTo(grads.AsSpan(at));
            p.buffer = values;
            p.offset = at;
            p.gradBuffer = grads;
            p.gradOffset = at;
            at += p.Size;
        }
    }

    /// <summary>The parameters, in the order their values sit in the shared buffer.</summary>
    public IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>The update rule.</summary>
    public OptimizerKind Kind { get; }

    /// <summary>Step size (may change between steps, e.g. by a schedule).</summary>
    public float LearningRate { get; set; }

    /// <summary>Decay of the first-moment estimate.</summary>
    public float Beta1 { get; }

    /// <summary>Decay of the second-moment estimate.</summary>
    public float Beta2 { get; }

    /// <summary>Added to the bias-corrected root second moment (<see cref="OptimizerKind.BurdaAdam"/>: to the raw root).</summary>
    public float Eps { get; }

    /// <summary>Number of steps taken (t).</summary>
    public long StepCount { get; private set; }

    /// <summary>Total number of parameter values.</summary>
    public int Size => values.Length;

    /// <summary>All gradients as one span (the parameters' gradients are views of it).</summary>
    public Span<float> Gradients => grads;

    /// <summary>Sets every gradient to zero.</summary>
    public void ZeroGrad() => Array.Clear(grads);

    /// <summary>One Adam update from the current gradients.</summary>
    public void Step()
    {
        StepCount++;
        float b1 = Beta1, b2 = Beta2, eps = Eps;
        float bc1 = 1f - MathF.Pow(b1, StepCount);
        float sqrtBc2 = MathF.Sqrt(1f - MathF.Pow(b2, StepCount));
        if (Kind == OptimizerKind.BurdaAdam)
        {
            float alpha = LearningRate * sqrtBc2 / bc1;
            Parallelism.For(values.Length, 1 << 16, (s, e) => UpdateBurda(s, e, b1, b2, eps, alpha));
            return;
        }
        float stepSize = LearningRate / bc1;
        Parallelism.For(values.Length, 1 << 16, (s, e) => Update(s, e, b1, b2, eps, stepSize, sqrtBc2));
    }

    /// <summary>One <see cref="OptimizerKind.BurdaAdam"/> update of elements [start, end): move with the old moments, then update them.</summary>
    void UpdateBurda(int start, int end, float b1, float b2, float eps, float alpha)
    {
        var p = values.AsSpan(start, end - start);
        var g = grads.AsSpan(start, end - start);
        var m1 = m.AsSpan(start, end - start);
        var m2 = v.AsSpan(start, end - start);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vb1 = Vector256.Create(b1);
            var vb2 = Vector256.Create(b2);
            var va1 = Vector256.Create(1f - b1);
            var va2 = Vector256.Create(1f - b2);
            var veps = Vector256.Create(eps);
            var valpha = Vector256.Create(alpha);
            ref float pr = ref MemoryMarshal.GetReference(p);
            ref float gr = ref MemoryMarshal.GetReference(g);
            ref float mr = ref MemoryMarshal.GetReference(m1);
            ref float vr = ref MemoryMarshal.GetReference(m2);
            for (; i <= p.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var gi = Vector256.LoadUnsafe(ref gr, (nuint)i);
                var mi = Vector256.LoadUnsafe(ref mr, (nuint)i);
                var vi = Vector256.LoadUnsafe(ref vr, (nuint)i);
                (Vector256.LoadUnsafe(ref pr, (nuint)i) - valpha * mi / (Vector256.Sqrt(vi) + veps)).StoreUnsafe(ref pr, (nuint)i);
                (vb1 * mi + va1 * gi).StoreUnsafe(ref mr, (nuint)i);
                (vb2 * vi + va2 * gi * gi).StoreUnsafe(ref vr, (nuint)i);
            }
        }
        for (; i < p.Length; i++)
        {
            // NOTE: the same operations in the same order as the SIMD body, so the result does not depend on the chunking.
            p[i] -= alpha * m1[i] / (MathF.Sqrt(m2[i]) + eps);
            m1[i] = b1 * m1[i] + (1f - b1) * g[i];
            m2[i] = b2 * m2[i] + (1f - b2) * g[i] * g[i];
        }
    }

    void Update(int start, int end, float b1, float b2, float eps, float stepSize, float sqrtBc2)
    {
        var p = values.AsSpan(start, end - start);
        var g = grads.AsSpan(start, end - start);
        var m1 = m.AsSpan(start, end - start);
        var m2 = v.AsSpan(start, end - start);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vb1 = Vector256.Create(b1);
            var vb2 = Vector256.Create(b2);
            var va1 = Vector256.Create(1f - b1);
            var va2 = Vector256.Create(1f - b2);
            var veps = Vector256.Create(eps);
            var vstep = Vector256.Create(stepSize);
            var vinv = Vector256.Create(1f / sqrtBc2);
            ref float pr = ref MemoryMarshal.GetReference(p);
            ref float gr = ref MemoryMarshal.GetReference(g);
            ref float mr = ref MemoryMarshal.GetReference(m1);
            ref float vr = ref MemoryMarshal.GetReference(m2);
            for (; i <= p.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var gi = Vector256.LoadUnsafe(ref gr, (nuint)i);
                var mi = vb1 * Vector256.LoadUnsafe(ref mr, (nuint)i) + va1 * gi;
                var vi = vb2 * Vector256.LoadUnsafe(ref vr, (nuint)i) + va2 * gi * gi;
                mi.StoreUnsafe(ref mr, (nuint)i);
                vi.StoreUnsafe(ref vr, (nuint)i);
                var denom = Vector256.Sqrt(vi) * vinv + veps;
                (Vector256.LoadUnsafe(ref pr, (nuint)i) - vstep * mi / denom).StoreUnsafe(ref pr, (nuint)i);
            }
        }
        for (; i < p.Length; i++)
        {
            m1[i] = b1 * m1[i] + (1f - b1) * g[i];
            m2[i] = b2 * m2[i] + (1f - b2) * g[i] * g[i];
            // NOTE: the same operations as the SIMD body (times 1 / sqrt(bc2), not divided by it), so an
            // element's result does not depend on which path, hence on the thread count's chunk boundary.
            p[i] -= stepSize * m1[i] / (MathF.Sqrt(m2[i]) * (1f / sqrtBc2) + eps);
        }
    }

    /// <summary>The optimizer state (moments as flat tensors in parameter order) for a checkpoint.</summary>
    public IEnumerable<NamedTensor> StateDict() =>
    [
        new NamedTensor("optimizer.exp_avg", [m.Length], (float[])m.Clone()),
        new NamedTensor("optimizer.exp_avg_sq", [v.Length], (float[])v.Clone()),
    ];

    /// <summary>Restores the moments from <paramref name="content"/> and the step count t.</summary>
    public void LoadStateDict(SafetensorsContent content, long stepCount)
    {
        content.Get("optimizer.exp_avg", m.Length).Data.CopyTo(m, 0);
        content.Get("optimizer.exp_avg_sq", v.Length).Data.CopyTo(v, 0);
        StepCount = stepCount;
    }
}
