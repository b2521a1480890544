namespace VaeResearch.Engine;

/// <summary>
/// A scope whose tensors borrow their buffers from a pool and return them when it ends, so that a
/// loop of same-shaped steps (training, batched evaluation) allocates no large arrays after its first step.
/// </summary>
/// <remarks>
/// Tensors created inside a workspace (op results, gradients of op results, <see cref="Tensor.Empty"/>)
/// must not be used after it is disposed: copy out what must survive (<see cref="Tensor.Item"/>,
/// <see cref="Tensor.ToArray"/>). Parameters and tensors created outside any workspace are ordinary
/// garbage-collected arrays. Workspaces nest; each is bound to the thread that began it.
/// </remarks>
public sealed class Workspace : IDisposable
{
    [ThreadStatic] static Workspace? current;
    static readonly Dictionary<int, Stack<float[]>> pool = [];

    readonly Workspace? parent;
    readonly List<float[]> rented = [];
    bool disposed;

    Workspace(Workspace? parent) => this.parent = parent;

    /// <summary>Starts a workspace on this thread (nested inside the current one, if any).</summary>
    public static Workspace Begin() => current = new Workspace(current);

    /// <summary>Returns every buffer rented in this workspace to the pool.</summary>
    public void Dispose()
    {
        if (disposed) return;
        if (current != this) throw new InvalidOperationException("workspaces must be disposed in reverse order of creation");
        disposed = true;
        current = parent;
        lock (pool)
        {
            foreach (var array in rented)
            {
                if (!pool.TryGetValue(array.Length, out var stack)) pool[array.Length] = stack = new Stack<float[]>();
                stack.Push(array);
            }
        }
        rented.Clear();
    }

    /// <summary>
    /// An array of exactly <paramref name="length"/> floats with undefined contents: from the pool when a
    /// workspace is active on this thread, else newly allocated.
    /// </summary>
    internal static float[] Rent(int length)
    {
        var ws = current;
        if (ws is null || length == 0) return length == 0 ? [] : new float[length];
        float[]? array = null;
        lock (pool)
        {
            if (pool.TryGetValue(length, out var stack) && stack.Count > 0) array = stack.Pop();
        }
        array ??= GC.AllocateUninitializedArray<float>(length);
        ws.rented.Add(array);
        return array;
    }
}
