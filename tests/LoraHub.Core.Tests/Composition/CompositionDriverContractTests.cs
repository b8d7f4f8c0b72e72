using LoraHub.Core.Composition;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>What the driver promises its hosts beyond the search itself: checks before any work, clear errors for a
/// host's mistakes, progress in the select phase, and an end when the optimizer has nothing more to ask.</summary>
public sealed class CompositionDriverContractTests
{
    private static readonly IReadOnlyList<ModuleRef> Pool = Enumerable.Range(0, 6).Select(i => new ModuleRef($"m{i}", $"/pool/m{i}")).ToList();

    private static CandidateEvaluator Bowl(double[] center, List<int>? batches = null) => batch =>
    {
        batches?.Add(batch.Count);
        return Task.FromResult<IReadOnlyList<ObjectiveValue>>(batch.Select(w =>
        {
            var loss = w.Select((x, i) => (x - center[i]) * (x - center[i])).Sum();
            return new ObjectiveValue(loss, 0, loss, []);
        }).ToList());
    };

    [Fact]
    public async Task Loss_selection_needs_a_probe_and_the_probe_must_answer_every_module()
    {
        var e = await Assert.ThrowsAsync<ArgumentNullException>(() => CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 2, Selection = "loss" }, null));
        Assert.Contains("loss selection needs a module probe", e.Message);
        ModuleProbe shortProbe = _ => Task.FromResult<IReadOnlyList<double>>([0.1, 0.2]);
        var e2 = await Assert.ThrowsAsync<InvalidOperationException>(() => CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 2, Selection = "loss" }, shortProbe));
        Assert.Equal("the module probe returned 2 losses for 6 modules", e2.Message);
    }

    [Fact]
    public async Task Loss_selection_reports_the_select_phase_before_and_after_probing()
    {
        var reports = new List<CompositionProgress>();
        var probeSaw = -1;
        ModuleProbe probe = modules =>
        {
            probeSaw = reports.Count;
            return Task.FromResult<IReadOnlyList<double>>(modules.Select((_, i) => 6.0 - i).ToList());
        };
        var chosen = await CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 2, Selection = "loss" }, probe,
            new SyncProgress<CompositionProgress>(reports.Add));
        Assert.Equal(["m5", "m4"], chosen.Select(m => m.Name));
        Assert.Equal([new CompositionProgress("select", 0, 6, null), new CompositionProgress("select", 6, 6, null)], reports);
        Assert.Equal(1, probeSaw); // the first report comes before the probe runs
    }

    [Fact]
    public async Task Random_selection_never_probes_and_reports_nothing()
    {
        var probed = false;
        var reports = new List<CompositionProgress>();
        var chosen = await CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 2, Seed = 3 },
            _ => { probed = true; return Task.FromResult<IReadOnlyList<double>>([]); }, new SyncProgress<CompositionProgress>(reports.Add));
        Assert.Equal(2, chosen.Count);
        Assert.False(probed);
        Assert.Empty(reports);
    }

    [Fact]
    public async Task Settings_and_pool_are_checked_before_any_evaluation()
    {
        var calls = 0;
        ModuleProbe probe = m => { calls++; return Task.FromResult<IReadOnlyList<double>>(m.Select(_ => 1.0).ToList()); };
        CandidateEvaluator evaluate = b => { calls++; return Bowl([0, 0])(b); };
        Assert.Equal("the module pool is empty", (await Assert.ThrowsAsync<CompositionException>(() =>
            CompositionDriver.SelectAsync([], new CompositionSettings { Selection = "loss" }, probe))).Message);
        Assert.Equal("cannot select 7 modules from a pool of 6", (await Assert.ThrowsAsync<CompositionException>(() =>
            CompositionDriver.SelectAsync(Pool, new CompositionSettings { K = 7, Selection = "loss" }, probe))).Message);
        Assert.StartsWith("budget must be at least 1", (await Assert.ThrowsAsync<CompositionException>(() =>
            CompositionDriver.SearchAsync(new CompositionSettings { Budget = 0 }, 2, evaluate))).Message);
        Assert.StartsWith("unknown optimizer", (await Assert.ThrowsAsync<CompositionException>(() =>
            CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = "nope" }, 2, evaluate))).Message);
        Assert.Equal(0, calls);
    }

    [Fact]
    public async Task A_wrong_count_from_the_evaluator_names_both_counts()
    {
        CandidateEvaluator evaluate = batch => Task.FromResult<IReadOnlyList<ObjectiveValue>>(
            batch.Skip(1).Select(_ => new ObjectiveValue(1, 0, 1, [])).ToList());
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = "random", Population = 4, Budget = 8 }, 2, evaluate));
        Assert.Equal("the evaluator returned 3 values for 4 candidates", e.Message);
    }

    [Fact]
    public async Task A_search_that_converges_ends_before_the_budget_with_the_minimum_found()
    {
        var batches = new List<int>();
        var reports = new List<CompositionProgress>();
        var search = await CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = "quadratic-ranked", Budget = 1000, L1 = 0 }, 1,
            Bowl([0.7], batches), new SyncProgress<CompositionProgress>(reports.Add));
        // One report before the first round and one after each, all in the search phase, out of the budget.
        Assert.Equal(batches.Count + 1, reports.Count);
        Assert.All(reports, r => Assert.Equal(("search", 1000), (r.Phase, r.Total)));
        Assert.Equal(search.History.Count, reports[^1].Done);
        Assert.InRange(search.History.Count, 3, 999);
        Assert.Equal(batches.Count, search.Rounds);
        Assert.Equal(search.History.Count, batches.Sum());
        Assert.Equal(0.7, search.Weights[0], 1e-6);
        Assert.Equal(search.History.Min(h => h.Objective), search.Best.Objective);
        Assert.Same(search.History[search.Best.Index - 1], search.Best);
    }

    [Fact]
    public async Task The_best_trial_is_the_earliest_of_equal_objectives_and_weights_are_its_weights()
    {
        // A flat objective: every candidate ties, so the best is the first evaluated (the start).
        CandidateEvaluator flat = batch => Task.FromResult<IReadOnlyList<ObjectiveValue>>(batch.Select(_ => new ObjectiveValue(2, 0, 2, [])).ToList());
        var search = await CompositionDriver.SearchAsync(new CompositionSettings { Optimizer = "random", Budget = 9, Seed = 1 }, 3, flat);
        Assert.Equal(1, search.Best.Index);
        Assert.Equal([0.0, 0.0, 0.0], search.Weights);
        Assert.Equal(2, search.Best.Objective);
    }
}
