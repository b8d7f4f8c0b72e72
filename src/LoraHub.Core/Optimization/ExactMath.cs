namespace LoraHub.Core.Optimization;

/// <summary>
/// Natural log and exp from +, -, *, / only (plus exact power-of-two scaling). Math.Log and Math.Exp
/// call the platform's C library, whose last bit may differ between library versions; the optimizers
/// must replay bit for bit on any worker, so the few transcendental values they need come from here.
/// Accuracy is a few ulps, which is all the optimizers need.
/// </summary>
internal static class ExactMath
{
    // ln 2 split so that k * Ln2Hi is exact for |k| < 2^11 (the fdlibm constants).
    private const double Ln2Hi = 6.93147180369123816490e-01;
    private const double Ln2Lo = 1.90821492927058770002e-10;
    private const double Sqrt2 = 1.4142135623730951;

    public static double Log(double x)
    {
        if (double.IsNaN(x) || x < 0) return double.NaN;
        if (x == 0) return double.NegativeInfinity;
        if (double.IsPositiveInfinity(x)) return x;

        int k = 0;
        if (x < 2.2250738585072014e-308) { x *= 18014398509481984.0; k = -54; } // subnormal: scale by 2^54
        long bits = BitConverter.DoubleToInt64Bits(x);
        k += (int)((bits >> 52) & 0x7FF) - 1023;
        double m = BitConverter.Int64BitsToDouble((bits & 0x000FFFFFFFFFFFFFL) | 0x3FF0000000000000L); // in [1, 2)
        if (m > Sqrt2) { m *= 0.5; k++; }

        // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172: the series converges fast.
        double s = (m - 1) / (m + 1);
        double s2 = s * s;
        double sum = 0;
        for (int i = 25; i >= 3; i -= 2) sum = (sum + 1.0 / i) * s2;
        double lnM = 2 * s + 2 * s * sum;
        return k * Ln2Hi + (k * Ln2Lo + lnM);
    }

    public static double Exp(double x)
    {
        if (double.IsNaN(x)) return x;
        if (x > 709.782712893384) return double.PositiveInfinity;
        if (x < -745.1332191019412) return 0;

        // x = k ln2 + r with |r| <= ln2 / 2, exp(x) = 2^k exp(r).
        double k = Math.Round(x / (Ln2Hi + Ln2Lo));
        double r = (x - k * Ln2Hi) - k * Ln2Lo;
        double p = 1;
        for (int i = 20; i >= 1; i--) p = 1 + p * r / i; // Taylor series in Horner form
        return Math.ScaleB(p, (int)k);
    }
}
