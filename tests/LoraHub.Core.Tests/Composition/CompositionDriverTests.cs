using LoraHub.Core.Composition;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>The one search driver, on synthetic objectives: no model needed.</summary>
public class CompositionDriverTests
{
    private static readonly IReadOnlyList<ModuleRef> Pool = Enumerable.Range(0, 6).Select(i => new ModuleRef($"m{i}", $"/pool/m{i}")).ToList();

    private static CandidateEvaluator Quadratic(List<int>? batches = null) => batch =>
    {
        batches?.Add(batch.Count);
        IReadOnlyList<ObjectiveValue> values = batch.Select(w =>
        {
            var loss = w.Select((x, i) => (x - 0.3 * (i + 1)) * (x - 0.3 * (i + 1))).Sum();
            var l1 = 0.05 * w.Average(Math.Abs);
            return new ObjectiveValue(loss, l1, loss + l1, []);
        }).ToList();
        return Task.FromResult(values);
    };

    [Theory]
    [InlineData("cobyla", 12)]
    [InlineData("cobyla-parallel", 12)]
    [InlineData("cmaes", 15)]
    [InlineData("random", 9)]
    public async Task Spends_the_budget_in_rounds_and_records_every_evaluation_in_order(string optimizer, int budget)
    {
        var batches = new List<int>();
        var search = await CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = optimizer, Budget = budget, Seed = 2 }, 3, Quadratic(batches));
        Assert.Equal(budget, search.History.Count);
        Assert.Equal(Enumerable.Range(1, budget), search.History.Select(h => h.Index));
        Assert.Equal(batches.Count, search.Rounds);
        Assert.Equal(budget, batches.Sum());
        Assert.Equal(search.History.Min(h => h.Objective), search.Best.Objective);
        Assert.Equal(search.Best.Weights, search.Weights);
        Assert.All(search.History, h => Assert.Equal(h.Loss + h.L1, h.Objective, 12));
    }

    [Fact]
    public async Task Cobyla_asks_one_point_per_round()
    {
        var search = await CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = "cobyla", Budget = 10 }, 4, Quadratic());
        Assert.Equal(10, search.Rounds);
    }

    [Fact]
    public async Task A_diverged_candidate_is_recorded_as_infinite_and_never_wins()
    {
        var calls = 0;
        CandidateEvaluator evaluate = batch =>
        {
            IReadOnlyList<ObjectiveValue> values = batch.Select(w => calls++ == 1
                ? new ObjectiveValue(double.NaN, 0.01, double.NaN, [])
                : new ObjectiveValue(1 + w.Sum(x => x * x), 0, 1 + w.Sum(x => x * x), [])).ToList();
            return Task.FromResult(values);
        };
        var search = await CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = "cobyla", Budget = 6 }, 2, evaluate);
        Assert.True(double.IsNaN(search.History[1].Loss));
        Assert.Equal(double.PositiveInfinity, search.History[1].Objective);
        Assert.True(double.IsFinite(search.Best.Objective));
        Assert.NotEqual(2, search.Best.Index);
    }

    [Fact]
    public async Task Every_evaluation_diverging_is_an_error_not_a_result()
    {
        CandidateEvaluator evaluate = batch => Task.FromResult<IReadOnlyList<ObjectiveValue>>(
            batch.Select(_ => new ObjectiveValue(double.PositiveInfinity, 0, double.PositiveInfinity, [])).ToList());
        var e = await Assert.ThrowsAsync<CompositionException>(() => CompositionDriver.SearchAsync(new CompositionSettings { Budget = 3 }, 2, evaluate));
        Assert.Contains("every one of the 3 evaluations gave a non-finite loss", e.Message);
    }

    [Fact]
    public async Task An_evaluator_returning_the_wrong_count_is_refused()
    {
        CandidateEvaluator evaluate = batch => Task.FromResult<IReadOnlyList<ObjectiveValue>>([]);
        await Assert.ThrowsAsync<InvalidOperationException>(() => CompositionDriver.SearchAsync(new CompositionSettings { Budget = 3 }, 2, evaluate));
    }

    [Fact]
    public async Task Random_selection_keeps_a_pool_of_exactly_k_in_its_given_order()
    {
        var given = Pool.Reverse().ToList();
        foreach (var seed in new[] { 0, 1, 2, 99 })
        {
            var chosen = await CompositionDriver.SelectAsync(given, new CompositionSettings { Seed = seed }, probe: null);
            Assert.Equal(given.Select(m => m.Name), chosen.Select(m => m.Name));
        }
    }

    [Fact]
    public async Task Random_selection_from_a_larger_pool_depends_on_the_seed_only()
    {
        var a = await CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 3, Seed = 5 }, probe: null);
        var b = await CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 3, Seed = 5 }, probe: null);
        Assert.Equal(a, b);
        Assert.Equal(3, a.Distinct().Count());
        var seeds = Enumerable.Range(0, 20).Select(s => string.Join(",", CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 3, Seed = s }, null).Result.Select(m => m.Name)));
        Assert.True(seeds.Distinct().Count() > 5, "different seeds draw different modules");
    }

    [Fact]
    public async Task Loss_selection_keeps_the_k_lowest_losses_lowest_first_ties_by_name_and_nan_as_infinity()
    {
        double[] losses = [0.5, double.NaN, 0.2, 0.5, double.PositiveInfinity, 0.2];
        var probed = new List<string>();
        ModuleProbe probe = modules =>
        {
            probed.AddRange(modules.Select(m => m.Name));
            return Task.FromResult<IReadOnlyList<double>>(losses);
        };
        var chosen = await CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 6, Selection = "loss" }, probe);
        Assert.Equal(Pool.Select(m => m.Name), probed);
        Assert.Equal(["m2", "m5", "m0", "m3", "m1", "m4"], chosen.Select(m => m.Name)); // NaN counts as +infinity: ties by name
        var top = await CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 3, Selection = "loss" }, probe);
        Assert.Equal(["m2", "m5", "m0"], top.Select(m => m.Name));
    }

    [Fact]
    public async Task Progress_reports_every_round_with_the_best_so_far()
    {
        var reports = new List<CompositionProgress>();
        var search = await CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = "cobyla", Budget = 5 }, 2, Quadratic(),
            new SyncProgress<CompositionProgress>(reports.Add));
        Assert.Equal(new CompositionProgress("search", 0, 5, null), reports[0]);
        Assert.Equal(Enumerable.Range(0, 6), reports.Select(r => r.Done));
        Assert.Equal(search.Best.Objective, reports[^1].BestObjective);
        Assert.All(reports.Skip(1).Zip(reports.Skip(2)), p => Assert.True(p.Second.BestObjective <= p.First.BestObjective));
    }

    [Theory]
    [InlineData("budget", 0)]
    [InlineData("k", 0)]
    [InlineData("population", 0)]
    [InlineData("max_tokens", 1)]
    [InlineData("l1", double.NaN)]
    [InlineData("l1", -1)]
    [InlineData("initial_step", 0)]
    [InlineData("lower", 200)]
    public void Settings_out_of_range_are_refused_naming_the_setting(string name, double value)
    {
        var s = name switch
        {
            "budget" => new CompositionSettings { Budget = (int)value },
            "k" => new CompositionSettings { K = (int)value },
            "population" => new CompositionSettings { Population = (int)value },
            "max_tokens" => new CompositionSettings { MaxTokens = (int)value },
            "l1" => new CompositionSettings { L1 = value },
            "initial_step" => new CompositionSettings { InitialStep = value },
            _ => new CompositionSettings { Lower = value },
        };
        var e = Assert.Throws<CompositionException>(() => s.Validate());
        Assert.StartsWith($"{name} must be ", e.Message);
    }

    [Fact]
    public void Defaults_are_the_reference_settings()
    {
        var s = new CompositionSettings();
        Assert.Equal((40, 0.05, -1.5, 1.5, "lorahub", "random"), (s.Budget, s.L1, s.Lower, s.Upper, s.Merge, s.Selection));
        Assert.Equal(20, s.ResolveK(196));
        Assert.Equal(7, s.ResolveK(7));
        s.Validate(7);
        Assert.Contains("cannot select 9 modules from a pool of 7", Assert.Throws<CompositionException>(() => (s with { K = 9 }).Validate(7)).Message);
    }
}
