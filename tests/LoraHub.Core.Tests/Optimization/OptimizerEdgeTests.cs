using LoraHub.Core.Optimization;
using Xunit;
using static LoraHub.Core.Tests.Optimization.OptimizerHarness;

namespace LoraHub.Core.Tests.Optimization;

/// <summary>
/// Edges of the shared optimizer machinery: what Restore says about a state that does not replay, the exact start
/// point and bounds of the seeded methods, and the numerics at their special values.
/// </summary>
public sealed class OptimizerEdgeTests
{
    [Fact]
    public void Restore_says_how_a_state_fails_to_replay()
    {
        var settings = new OptimizerSettings("random", 2, 10, Population: 4, Seed: 1);
        var optimizer = Optimizers.Create(settings);
        Run(optimizer, Mixed, maxTells: 2); // 8 evaluations in 2 batches
        var state = optimizer.State;

        var counts = Assert.Throws<ArgumentException>(() => Optimizers.Restore(state with { Values = state.Values.Take(7).ToList() }));
        Assert.Contains("State has 8 points but 7 values.", counts.Message);

        var inside = Assert.Throws<InvalidOperationException>(() =>
            Optimizers.Restore(state with { Points = state.Points.Take(6).ToList(), Values = state.Values.Take(6).ToList() }));
        Assert.Equal("Replay diverged: the state ends inside a batch (batch of 4 at evaluation 4, 6 recorded).", inside.Message);

        var longer = state with { Settings = settings with { Budget = 8 }, Points = [.. state.Points, [0, 0]], Values = [.. state.Values, 1] };
        var finished = Assert.Throws<InvalidOperationException>(() => Optimizers.Restore(longer));
        Assert.Equal("Replay diverged: the optimizer finished after 8 evaluations but the state records 9.", finished.Message);

        var moved = state with { Points = state.Points.Select(p => (double[])p.Clone()).ToList() };
        moved.Points[5][1] = 0.125;
        var diverged = Assert.Throws<InvalidOperationException>(() => Optimizers.Restore(moved));
        Assert.StartsWith("Replay diverged at evaluation 5: asked [", diverged.Message);
        Assert.EndsWith($"but the state recorded [{moved.Points[5][0]}, 0.125].", diverged.Message);

        var shortPoint = state with { Points = state.Points.Select((p, i) => i == 2 ? p.Take(1).ToArray() : p).ToList() };
        Assert.Throws<InvalidOperationException>(() => Optimizers.Restore(shortPoint));
        var nullPoint = state with { Points = state.Points.Select((p, i) => i == 3 ? null! : p).ToList() };
        Assert.Contains("the state recorded []", Assert.Throws<InvalidOperationException>(() => Optimizers.Restore(nullPoint)).Message);

        // The full state restores, with the same best.
        Assert.Equal(optimizer.Best!.Value, Optimizers.Restore(state).Best!.Value);
    }

