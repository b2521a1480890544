namespace VaeResearch.Engine;

/// <summary>One recorded op: its inputs and the step that turns the output's gradient into theirs.</summary>
/// <remarks>The backward step reads <c>output.Grad</c> and accumulates into each input that requires a gradient.</remarks>
internal sealed class Node(Tensor[] inputs, Action<Tensor> backward)
{
    public readonly Tensor[] Inputs = inputs;
    public readonly Action<Tensor> Backward = backward;

    /// <summary>Set once a backward pass has run through this node: its result's gradient is spent.</summary>
    public bool Consumed;
}

/// <summary>Gradient mode (like <c>torch.no_grad</c>): ops inside <see cref="NoGrad"/> record nothing.</summary>
public static class Autograd
{
    [ThreadStatic] static int noGradDepth;

    /// <summary>Whether ops on this thread record nodes for backward.</summary>
    public static bool Enabled => noGradDepth == 0;

    /// <summary>Disables recording on this thread until the returned scope is disposed.</summary>
    public static NoGradScope NoGrad()
    {
        noGradDepth++;
        return new NoGradScope();
    }

    /// <summary>The scope returned by <see cref="NoGrad"/>.</summary>
    public readonly struct NoGradScope : IDisposable
    {
        /// <summary>Re-enables recording (if no outer scope is active).</summary>
        public void Dispose() => noGradDepth--;
    }
}

public sealed partial class Tensor
{
    /// <summary>Reverse-mode differentiation from this one-element tensor with seed 1.</summary>
    public void Backward() => Backward(1f);

    /// <summary>
    /// Reverse-mode differentiation from this one-element tensor: accumulates d(this)/d(leaf) * <paramref name="seed"/>
    /// into the gradient of every leaf that requires one.
    /// </summary>
    public void Backward(float seed)
    {
        if (Size != 1)
            throw new InvalidOperationException($"Backward() needs a one-element result, got shape {ShapeString(shape)}");
        if (!RequiresGrad)
            throw new InvalidOperationException("Backward() on a tensor that does not require a gradient");
        var order = TopologicalOrder();
        // NOTE: op results keep the gradients accumulated in a pass, so a second pass through the same
        // nodes would add them again; like PyTorch without retain_graph, that is an error.
        foreach (var t in order)
            if (t.gradFn!.Consumed)
                throw new InvalidOperationException("Backward() through a graph that has already been differentiated: recompute the forward pass");
        GradForAccumulation()[0] += seed;
        for (int i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            if (t.gradBuffer is not null) t.gradFn!.Backward(t);
            t.gradFn!.Consumed = true;
        }
    }

    /// <summary>Op results reachable from this tensor, each after all of its inputs.</summary>
    List<Tensor> TopologicalOrder()
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor, int)>();
        stack.Push((this, 0));
        visited.Add(this);
        while (stack.Count > 0)
        {
            var (t, next) = stack.Pop();
            var inputs = t.gradFn?.Inputs ?? [];
            if (next < inputs.Length)
            {
                stack.Push((t, next + 1));
                var input = inputs[next];
                if (input.gradFn is not null && visited.Add(input)) stack.Push((input, 0));
            }
            else if (t.gradFn is not null)
            {
                order.Add(t);
            }
        }
        return order;
    }
}
