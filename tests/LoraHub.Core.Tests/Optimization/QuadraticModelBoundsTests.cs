using LoraHub.Core.Optimization;
using Xunit;
using static LoraHub.Core.Tests.Optimization.OptimizerHarness;

namespace LoraHub.Core.Tests.Optimization;

/// <summary>
/// The quadratic model's step at the box: on an exact quadratic the model is exact, so its minimisation decides where
/// the search lands. A minimum outside the box lands on the box's face; a direction of negative curvature lands on the
/// bound farther from its maximum, whichever side that is. (The free coordinates come out within ~5e-6: the model is
/// fitted by least squares with a small ridge.)
/// </summary>
public sealed class QuadraticModelBoundsTests
{
    [Fact]
    public void A_minimum_outside_the_box_lands_on_the_face()
    {
        double[] c = [2.5, -0.7, 1.1, -3.0];
        var optimizer = Optimizers.Create(new OptimizerSettings("quadratic-ranked", 4, 20));
        var trace = Run(optimizer, Quadratic(c));
        Assert.True(MaxAbsDiff(optimizer.Best!.Point, [1.5, -0.7, 1.1, -1.5]) < 1e-4, string.Join(", ", optimizer.Best.Point));
        Assert.All(trace.Points, p => Assert.All(p, v => Assert.InRange(v, -1.5, 1.5)));
    }

    [Theory]
    [InlineData(0.2, -1.5)]   // the maximum of the concave coordinate is right of centre: the far bound is -1.5
    [InlineData(-0.3, 1.5)]   // left of centre: the far bound is +1.5
    public void A_concave_direction_lands_on_the_bound_farther_from_its_maximum(double peak, double expected)
    {
        double[] c = [0, -0.7, 1.1, -0.2];
        Func<double[], double> saddle = x =>
        {
            double v = -(x[0] - peak) * (x[0] - peak);
            for (int k = 1; k < x.Length; k++) v += (1 + 0.5 * k) * (x[k] - c[k]) * (x[k] - c[k]);
            return v;
        };
        var optimizer = Optimizers.Create(new OptimizerSettings("quadratic-ranked", 4, 20));
        Run(optimizer, saddle);
        var best = optimizer.Best!.Point;
        Assert.Equal(expected, best[0], 9);
        Assert.True(MaxAbsDiff(best[1..], c[1..]) < 1e-4, string.Join(", ", best));
        Assert.Equal(saddle([expected, .. c[1..]]), optimizer.Best.Value, 6);
    }
}
