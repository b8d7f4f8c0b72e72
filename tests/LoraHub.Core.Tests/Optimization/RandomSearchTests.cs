using LoraHub.Core.Optimization;
using Xunit;
using static LoraHub.Core.Tests.Optimization.OptimizerHarness;

namespace LoraHub.Core.Tests.Optimization;

public sealed class RandomSearchTests
{
    [Fact]
    public void First_point_is_the_start_then_uniform_samples_in_the_bounds()
    {
        double[] start = [0.3, -0.2, 1.0];
        var optimizer = Optimizers.Create(new OptimizerSettings("random", 3, 4000, Lower: -1, Upper: 2, Seed: 5, Start: start));
        var trace = Run(optimizer, Mixed);
        Assert.Equal(start, trace.Points[0]);
        Assert.All(trace.Points, p => Assert.All(p, v => Assert.InRange(v, -1, 2)));
        for (int i = 0; i < 3; i++)
        {
            var xs = trace.Points.Skip(1).Select(p => p[i]).ToArray();
            Assert.Equal(0.5, xs.Average(), 0.05);                                   // uniform on [-1, 2]: mean 0.5
            Assert.Equal(0.75, xs.Select(v => (v - 0.5) * (v - 0.5)).Average(), 0.05); // variance 9 / 12
            Assert.True(xs.Min() < -0.99 && xs.Max() > 1.99);
        }
    }

    [Fact]
    public void Best_is_the_minimum_of_the_told_values_and_never_worse_than_the_start()
    {
        var optimizer = Optimizers.Create(new OptimizerSettings("random", 8, 40, Seed: 2));
        var trace = Run(optimizer, Quadratic([0.3, -0.7, 1.1, -0.2, 0.9, 0.5, -1.2, 0.05]));
        Assert.Equal(trace.Values.Min(), optimizer.Best!.Value);
        Assert.True(optimizer.Best.Value <= trace.Values[0]);
    }

    [Fact]
    public void Batches_are_Population_points_default_8()
    {
        Assert.Equal([8, 8, 4], Run(new OptimizerSettings("random", 2, 20), Mixed).BatchSizes);
        Assert.Equal([3, 3, 3, 1], Run(new OptimizerSettings("random", 2, 10, Population: 3), Mixed).BatchSizes);
        Assert.Equal([1, 1], Run(new OptimizerSettings("random", 2, 2, Population: 1), Mixed).BatchSizes);
    }
}
