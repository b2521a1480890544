using VaeResearch.Engine;

namespace VaeResearch.Data;

/// <summary>How the minibatches of an epoch are ordered.</summary>
public enum BatchOrder
{
    /// <summary>A fresh seeded permutation every epoch (stratified batches: seeded shuffles within groups and batches).</summary>
    Shuffled,
    /// <summary>
    /// The same order every epoch: the images in data-set order (Burda et al.'s code); stratified batches take each
    /// group's members in data-set order and keep them in that order inside each batch (only the assignment changes).
    /// </summary>
    Sequential,
}

/// <summary>
/// Seeded minibatch orders: a shuffled permutation per epoch, or a stratified order whose batches
/// keep every group's share.
/// </summary>
/// <remarks>
/// An order is a permutation of [0, n); batch b is its slice [b * size, min((b + 1) * size, n)), so
/// every example appears exactly once per epoch and a partial last batch is kept. The order of
/// epoch e is a pure function of (seed, e): a resumed run replays exactly the same batches.
/// </remarks>
public static class Batches
{
    /// <summary>Number of batches of <paramref name="batchSize"/> covering <paramref name="count"/> examples (the last may be partial).</summary>
    public static int Count(int count, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return (int)(((long)count + batchSize - 1) / batchSize);
    }

    /// <summary>Batch <paramref name="index"/> of <paramref name="order"/> (the last one may be shorter).</summary>
    public static ReadOnlySpan<int> Batch(ReadOnlySpan<int> order, int batchSize, int index)
    {
        int batches = Count(order.Length, batchSize);
        if ((uint)index >= (uint)batches) throw new ArgumentOutOfRangeException(nameof(index), index, $"batch index outside [0, {batches})");
        int start = index * batchSize;
        return order.Slice(start, Math.Min(batchSize, order.Length - start));
    }

    /// <summary>Writes the shuffled order of epoch <paramref name="epoch"/> into <paramref name="order"/> (length n): a uniform random permutation of [0, n).</summary>
    public static void Shuffled(ulong seed, int epoch, Span<int> order)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        for (int i = 0; i < order.Length; i++) order[i] = i;
        new Rng(seed, DataStreams.Shuffle(epoch)).Shuffle(order);
    }

    /// <summary>The identity order [0, n) of <see cref="BatchOrder.Sequential"/>, the same in every epoch (allocates).</summary>
    public static int[] Sequential(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        return order;
    }

    /// <summary>The order of epoch <paramref name="epoch"/> for <paramref name="count"/> examples by <paramref name="kind"/> (allocates).</summary>
    public static int[] Order(BatchOrder kind, ulong seed, int epoch, int count) =>
        kind == BatchOrder.Sequential ? Sequential(count) : Shuffled(seed, epoch, count);

    /// <summary>The shuffled order of epoch <paramref name="epoch"/> for <paramref name="count"/> examples (allocates).</summary>
    public static int[] Shuffled(ulong seed, int epoch, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new int[count];
        Shuffled(seed, epoch, order);
        return order;
    }

    /// <summary>
    /// A stratified order of epoch <paramref name="epoch"/>: every batch of <paramref name="batchSize"/>
    /// holds each group in its share of the data, within one example.
    /// </summary>
    /// <param name="groups">Group id of each example, each in [0, number of groups), [n] (e.g. the eVAE's epitome assignments).</param>
    /// <param name="batchSize">Batch size.</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="epoch">The epoch.</param>
    /// <param name="kind">Shuffled (seeded shuffles of each group's members and inside each batch) or sequential (no
    /// shuffles: members in data-set order, batches in group order; the same for the same assignment in every epoch).</param>
    /// <returns>A permutation of [0, n) in which batch b holds c_g(b) members of group g with
    /// |c_g(b) - size(b) * n_g / n| &lt; 1, where size(b) is the batch's size and n_g the group's size.</returns>
    /// <remarks>
    /// Each batch gives every group floor(B n_g / n) places; the B - sum of those remaining places go,
    /// one each, to the groups furthest behind their ideal running count (b + 1) B n_g / n (ties to the
    /// lower group id). This keeps every group's running count within one of its ideal, so the
    /// counts come out exact at the end and the partial last batch also keeps the shares.
    /// Which members fill a group's places, and the order inside each batch, are seeded shuffles.
    /// </remarks>
    public static int[] Stratified(ReadOnlySpan<int> groups, int batchSize, ulong seed, int epoch, BatchOrder kind = BatchOrder.Shuffled)
    {
        bool shuffle = kind == BatchOrder.Shuffled;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        int n = groups.Length;
        int groupCount = 0;
        foreach (int g in groups)
        {
            if (g < 0) throw new ArgumentOutOfRangeException(nameof(groups), g, "group ids must be non-negative");
            groupCount = Math.Max(groupCount, g + 1);
        }
        var rng = new Rng(seed, DataStreams.Stratified(epoch));

        // Members of each group, shuffled: groupStart[g] .. groupStart[g + 1] in `members`.
        var groupStart = new int[groupCount + 1];
        foreach (int g in groups) groupStart[g + 1]++;
        for (int g = 0; g < groupCount; g++) groupStart[g + 1] += groupStart[g];
        var members = new int[n];
        var next = groupStart[..groupCount];
        for (int i = 0; i < n; i++) members[next[groups[i]]++] = i;
        if (shuffle)
            for (int g = 0; g < groupCount; g++) rng.Shuffle(members.AsSpan(groupStart[g], groupStart[g + 1] - groupStart[g]));

        var order = new int[n];
        var taken = new int[groupCount];
        var baseCount = new int[groupCount];
        var deficit = new double[groupCount];
        var byDeficit = new int[groupCount];
        int full = n / batchSize;
        int written = 0;
        for (int b = 0; b < full; b++)
        {
            int places = batchSize;
            for (int g = 0; g < groupCount; g++)
            {
                long size = groupStart[g + 1] - groupStart[g];
                baseCount[g] = (int)(batchSize * size / n);
                places -= baseCount[g];
                deficit[g] = (double)(b + 1) * batchSize * size / n - (taken[g] + baseCount[g]);
                byDeficit[g] = g;
            }
            Array.Sort(byDeficit, (x, y) => deficit[x] != deficit[y] ? deficit[y].CompareTo(deficit[x]) : x.CompareTo(y));
            for (int r = 0; r < groupCount && places > 0; r++)
            {
                int g = byDeficit[r];
                if (taken[g] + baseCount[g] < groupStart[g + 1] - groupStart[g])
                {
                    baseCount[g]++;
                    places--;
                }
            }
            if (places != 0) throw new InvalidOperationException("stratified batching: a batch could not be filled (please report this)");
            int batchStart = written;
            for (int g = 0; g < groupCount; g++)
            {
                members.AsSpan(groupStart[g] + taken[g], baseCount[g]).CopyTo(order.AsSpan(written));
                written += baseCount[g];
                taken[g] += baseCount[g];
            }
            if (shuffle) rng.Shuffle(order.AsSpan(batchStart, batchSize));
        }
        int lastStart = written;
        for (int g = 0; g < groupCount; g++)
        {
            int rest = groupStart[g + 1] - groupStart[g] - taken[g];
            members.AsSpan(groupStart[g] + taken[g], rest).CopyTo(order.AsSpan(written));
            written += rest;
        }
        if (shuffle) rng.Shuffle(order.AsSpan(lastStart, n - lastStart));
        return order;
    }
}
