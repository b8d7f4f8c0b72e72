using System.Text.Json;
using LoraHub.Core.Optimization;
using Xunit;
using static LoraHub.Core.Tests.Optimization.OptimizerHarness;

namespace LoraHub.Core.Tests.Optimization;

/// <summary>What every optimizer promises: determinism, restorability, the budget, the bounds, the ask/tell protocol.</summary>
public sealed class OptimizerContractTests
{
    public static TheoryData<string> AllNames() => new(Optimizers.Names);

    private static OptimizerSettings Settings(string name, int budget = 60, int seed = 7, int dimension = 5) =>
        new(name, dimension, budget, Seed: seed);

    [Fact]
    public void Names_are_the_eight_optimizers()
    {
        Assert.Equal(["cobyla", "cobyla-parallel", "cmaes", "random", "cobyla-ranked", "cobyla-greedy", "quadratic-ranked", "quadratic-greedy"], Optimizers.Names);
        Assert.Contains(Optimizers.Default, Optimizers.Names);
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Same_settings_and_seed_ask_bit_identical_points(string name)
    {
        var a = Run(Settings(name), Mixed);
        var b = Run(Settings(name), Mixed);
        Assert.Equal(60, a.Points.Count);
        AssertSamePoints(a.Points, b.Points);
        Assert.Equal(a.BatchSizes, b.BatchSizes);
    }

    [Theory, MemberData(nameof(AllNames))]
    public void A_different_seed_changes_the_points_of_seeded_methods_only(string name)
    {
        var a = Run(Settings(name, seed: 1), Mixed);
        var b = Run(Settings(name, seed: 2), Mixed);
        bool identical = a.Points.Count == b.Points.Count
            && a.Points.Zip(b.Points).All(p => p.First.SequenceEqual(p.Second));
        if (name is not ("cmaes" or "random"))
            Assert.True(identical, "COBYLA and the ranked searches use no random numbers: the seed must not matter");
        else
            Assert.False(identical, "a different seed must give different points");
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Restoring_after_k_tells_continues_exactly_like_the_uninterrupted_run(string name)
    {
        var settings = Settings(name, budget: 45);
        var full = Run(Optimizers.Create(settings), Mixed);
        foreach (int k in new[] { 0, 1, 2, 5, 9, 100 })
        {
            var first = Optimizers.Create(settings);
            var head = Run(first, Mixed, maxTells: k);
            var restored = Optimizers.Restore(first.State);
            Assert.Equal(first.Evaluations, restored.Evaluations);
            Assert.Equal(first.IsDone, restored.IsDone);
            Assert.Equal(first.Best?.Value, restored.Best?.Value);
            var tail = Run(restored, Mixed);
            AssertSamePoints(full.Points, [.. head.Points, .. tail.Points]);
        }
    }

    [Theory, MemberData(nameof(AllNames))]
    public void State_round_trips_through_System_Text_Json_and_restores(string name)
    {
        var settings = Settings(name, budget: 40) with { Start = [0.1, -0.2, 0.3, 0, 1.5], Population = name == "cmaes" ? 6 : null };
        var optimizer = Optimizers.Create(settings);
        Run(optimizer, Mixed, maxTells: 3);
        var json = JsonSerializer.Serialize(optimizer.State);
        var state = JsonSerializer.Deserialize<OptimizerState>(json)!;

        Assert.Equal(settings with { Start = null }, state.Settings with { Start = null });
        Assert.Equal(settings.Start, state.Settings.Start);
        AssertSamePoints(optimizer.State.Points, state.Points);
        Assert.Equal(optimizer.State.Values, state.Values);

        var restored = Optimizers.Restore(state);
        AssertSamePoints(optimizer.Ask(), restored.Ask());
        Assert.Equal(json, JsonSerializer.Serialize(restored.State));
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Restore_rejects_a_state_whose_points_were_not_asked(string name)
    {
        var optimizer = Optimizers.Create(Settings(name));
        Run(optimizer, Mixed, maxTells: 3);
        var state = optimizer.State;
        state.Points[^1][0] = state.Points[^1][0] == 0.25 ? 0.5 : 0.25;
        Assert.Throws<InvalidOperationException>(() => Optimizers.Restore(state));

        var other = Optimizers.Create(Settings(name));
        Run(other, Mixed, maxTells: 3);
        var mismatched = other.State with { Settings = other.Settings with { Dimension = 4, Start = null } };
        Assert.ThrowsAny<Exception>(() => Optimizers.Restore(mismatched));
    }

    [Theory, MemberData(nameof(AllNames))]
    public void The_budget_is_a_hard_cap_and_the_last_batch_is_truncated(string name)
    {
        foreach (int budget in new[] { 1, 3, 7, 23, 41 })
        {
            var optimizer = Optimizers.Create(Settings(name, budget: budget));
            var trace = Run(optimizer, Mixed);
            Assert.True(trace.Points.Count <= budget, $"{trace.Points.Count} points asked with budget {budget}");
            Assert.True(optimizer.IsDone);
            Assert.Empty(optimizer.Ask());
            if (!name.StartsWith("cobyla", StringComparison.Ordinal)) // the COBYLA variants may converge early
                Assert.Equal(budget, optimizer.Evaluations); // these never converge that early
        }
        var small = Optimizers.Create(Settings(name, budget: 3));
        Assert.Equal(name == "cobyla" ? 1 : 3, small.Ask().Count);
    }

    [Theory, MemberData(nameof(AllNames))]
    public void A_smaller_budget_asks_a_prefix_of_a_larger_budgets_points(string name)
    {
        // The demo's --budgets runs each composition once at the largest budget and reads the smaller ones off its
        // prefix: valid only because the budget never changes what is asked, only where it stops.
        var full = Run(new OptimizerSettings(name, 20, 40, Seed: 3), Mixed);
        foreach (int budget in new[] { 10, 20, 21, 30 })
        {
            var part = Run(new OptimizerSettings(name, 20, budget, Seed: 3), Mixed);
            Assert.Equal(budget, part.Points.Count);
            AssertSamePoints(full.Points.Take(budget).ToList(), part.Points);
        }
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Every_asked_point_is_inside_the_bounds_even_when_the_optimum_is_far_outside(string name)
    {
        var settings = new OptimizerSettings(name, 4, 300, Lower: -0.5, Upper: 0.25, InitialStep: 2.0, Seed: 3);
        var trace = Run(settings, Quadratic([5, -5, 0.1, 40]));
        Assert.NotEmpty(trace.Points);
        Assert.All(trace.Points, p => Assert.All(p, v => Assert.InRange(v, -0.5, 0.25)));
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Asking_twice_returns_the_same_batch_as_copies(string name)
    {
        var optimizer = Optimizers.Create(Settings(name));
        var first = optimizer.Ask();
        first[0][0] = 99; // callers cannot corrupt the optimizer
        var second = optimizer.Ask();
        Assert.Equal(first.Count, second.Count);
        Assert.NotEqual(99, second[0][0]);
        AssertSamePoints(second, optimizer.Ask());
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Tell_checks_the_protocol(string name)
    {
        var optimizer = Optimizers.Create(Settings(name));
        Assert.Throws<InvalidOperationException>(() => optimizer.Tell([1.0]));
        var batch = optimizer.Ask();
        Assert.Throws<ArgumentException>(() => optimizer.Tell(new double[batch.Count + 1]));
        if (batch.Count > 1) Assert.Throws<ArgumentException>(() => optimizer.Tell(new double[batch.Count - 1]));
        Assert.Equal(0, optimizer.Evaluations);
        optimizer.Tell(new double[batch.Count]);
        Assert.Equal(batch.Count, optimizer.Evaluations);
    }

    [Theory, MemberData(nameof(AllNames))]
    public void NaN_and_infinite_values_count_as_the_worst_and_keep_the_state_serializable(string name)
    {
        var optimizer = Optimizers.Create(Settings(name, budget: 30));
        var bad = new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity };
        int calls = 0;
        var trace = Run(optimizer, x => calls++ % 4 < 3 ? bad[calls % 3] : Mixed(x));
        Assert.Contains(Optimizers.WorstValue, optimizer.State.Values);
        Assert.All(optimizer.State.Values, v => Assert.True(double.IsFinite(v)));
        var finite = trace.Values.Where(double.IsFinite).ToList();
        Assert.Equal(finite.Min(), optimizer.Best!.Value);
        var state = JsonSerializer.Deserialize<OptimizerState>(JsonSerializer.Serialize(optimizer.State))!;
        Assert.Equal(optimizer.Best.Value, Optimizers.Restore(state).Best!.Value);
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Best_is_the_earliest_minimum_of_the_told_values(string name)
    {
        var optimizer = Optimizers.Create(Settings(name, budget: 30));
        Assert.Null(optimizer.Best);
        var trace = Run(optimizer, x => Math.Round(Mixed(x), 1)); // rounding creates ties
        double min = trace.Values.Min();
        int first = trace.Values.IndexOf(min);
        Assert.Equal(min, optimizer.Best!.Value);
        AssertSamePoints([trace.Points[first]], [optimizer.Best.Point]);
    }

    [Fact]
    public void Create_validates_the_settings()
    {
        void Rejects(OptimizerSettings s, string fragment)
        {
            var e = Assert.Throws<ArgumentException>(() => Optimizers.Create(s));
            Assert.Contains(fragment, e.Message);
        }
        var ok = new OptimizerSettings("cobyla-parallel", 3, 10);
        Rejects(ok with { Name = "nelder-mead" }, "cobyla, cobyla-parallel, cmaes, random");
        Rejects(ok with { Dimension = 0 }, "Dimension");
        Rejects(ok with { Budget = 0 }, "Budget");
        Rejects(ok with { Lower = 1, Upper = 1 }, "Lower < Upper");
        Rejects(ok with { Upper = double.PositiveInfinity }, "Lower < Upper");
        Rejects(ok with { Start = [0, 0] }, "Start has 2");
        Rejects(ok with { Start = [0, 1.6, 0] }, "Start[1]");
        Rejects(ok with { InitialStep = 0 }, "InitialStep");
        Rejects(ok with { Name = "cmaes", Population = 1 }, "population");
        Assert.Equal("COBYLA", Optimizers.Create(ok with { Name = "COBYLA" }).Settings.Name); // names are case-insensitive
    }
}