    [Fact]
    public void Settings_messages_name_the_value()
    {
        var ok = new OptimizerSettings("random", 2, 5);
        Assert.Contains("Optimizer name is empty", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Name = " " })).Message);
        Assert.Contains("Dimension must be >= 1 (got 0)", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Dimension = 0 })).Message);
        Assert.Contains("Budget must be >= 1 (got -1)", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Budget = -1 })).Message);
        Assert.Contains("Bounds must be finite", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Lower = double.NaN })).Message);
        Assert.Contains("Bounds must be finite", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Lower = 2, Upper = 1 })).Message);
        Assert.Contains("InitialStep must be finite and > 0 (got NaN)", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { InitialStep = double.NaN })).Message);
        Assert.Contains("InitialStep must be finite and > 0 (got -1)", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { InitialStep = -1 })).Message);
        Assert.Contains("Population must be >= 1 (got 0)", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Population = 0 })).Message);
        Assert.Contains("Start[0] = NaN is outside", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Start = [double.NaN, 0] })).Message);
        Assert.Contains("Start[1] = -1.6 is outside [-1.5, 1.5]", Assert.Throws<ArgumentException>(() => Optimizers.Create(ok with { Start = [0, -1.6] })).Message);
        // A start exactly on either bound is inside.
        Assert.Equal([-1.5, 1.5], Optimizers.Create(ok with { Start = [-1.5, 1.5] }).Ask()[0]);
        Assert.Throws<ArgumentNullException>(() => Optimizers.Create(null!));
        Assert.Throws<ArgumentNullException>(() => Optimizers.Restore(null!));
    }

    [Fact]
    public void Random_search_draws_the_same_stream_whatever_the_batch_size()
    {
        // The first point is the start; then every coordinate is uniform in the box, drawn in order, so a batch of 3
        // and a batch of 5 ask the same points in the same order.
        var three = Run(new OptimizerSettings("random", 2, 16, Lower: -1, Upper: 3, Seed: 4, Population: 3), Mixed);
        var five = Run(new OptimizerSettings("random", 2, 16, Lower: -1, Upper: 3, Seed: 4, Population: 5), Mixed);
        AssertSamePoints(three.Points, five.Points);
        Assert.Equal([0.0, 0.0], three.Points[0]);
        Assert.All(three.Points.Skip(1), p => Assert.All(p, v => Assert.InRange(v, -1, 3)));
        Assert.Equal([3, 3, 3, 3, 3, 1], three.BatchSizes);
    }

    [Fact]
    public void Cmaes_refuses_a_population_of_one_and_starts_its_mean_at_a_start_near_a_bound()
    {
        var e = Assert.Throws<ArgumentException>(() => Optimizers.Create(new OptimizerSettings("cmaes", 3, 10, Population: 1)));
        Assert.Contains("CMA-ES needs a population of at least 2 (got 1)", e.Message);

        // Starts inside the quadratic margins of the bound transform: the sampled points centre on the start.
        foreach (var start in new[] { -1.45, 1.45, 0.3 })
        {
            var optimizer = Optimizers.Create(new OptimizerSettings("cmaes", 1, 4000, InitialStep: 1e-4, Seed: 2, Population: 4000, Start: [start]));
            var points = optimizer.Ask().Select(p => p[0]).ToList();
            Assert.Equal(start, points.Average(), 1e-5);
            Assert.All(points, v => Assert.InRange(v, -1.5, 1.5));
        }
    }

    [Fact]
    public void Cmaes_minimises_a_quadratic_on_an_asymmetric_box()
    {
        // Bounds [-0.2, 3]: the margins at the two bounds differ; the minimum (2.1, -0.1) is inside, near the lower bound.
        var trace = Run(new OptimizerSettings("cmaes", 2, 600, Lower: -0.2, Upper: 3, InitialStep: 0.5, Seed: 5), Quadratic([2.1, -0.1]));
        var best = trace.Points[trace.Values.IndexOf(trace.Values.Min())];
        Assert.Equal(2.1, best[0], 1e-4);
        Assert.Equal(-0.1, best[1], 1e-4);
        Assert.All(trace.Points, p => Assert.All(p, v => Assert.InRange(v, -0.2, 3)));
    }

    [Fact]
    public void Jacobi_handles_a_diagonal_matrix_and_refuses_a_non_square_one()
    {
        var (values, vectors) = SymmetricEigen.Decompose(new double[,] { { 3, 0 }, { 0, -2 } });
        Assert.Equal([3.0, -2.0], values);
        Assert.Equal(new double[,] { { 1, 0 }, { 0, 1 } }, vectors);
        Assert.Throws<ArgumentException>(() => SymmetricEigen.Decompose(new double[2, 3]));
        // A 3x3 with a known spectrum: eigenvalues 2 - sqrt 2, 2, 2 + sqrt 2.
        var (three, _) = SymmetricEigen.Decompose(new double[,] { { 2, -1, 0 }, { -1, 2, -1 }, { 0, -1, 2 } });
        var sorted = three.Order().ToArray();
        Assert.Equal(2 - Math.Sqrt(2), sorted[0], 12);
        Assert.Equal(2, sorted[1], 12);
        Assert.Equal(2 + Math.Sqrt(2), sorted[2], 12);
    }

    [Fact]
    public void ExactMath_handles_its_special_values()
    {
        Assert.True(double.IsNaN(ExactMath.Log(double.NaN)));
        Assert.Equal(double.PositiveInfinity, ExactMath.Log(double.PositiveInfinity));
        Assert.True(double.IsNaN(ExactMath.Exp(double.NaN)));
        Assert.Equal(Math.Log(2), ExactMath.Log(2), 4e-16);
        Assert.Equal(Math.Log(Math.Sqrt(2) + 1e-9), ExactMath.Log(Math.Sqrt(2) + 1e-9), 4e-16); // just above the mantissa fold
        Assert.Equal(Math.Log(double.Epsilon), ExactMath.Log(double.Epsilon), 1e-10);     // the smallest subnormal
        Assert.Equal(Math.E, ExactMath.Exp(1), 1.2e-15);
        Assert.Equal(Math.Exp(-744), ExactMath.Exp(-744), 1e-320);                         // subnormal result
        Assert.Equal(Math.Exp(709.78), ExactMath.Exp(709.78), Math.Exp(709.78) * 1e-15);
    }

    [Fact]
    public void Gaussians_come_in_pairs_from_one_draw()
    {
        // The polar method gives two normals per accepted pair of uniforms: the second is the spare, drawn without
        // touching the uniform stream, so after an even number of normals the stream is where the uniforms left it.
        var a = new SeededRandom(11);
        var b = new SeededRandom(11);
        a.NextGaussian();
        var afterOne = a.NextUInt64();
        b.NextGaussian();
        b.NextGaussian();
        Assert.Equal(afterOne, b.NextUInt64());
        // The spare is returned once.
        var c = new SeededRandom(11);
        var first = c.NextGaussian();
        var second = c.NextGaussian();
        var third = c.NextGaussian();
        Assert.NotEqual(first, second);
        Assert.NotEqual(second, third);
    }
}
