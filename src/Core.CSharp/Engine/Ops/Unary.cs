using System.Numerics.Tensors;

namespace VaeResearch.Engine;

/// <summary>Elementwise maps y = f(x) and their derivatives.</summary>
public sealed partial class Tensor
{
    delegate void Map(ReadOnlySpan<float> x, Span<float> y);
    /// <summary>gx += gy * f'(x), given x, y = f(x) and gy.</summary>
    delegate void MapGrad(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> gy, Span<float> gx);

    Tensor Unary(Map forward, MapGrad backward)
    {
        var x = this;
        Node? node = Tracks(x)
            ? new Node([x], o =>
            {
                x.EnsureGrad();
                var gy = o.gradBuffer!;
                var gx = x.gradBuffer!;
                int xo = x.offset, xgo = x.gradOffset, yo = o.offset, ygo = o.gradOffset;
                Kernels.Chunked(x.Size, (s, e) => backward(
                    x.buffer.AsSpan(xo + s, e - s), o.buffer.AsSpan(yo + s, e - s),
                    gy.AsSpan(ygo + s, e - s), gx.AsSpan(xgo + s, e - s)));
            })
            : null;
        var y = Result(Shape, node);
        Kernels.Chunked(Size, (s, e) => forward(x.buffer.AsSpan(x.offset + s, e - s), y.buffer.AsSpan(y.offset + s, e - s)));
        return y;
    }

    /// <summary>exp(x), exactly 1 at x = 0.</summary>
    public Tensor Exp() => Unary(
        Kernels.Exp,
        static (x, y, gy, gx) => TensorPrimitives.MultiplyAdd(gy, y, gx, gx));

    /// <summary>Natural logarithm log(x).</summary>
    public Tensor Log() => Unary(
        static (x, y) => TensorPrimitives.Log(x, y),
        static (x, y, gy, gx) => { for (int i = 0; i < x.Length; i++) gx[i] += gy[i] / x[i]; });

    /// <summary>softplus(x) = log(1 + exp(x)), stable for large |x|.</summary>
    /// <remarks>The derivative sigmoid(x) comes from the forward pass's exp and is kept for backward.</remarks>
    public Tensor Softplus()
    {
        var x = this;
        var sigmoid = Tracks(x) ? Workspace.Rent(Size) : null;
        Node? node = sigmoid is null
            ? null
            : new Node([x], o =>
            {
                x.GradTarget(out bool fresh);
                var gy = o.gradBuffer!;
                var gx = x.gradBuffer!;
                int ygo = o.gradOffset, xgo = x.gradOffset;
                Kernels.Chunked(x.Size, (s, e) =>
                    Kernels.MultiplyInto(gy.AsSpan(ygo + s, e - s), sigmoid.AsSpan(s, e - s), gx.AsSpan(xgo + s, e - s), fresh));
            });
        var y = Result(Shape, node);
        Kernels.Chunked(Size, (s, e) =>
            Kernels.Softplus(x.buffer.AsSpan(x.offset + s, e - s), y.buffer.AsSpan(y.offset + s, e - s), sigmoid is null ? default : sigmoid.AsSpan(s, e - s)));
        return y;
    }

    /// <summary>sigmoid(x) = 1 / (1 + exp(-x)).</summary>
    public Tensor Sigmoid() => Unary(
        static (x, y) => TensorPrimitives.Sigmoid(x, y),
        static (x, y, gy, gx) => { for (int i = 0; i < x.Length; i++) gx[i] += gy[i] * y[i] * (1f - y[i]); });

    /// <summary>tanh(x).</summary>
    public Tensor Tanh() => Unary(
        static (x, y) => TensorPrimitives.Tanh(x, y),
        static (x, y, gy, gx) => { for (int i = 0; i < x.Length; i++) gx[i] += gy[i] * (1f - y[i] * y[i]); });

    /// <summary>max(x, 0); the derivative at 0 is taken as 0.</summary>
    public Tensor Relu() => Unary(
        static (x, y) => TensorPrimitives.Max(x, 0f, y),
        static (x, y, gy, gx) => { for (int i = 0; i < x.Length; i++) if (x[i] > 0f) gx[i] += gy[i]; });

    /// <summary>x squared.</summary>
    public Tensor Square() => Unary(
        static (x, y) => TensorPrimitives.Multiply(x, x, y),
        static (x, y, gy, gx) => { for (int i = 0; i < x.Length; i++) gx[i] += 2f * gy[i] * x[i]; });

    /// <summary>c * x for a constant c.</summary>
    public Tensor Scale(float c) => Unary(
        (x, y) => TensorPrimitives.Multiply(x, c, y),
        (x, y, gy, gx) => TensorPrimitives.MultiplyAdd(gy, c, gx, gx));

    /// <summary>x + c for a constant c.</summary>
    public Tensor AddScalar(float c) => Unary(
        (x, y) => TensorPrimitives.Add(x, c, y),
        static (x, y, gy, gx) => TensorPrimitives.Add(gx, gy, gx));

    /// <summary>-x.</summary>
    public Tensor Neg() => Scale(-1f);

    /// <summary>c * x.</summary>
    public static Tensor operator *(Tensor x, float c) => x.Scale(c);

    /// <summary>c * x.</summary>
    public static Tensor operator *(float c, Tensor x) => x.Scale(c);

    /// <summary>x + c.</summary>
    public static Tensor operator +(Tensor x, float c) => x.AddScalar(c);

    /// <summary>x - c.</summary>
    public static Tensor operator -(Tensor x, float c) => x.AddScalar(-c);

    /// <summary>-x.</summary>
    public static Tensor operator -(Tensor x) => x.Scale(-1f);
}
