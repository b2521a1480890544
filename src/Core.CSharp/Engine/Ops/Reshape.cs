namespace VaeResearch.Engine;

/// <summary>Reshaping: the same values in C order under another shape.</summary>
public sealed partial class Tensor
{
    /// <summary>A tensor with the same values and the given shape (one entry may be -1: inferred).</summary>
    public Tensor Reshape(params int[] newShape)
    {
        var resolved = (int[])newShape.Clone();
        int infer = Array.IndexOf(resolved, -1);
        if (infer >= 0)
        {
            int known = 1;
            for (int i = 0; i < resolved.Length; i++) if (i != infer) known *= resolved[i];
            resolved[infer] = known == 0 ? 0 : Size / known;
        }
        if (ShapeSize(resolved) != Size)
            throw new ArgumentException($"Reshape: cannot view {ShapeString(ShapeSpan)} ({Size} values) as {ShapeString(newShape)}");
        var x = this;
        Node? node = Tracks(x)
            ? new Node([x], o =>
            {
                var gx = x.GradForAccumulation();
                System.Numerics.Tensors.TensorPrimitives.Add(gx, o.Grad, gx);
            })
            : null;
        // NOTE: the result shares the values; only the gradient is separate.
        return new Tensor(buffer, offset, resolved, node is not null) { gradFn = node };
    }
}
