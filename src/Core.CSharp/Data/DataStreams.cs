namespace VaeResearch.Data;

/// <summary>
/// The RNG streams the data layer draws from, so that each random choice is a pure function of
/// (seed, purpose, split, epoch) and no two purposes share a stream.
/// </summary>
/// <remarks>
/// Stream id = tag &lt;&lt; 48 | sub &lt;&lt; 32 | epoch. The tags sit far above the small ids that
/// <see cref="Engine.Rng.Derive"/> hands out, so the data streams stay apart from model noise streams.
/// </remarks>
static class DataStreams
{
    const ulong DynamicTag = 0xDA01, FixedTag = 0xDA02, ShuffleTag = 0xDA03, StratifiedTag = 0xDA04, SyntheticTag = 0xDA05;

    /// <summary>Marks the single sample of fixed binarization (not an epoch).</summary>
    const uint FixedSample = uint.MaxValue;

    static ulong Make(ulong tag, uint sub, uint index) => (tag << 48) | ((ulong)sub << 32) | index;

    public static ulong Binarization(SplitKind split, int? epoch) =>
        epoch is int e ? Make(DynamicTag, (uint)split, (uint)e) : Make(FixedTag, (uint)split, FixedSample);

    public static ulong Shuffle(int epoch) => Make(ShuffleTag, 0, (uint)epoch);

    public static ulong Stratified(int epoch) => Make(StratifiedTag, 0, (uint)epoch);

    /// <summary>Synthetic generator parts: 0 weights, 1 train latents, 2 test latents.</summary>
    public static ulong Synthetic(uint part) => Make(SyntheticTag, part, 0);
}
