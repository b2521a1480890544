namespace VaeResearch.Engine;

/// <summary>Temporary.</summary>
public static class Smoke
{
    /// <summary>Answer.</summary>
    public const int Answer = 42;
}
