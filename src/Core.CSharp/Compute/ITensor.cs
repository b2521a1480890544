namespace VaeResearch.Compute;

/// <summary>
/// The tensor operations the models, bounds, trainer and evaluation use: the seam between the research code
/// and a backend (the native engine's <see cref="Engine.Tensor"/>, or libtorch through TorchSharp).
/// </summary>
/// <remarks>
/// Every tensor is float32. Binary operators broadcast a smaller operand over the leading dimensions of the
/// larger one ([k, n, D] with [n, D], [n] with [n]). Operations record the autodiff graph when an input
/// requires a gradient and no <see cref="ComputeContext{T}.NoGrad"/> scope is active; <see cref="Backward"/>
/// accumulates into the parameters. Values cross to and from the CPU only through
/// <see cref="ComputeContext{T}.Upload"/>, <see cref="CopyTo"/>, <see cref="CopyFrom"/> and <see cref="Item"/>.
/// </remarks>
/// <typeparam name="T">The backend's tensor type itself.</typeparam>
public interface ITensor<T> where T : class, ITensor<T>
{
    /// <summary>The shape (a copy).</summary>
    int[] Shape { get; }

    /// <summary>Number of elements.</summary>
    int Size { get; }

    /// <summary>Number of dimensions.</summary>
    int Rank { get; }

    /// <summary>Length of dimension <paramref name="axis"/> (negative counts from the end).</summary>
    int Dim(int axis);

    /// <summary>Whether gradients flow to (or through) this tensor.</summary>
    bool RequiresGrad { get; }

    /// <summary>Elementwise sum (broadcasting).</summary>
    static abstract T operator +(T a, T b);

    /// <summary>Elementwise difference (broadcasting).</summary>
    static abstract T operator -(T a, T b);

    /// <summary>Elementwise product (broadcasting).</summary>
    static abstract T operator *(T a, T b);

    /// <summary>Times a constant.</summary>
    static abstract T operator *(T a, float c);

    /// <summary>A constant times a tensor.</summary>
    static abstract T operator *(float c, T a);

    /// <summary>Plus a constant.</summary>
    static abstract T operator +(T a, float c);

    /// <summary>Minus a constant.</summary>
    static abstract T operator -(T a, float c);

    /// <summary>Negation.</summary>
    static abstract T operator -(T a);

    /// <summary>exp(x).</summary>
    T Exp();

    /// <summary>x^2.</summary>
    T Square();

    /// <summary>1 / (1 + exp(-x)).</summary>
    T Sigmoid();

    /// <summary>tanh(x).</summary>
    T Tanh();

    /// <summary>log(1 + exp(x)).</summary>
    T Softplus();

    /// <summary>max(x, 0).</summary>
    T Relu();

    /// <summary>Sum over one axis (removed from the shape).</summary>
    T Sum(int axis);

    /// <summary>Sum of all elements, a one-element tensor.</summary>
    T Sum();

    /// <summary>Mean over one axis (removed from the shape).</summary>
    T Mean(int axis);

    /// <summary>Mean of all elements, a one-element tensor.</summary>
    T Mean();

    /// <summary>log sum exp over one axis (removed from the shape), computed stably.</summary>
    T LogSumExp(int axis);

    /// <summary>The same values in another shape with as many elements.</summary>
    T Reshape(params int[] shape);

    /// <summary>Rows (first-axis entries) in the given order, repeats allowed.</summary>
    T SelectRows(ReadOnlySpan<int> rows);

    /// <summary>The parts stacked along the first axis.</summary>
    static abstract T ConcatRows(IReadOnlyList<T> parts);

    /// <summary>x W^T + b for x [..., in], W [out, in], b [out].</summary>
    static abstract T Linear(T x, T weight, T? bias);

    /// <summary>KL(N(mu, exp(logvar)) || N(0, 1)) elementwise, 1/2 (mu^2 + exp(logvar) - 1 - logvar).</summary>
    static abstract T GaussianKl(T mu, T logVar);

    /// <summary>sum_i x_i l_i - softplus(l_i) over the last axis, for logits l [..., n, N] and data x [n, N]; [..., n].</summary>
    static abstract T BernoulliLogLikelihood(T logits, T x);

    /// <summary>Batch normalization per column (batch statistics and a running update in training, running statistics otherwise).</summary>
    static abstract T BatchNorm(T x, T gamma, T beta, T runningMean, T runningVar, bool training, float momentum, float eps);

    /// <summary>Reverse-mode differentiation from this one-element result into every parameter.</summary>
    void Backward();

    /// <summary>The single value of a one-element tensor.</summary>
    float Item();

    /// <summary>Copies the values (C order) to <paramref name="destination"/>, which holds exactly <see cref="Size"/> values.</summary>
    void CopyTo(Span<float> destination);

    /// <summary>Overwrites the values in place from <paramref name="source"/> (no gradient is recorded), e.g. a checkpoint's.</summary>
    void CopyFrom(ReadOnlySpan<float> source);

    /// <summary>The accumulated gradient of a parameter (C order); zeros before any backward pass reached it.</summary>
    float[] GradToArray();
}

/// <summary>Extensions shared by every backend's tensors.</summary>
public static class TensorExtensions
{
    /// <summary>A copy of the values on the CPU.</summary>
    public static float[] ToArray<T>(this T tensor) where T : class, ITensor<T>
    {
        var values = new float[tensor.Size];
        tensor.CopyTo(values);
        return values;
    }
}
