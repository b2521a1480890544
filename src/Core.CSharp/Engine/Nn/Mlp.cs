using VaeResearch.Compute;

namespace VaeResearch.Engine;

/// <summary>Hidden-layer activation functions.</summary>
public enum Activation
{
    /// <summary>log(1 + exp(x)) (the papers' default).</summary>
    Softplus,
    /// <summary>tanh(x).</summary>
    Tanh,
    /// <summary>max(x, 0).</summary>
    Relu,
}

/// <summary>
/// A stack of hidden layers: Linear, then (optionally) batch norm, then the activation, for each width.
/// Names: <c>hidden.{i}.weight|bias</c> and <c>norm.{i}.*</c>.
/// </summary>
public sealed class Mlp<T> : Module<T> where T : class, ITensor<T>
{
    readonly Linear<T>[] layers;
    readonly BatchNorm1d<T>?[] norms;

    /// <summary>Builds hidden layers of the given widths on inputs of width <paramref name="inFeatures"/>, weights drawn by <paramref name="init"/>.</summary>
    public Mlp(ComputeContext<T> context, int inFeatures, IReadOnlyList<int> hidden, Activation activation, bool batchNorm, Rng rng,
        WeightInit init = WeightInit.Normal) : base(context)
    {
        Activation = activation;
        layers = new Linear<T>[hidden.Count];
        norms = new BatchNorm1d<T>?[hidden.Count];
        int width = inFeatures;
        for (int i = 0; i < hidden.Count; i++)
        {
            layers[i] = new Linear<T>(context, width, hidden[i], rng, init);
            width = hidden[i];
        }
        // Registration order fixes checkpoint order: all hidden layers, then all norms.
        for (int i = 0; i < layers.Length; i++) RegisterModule($"hidden.{i}", layers[i]);
        if (batchNorm)
            for (int i = 0; i < layers.Length; i++) norms[i] = RegisterModule($"norm.{i}", new BatchNorm1d<T>(context, hidden[i]));
        OutFeatures = width;
    }

    /// <summary>The activation after every hidden layer.</summary>
    public Activation Activation { get; }

    /// <summary>Width of the last hidden layer (the input width when there are none).</summary>
    public int OutFeatures { get; }

    /// <summary>x [..., in] through every hidden layer.</summary>
    public T Forward(T x)
    {
        for (int i = 0; i < layers.Length; i++)
        {
            x = layers[i].Forward(x);
            if (norms[i] is { } norm) x = norm.Forward(x);
            x = Activation switch
            {
                Activation.Softplus => x.Softplus(),
                Activation.Tanh => x.Tanh(),
                _ => x.Relu(),
            };
        }
        return x;
    }
}
