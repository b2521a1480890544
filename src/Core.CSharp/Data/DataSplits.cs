namespace VaeResearch.Data;

/// <summary>A data set's training, optional validation and test examples.</summary>
/// <param name="Train">Training examples (without the validation examples).</param>
/// <param name="Validation">The last examples of the original training set, or null when none were carved.</param>
/// <param name="Test">Test examples.</param>
public sealed record DataSplits(Dataset Train, Dataset? Validation, Dataset Test)
{
    /// <summary>
    /// Carves the last <paramref name="validation"/> examples of <paramref name="train"/> into a
    /// validation split (0: none).
    /// </summary>
    /// <exception cref="VaeResearchException"><paramref name="validation"/> is negative or leaves no training example.</exception>
    public static DataSplits Carve(Dataset train, Dataset test, int validation)
    {
        CheckValidation(validation, train.Count);
        if (validation == 0) return new DataSplits(train, null, test);
        int kept = train.Count - validation;
        return new DataSplits(train.Slice(0, kept), train.Slice(kept, validation, SplitKind.Validation), test);
    }

    internal static void CheckValidation(int validation, int trainCount)
    {
        if (validation < 0 || validation >= trainCount)
            throw new ConfigException("validation", $"must be between 0 and {trainCount - 1} (the training set has {trainCount} examples), got {validation}");
    }
}
