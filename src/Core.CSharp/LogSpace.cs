namespace VaeResearch;

/// <summary>Arithmetic on numbers stored as their logarithms.</summary>
public static class LogSpace
{
    /// <summary>log(e^a + e^b) without overflow; -inf is the log of zero, so Add(-inf, b) = b.</summary>
    // NOTE: factoring out the larger argument keeps both exponentials in (0, 1].
    public static double Add(double a, double b)
    {
        if (double.IsNegativeInfinity(a)) return b;
        if (double.IsNegativeInfinity(b)) return a;
        double m = Math.Max(a, b);
        return m + Math.Log(Math.Exp(a - m) + Math.Exp(b - m));
    }
}
