using LoraHub.Core.Optimization;
using Xunit;
using static LoraHub.Core.Tests.Optimization.OptimizerHarness;

namespace LoraHub.Core.Tests.Optimization;

public sealed class CmaEsTests
{
    private static readonly double[] C8 = [0.3, -0.7, 1.1, -0.2, 0.9, 0.5, -1.2, 0.05];

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Quadratic_in_8_dimensions_converges(int seed)
    {
        var optimizer = Optimizers.Create(new OptimizerSettings("cmaes", 8, 2000, Seed: seed));
        Run(optimizer, Quadratic(C8));
        Assert.True(MaxAbsDiff(optimizer.Best!.Point, C8) < 1e-4, $"best {string.Join(", ", optimizer.Best.Point)}"); // ~3e-8 here
        Assert.True(optimizer.Best.Value < 1e-8);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void An_optimum_outside_the_box_ends_on_the_bound(int seed)
    {
        double[] c = [3, 0.5, -0.5, -2.5, 0.5];
        var optimizer = Optimizers.Create(new OptimizerSettings("cmaes", 5, 1500, Seed: seed));
        var trace = Run(optimizer, Quadratic(c));
        var best = optimizer.Best!.Point;
        Assert.Equal(1.5, best[0], 1e-6);
        Assert.Equal(-1.5, best[3], 1e-6);
        Assert.True(MaxAbsDiff([best[1], best[2], best[4]], [0.5, -0.5, 0.5]) < 1e-4, $"best {string.Join(", ", best)}");
        Assert.All(trace.Points, p => Assert.All(p, v => Assert.InRange(v, -1.5, 1.5)));
    }

    [Fact]
    public void Population_is_honored_and_defaults_to_4_plus_3_ln_n()
    {
        Assert.Equal(12, Optimizers.Create(new OptimizerSettings("cmaes", 8, 100, Population: 12)).Ask().Count);
        Assert.Equal(10, Optimizers.Create(new OptimizerSettings("cmaes", 8, 100)).Ask().Count);  // 4 + floor(3 ln 8 = 6.24)
        Assert.Equal(12, Optimizers.Create(new OptimizerSettings("cmaes", 20, 100)).Ask().Count); // 4 + floor(8.99)
        Assert.Equal(4, Optimizers.Create(new OptimizerSettings("cmaes", 1, 100)).Ask().Count);
        var trace = Run(new OptimizerSettings("cmaes", 8, 45, Population: 12), Mixed);
        Assert.Equal([12, 12, 12, 9], trace.BatchSizes);
    }

    [Fact]
    public void A_rotated_ellipsoid_improves_by_more_than_a_thousand()
    {
        var f = RotatedEllipsoid(8);
        double start = f(new double[8]); // 321
        foreach (int seed in new[] { 0, 1, 2 })
        {
            var optimizer = Optimizers.Create(new OptimizerSettings("cmaes", 8, 2500, Seed: seed));
            Run(optimizer, f);
            Assert.True(start / optimizer.Best!.Value > 1e3, $"seed {seed}: {start} -> {optimizer.Best.Value}");
        }
    }

    [Fact]
    public void The_mean_starts_at_Start_with_sigma0_spread()
    {
        double[] start = [0.5, -1.0, 0.2];
        var optimizer = Optimizers.Create(new OptimizerSettings("cmaes", 3, 4000, InitialStep: 0.1, Population: 2000, Start: start));
        var batch = optimizer.Ask();
        for (int i = 0; i < 3; i++)
        {
            var xs = batch.Select(p => p[i]).ToArray();
            double mean = xs.Average();
            double sd = Math.Sqrt(xs.Select(v => (v - mean) * (v - mean)).Average());
            Assert.Equal(start[i], mean, 0.01);
            Assert.Equal(0.1, sd, 0.01);
        }
    }

    [Fact]
    public void Forty_evaluations_in_8_dimensions_improve_the_start()
    {
        // Four generations of 10: CMA-ES barely starts learning (COBYLA gets x235 here).
        var f = Quadratic(C8);
        var optimizer = Optimizers.Create(new OptimizerSettings("cmaes", 8, 40, Seed: 0));
        var trace = Run(optimizer, f);
        Assert.Equal([10, 10, 10, 10], trace.BatchSizes);
        Assert.True(f(new double[8]) / optimizer.Best!.Value > 2, $"best {optimizer.Best.Value}"); // 1.30 from 4.33
    }

    [Fact]
    public void Stops_when_converged_before_the_budget()
    {
        var optimizer = Optimizers.Create(new OptimizerSettings("cmaes", 2, 100_000, Seed: 0));
        var trace = Run(optimizer, Quadratic([0.1, 0.2]));
        Assert.True(optimizer.IsDone);
        Assert.True(trace.Points.Count < 100_000, $"{trace.Points.Count} evaluations");
        Assert.True(optimizer.Best!.Value < 1e-20);
    }
}
