using LoraHub.Core.Optimization;
using Xunit;

namespace LoraHub.Core.Tests.Optimization;

/// <summary>Drives an optimizer to the end and records what it asked; plus the test functions.</summary>
internal static class OptimizerHarness
{
    public sealed record Trace(List<double[]> Points, List<double> Values, List<int> BatchSizes);

    /// <summary>Asks and tells until done (or until <paramref name="maxTells"/> batches), recording every asked point.</summary>
    public static Trace Run(IOptimizer optimizer, Func<double[], double> f, int maxTells = int.MaxValue)
    {
        var trace = new Trace([], [], []);
        for (int t = 0; t < maxTells && !optimizer.IsDone; t++)
        {
            var batch = optimizer.Ask();
            if (batch.Count == 0) break;
            var values = batch.Select(f).ToList();
            trace.Points.AddRange(batch);
            trace.Values.AddRange(values);
            trace.BatchSizes.Add(batch.Count);
            optimizer.Tell(values);
        }
        return trace;
    }

    public static Trace Run(OptimizerSettings settings, Func<double[], double> f) => Run(Optimizers.Create(settings), f);

    public static void AssertSamePoints(IReadOnlyList<double[]> expected, IReadOnlyList<double[]> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Length, actual[i].Length);
            for (int j = 0; j < expected[i].Length; j++)
                Assert.True(BitConverter.DoubleToInt64Bits(expected[i][j]) == BitConverter.DoubleToInt64Bits(actual[i][j]),
                    $"point {i} coordinate {j}: expected {expected[i][j]:R}, got {actual[i][j]:R}");
        }
    }

    public static double MaxAbsDiff(double[] a, double[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();

    /// <summary>sum_i (x_i - c_i)^2.</summary>
    public static Func<double[], double> Quadratic(double[] c) => x =>
    {
        double s = 0;
        for (int i = 0; i < x.Length; i++) s += (x[i] - c[i]) * (x[i] - c[i]);
        return s;
    };

    /// <summary>100 (x1 - x0^2)^2 + (1 - x0)^2, rounded exactly as numpy computes it (COBYLA's path depends on the last bit).</summary>
    public static double Rosenbrock(double[] x)
    {
        double a = x[1] - x[0] * x[0], b = 1 - x[0];
        return 100 * (a * a) + b * b;
    }

    /// <summary>
    /// Rotated ellipsoid: sum_i 10^(4 i / (n - 1)) ((H (x - 0.3))_i)^2 with H a fixed Householder reflection,
    /// condition number 1e4 and no separable structure.
    /// </summary>
    public static Func<double[], double> RotatedEllipsoid(int n)
    {
        var v = Enumerable.Range(0, n).Select(i => Math.Sin(i + 1.0)).ToArray();
        double norm = Math.Sqrt(v.Sum(t => t * t));
        for (int i = 0; i < n; i++) v[i] /= norm;
        return x =>
        {
            double dot = 0, s = 0;
            for (int i = 0; i < n; i++) dot += v[i] * (x[i] - 0.3);
            for (int i = 0; i < n; i++)
            {
                double r = x[i] - 0.3 - 2 * v[i] * dot;
                s += Math.Pow(1e4, i / (n - 1.0)) * r * r;
            }
            return s;
        };
    }

    /// <summary>Some objective with enough structure for every optimizer to move: a shifted quadratic plus an L1 term.</summary>
    public static double Mixed(double[] x)
    {
        double s = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double c = 0.4 * Math.Sin(1.7 * i + 0.3);
            s += (i + 1) * (x[i] - c) * (x[i] - c) + 0.05 * Math.Abs(x[i]);
        }
        return s;
    }
}
