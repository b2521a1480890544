namespace VaeResearch.Data;

/// <summary>How grey levels in [0, 1] become the observed pixels x.</summary>
public enum Binarization
{
    /// <summary>A fresh seeded Bernoulli(grey) sample every epoch (training split); one fixed sample on validation and test.</summary>
    Dynamic,
    /// <summary>One seeded Bernoulli(grey) sample, reused every epoch.</summary>
    Fixed,
    /// <summary>x = 1 where grey &gt; 0.5, else 0.</summary>
    Threshold,
    /// <summary>The grey levels themselves (for the Gaussian decoder).</summary>
    None,
}

/// <summary>Names of the <see cref="Binarization"/> modes as the CLI and run files spell them.</summary>
public static class BinarizationNames
{
    /// <summary>The valid names: dynamic, fixed, threshold, none.</summary>
    public static IReadOnlyList<string> All { get; } = ["dynamic", "fixed", "threshold", "none"];

    /// <summary>Parses a name (case-insensitive).</summary>
    /// <exception cref="VaeResearchException">The name is not one of <see cref="All"/>.</exception>
    public static Binarization Parse(string name) => name?.Trim().ToLowerInvariant() switch
    {
        "dynamic" => Binarization.Dynamic,
        "fixed" => Binarization.Fixed,
        "threshold" => Binarization.Threshold,
        "none" => Binarization.None,
        _ => throw new ConfigException("binarize", $"must be one of {string.Join(", ", All)}, got '{name}'"),
    };

    /// <summary>The lower-case name of <paramref name="mode"/>.</summary>
    public static string ToName(this Binarization mode) => mode switch
    {
        Binarization.Dynamic => "dynamic",
        Binarization.Fixed => "fixed",
        Binarization.Threshold => "threshold",
        Binarization.None => "none",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };
}
