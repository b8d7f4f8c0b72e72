using System.Text.Json;
using LoraHub.Core.Composition;
using LoraHub.Core.Optimization;
using LoraHub.Functions.Activities;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Orchestration;
using Microsoft.DurableTask;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// The orchestrator's own logic, on a scripted context (no host, no model): the activities answer from a formula, the
/// clock moves one second per scheduled activity, and every custom status is kept. What the app tests show end to end
/// (ComposeOrchestratorTests), this pins step by step: phases, the watch page's curve, chunking, timings, loss
/// selection's probes and the outcome of a composition whose every evaluation diverged.
/// </summary>
public sealed class ComposeOrchestratorScriptTests
{
    private static readonly string[] Pool = ["m0", "m1", "m2", "m3", "m4"];
    private static readonly Example[] Examples = [new("in", "out")];

    private static CompositionRequest Request(CompositionSettings settings, int chunkSize = 4, IReadOnlyList<string>? modules = null) => new()
    {
        Task = "script",
        BaseModel = "base",
        Modules = modules,
        Settings = settings,
        ChunkSize = chunkSize,
        Examples = Examples,
    };

    [Fact]
    public async Task Phases_go_select_search_materialize_done_and_the_curve_shows_a_diverged_evaluation_as_the_worst_value()
    {
        var settings = new CompositionSettings { K = 2, Budget = 6, Optimizer = "random", Seed = 3 };
        // The first candidate diverges (no loss); the others score the distance to (0.5, -0.25).
        var context = new ScriptedContext(Pool, (candidate, first) => first ? null : Distance(candidate));
        var outcome = await ComposeOrchestrator.RunAsync(context, Request(settings));

        var phases = context.Statuses.Select(s => s.Phase).Aggregate(new List<string>(), (l, p) => { if (l.Count == 0 || l[^1] != p) l.Add(p); return l; });
        Assert.Equal(["select", "search", "materialize", "done"], phases);
        Assert.Equal(("select", 0, 6, (double?)null), (context.Statuses[0].Phase, context.Statuses[0].Evaluations, context.Statuses[0].Budget, context.Statuses[0].BestObjective));
        var materialize = context.Statuses.Single(s => s.Phase == "materialize");
        Assert.Equal((6, 6), (materialize.Evaluations, materialize.Budget));
        Assert.Equal(outcome.BestObjective, materialize.BestObjective);

        var curve = context.Statuses[^1].Curve!;
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (double)i), curve.Select(p => p[0]));
        Assert.Equal(Optimizers.WorstValue, curve[0][1]);
        Assert.All(curve.Skip(1), p => Assert.True(p[1] < 10, $"evaluation {p[0]}: {p[1]}"));

        // The outcome names the best evaluation, with its (finite) loss.
        var history = context.Materialized!.History;
        var best = history.Where(h => h.Loss is not null).MinBy(h => h.Objective)!;
        Assert.Equal(best.Weights, outcome.Weights);
        Assert.Equal(best.Loss, outcome.BestLoss);
        Assert.Equal(best.Objective, outcome.BestObjective);
        Assert.Null(history[0].Loss);
        Assert.Equal(6, outcome.Evaluations);
        Assert.Equal("adapters/script", outcome.AdapterPath);
    }

    [Fact]
    public async Task A_composition_whose_every_evaluation_diverged_fails_saying_so_and_publishes_nothing()
    {
        var settings = new CompositionSettings { K = 2, Budget = 3, Optimizer = "random" };
        var context = new ScriptedContext(Pool, (_, _) => null);
        var e = await Assert.ThrowsAsync<CompositionException>(() => ComposeOrchestrator.RunAsync(context, Request(settings)));
        Assert.Equal("every one of the 3 evaluations gave a non-finite loss", e.Message);
        Assert.Null(context.Materialized);
        Assert.Equal([Optimizers.WorstValue, Optimizers.WorstValue, Optimizers.WorstValue], context.Statuses[^1].Curve!.Select(p => p[1]));
    }

    [Fact]
    public async Task Each_optimizer_batch_is_cut_into_chunks_of_chunk_size_and_the_timings_come_from_the_orchestration_clock()
    {
        // CMA-ES on 2 weights asks 6 points a generation: chunks of 4 and 2, two generations.
        var settings = new CompositionSettings { K = 2, Budget = 12, Optimizer = "cmaes" };
        var context = new ScriptedContext(Pool, (candidate, _) => Distance(candidate), loadSeconds: 0.5);
        await ComposeOrchestrator.RunAsync(context, Request(settings, chunkSize: 4));

        var search = context.Evaluations.Where(e => e.Modules.Count == 2).ToList();
        Assert.Equal([4, 2, 4, 2], search.Select(e => e.Candidates.Count));
        Assert.All(search, e => Assert.Equal((settings.L1, "lorahub"), (e.L1, e.Merge)));

        // One clock second per scheduled activity: ListPool and SelectModules before the search (2 s, 0.5 of them
        // loading), one per chunk during it.
        var input = context.Materialized!;
        Assert.Equal((1.5, 4.0, 0.5), (input.SelectSeconds, input.SearchSeconds, input.LoadSeconds));
        Assert.Equal(12, input.History.Count);
        Assert.Equal(1, input.ExampleCount);
        Assert.Empty(input.Request.Examples); // the examples are not carried into the history of the last activity

        // Loading that took longer than the whole selection phase (a warm cache measured against a cold clock) is no
        // negative selection time.
        var slow = new ScriptedContext(Pool, (candidate, _) => Distance(candidate), loadSeconds: 30);
        await ComposeOrchestrator.RunAsync(slow, Request(settings, chunkSize: 4));
        Assert.Equal(0, slow.Materialized!.SelectSeconds);
    }

    [Fact]
    public async Task Loss_selection_probes_each_pool_module_alone_at_weight_one_without_l1_and_keeps_the_k_best()
    {
        // Losses alone: m1 best, then m3; m2 diverged (sorted last), m0 and m4 worse.
        var alone = new Dictionary<string, double?> { ["m0"] = 3, ["m1"] = 1, ["m2"] = null, ["m3"] = 2, ["m4"] = 5 };
        var settings = new CompositionSettings { K = 2, Budget = 2, Optimizer = "random", Selection = "loss", Merge = "linear" };
        var context = new ScriptedContext(Pool, (candidate, _) => Distance(candidate), probe: m => alone[m]);
        var outcome = await ComposeOrchestrator.RunAsync(context, Request(settings));

        var probes = context.Evaluations.Where(e => e.Modules.Count == 1).ToList();
        Assert.Equal(Pool, probes.Select(p => p.Modules[0]));
        Assert.All(probes, p =>
        {
            Assert.Equal([1.0], Assert.Single(p.Candidates));
            Assert.Equal((0.0, "lorahub", Examples.Length), (p.L1, p.Merge, p.Examples.Count));
        });
        Assert.Equal(["m1", "m3"], context.Selected);
        Assert.Equal(["m1", "m3"], outcome.Modules);
        Assert.Equal(("select", 5, 5), context.Statuses.Where(s => s.Phase == "select").Select(s => (s.Phase, s.Evaluations, s.Budget)).Last());
        Assert.All(context.Evaluations.Where(e => e.Modules.Count == 2), e => Assert.Equal("linear", e.Merge));
    }

    [Fact]
    public async Task A_named_list_is_composed_whole_in_its_order()
    {
        var settings = new CompositionSettings { K = 1, Budget = 2, Optimizer = "random" };
        var context = new ScriptedContext(["m3", "m0", "m4"], (candidate, _) => Distance(candidate));
        var outcome = await ComposeOrchestrator.RunAsync(context, Request(settings, modules: ["m3", "m0", "m4"]));
        Assert.Equal(["m3", "m0", "m4"], context.Selected);
        Assert.Equal(["m3", "m0", "m4"], outcome.Modules);
        Assert.All(context.Evaluations, e => Assert.All(e.Candidates, c => Assert.Equal(3, c.Length)));
    }

    private static double? Distance(double[] w)
    {
        double[] target = [0.5, -0.25, 0.1];
        return 1 + w.Select((x, i) => (x - target[i % 3]) * (x - target[i % 3])).Sum();
    }

    /// <summary>
    /// A TaskOrchestrationContext whose activities answer at once: ListPool from the given pool, SelectModules with the
    /// names it was asked, EvaluateCandidates from <c>loss</c> (null: diverged) or, for a single module at weight 1 without
    /// L1, from <c>probe</c>, MaterializeAdapter with adapters/{task}. Inputs and outputs go through JSON, as in Durable.
    /// </summary>
    private sealed class ScriptedContext(IReadOnlyList<string> pool, Func<double[], bool, double?> loss,
        double loadSeconds = 0, Func<string, double?>? probe = null) : OrchestrationContextStub
    {
        private DateTime now = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        private bool firstCandidate = true;

        public List<CompositionStatus> Statuses { get; } = [];
        public List<EvaluateCandidatesInput> Evaluations { get; } = [];
        public IReadOnlyList<string>? Selected { get; private set; }
        public MaterializeAdapterInput? Materialized { get; private set; }

        public override string InstanceId => "script";
        public override DateTime CurrentUtcDateTime => now;
        public override bool IsReplaying => false;

        public override Task<TResult> CallActivityAsync<TResult>(TaskName name, object? input = null, TaskOptions? options = null)
        {
            now = now.AddSeconds(1);
            object output = name.Name switch
            {
                nameof(ListPool) => new ModulePool(Roundtrip<ListPoolInput>(input).Modules ?? pool),
                nameof(SelectModules) => Select(Roundtrip<SelectModulesInput>(input)),
                nameof(EvaluateCandidates) => Evaluate(Roundtrip<EvaluateCandidatesInput>(input)),
                nameof(MaterializeAdapter) => Materialize(Roundtrip<MaterializeAdapterInput>(input)),
                _ => throw new InvalidOperationException($"unexpected activity {name.Name}"),
            };
            return Task.FromResult(Roundtrip<TResult>(output));
        }

        private SelectedModules Select(SelectModulesInput input)
        {
            Selected = input.Modules;
            return new SelectedModules(input.Modules, [], null, loadSeconds);
        }

        private CandidateScores Evaluate(EvaluateCandidatesInput input)
        {
            Evaluations.Add(input);
            if (input.Modules.Count == 1 && input.L1 == 0 && probe is not null)
                return new CandidateScores([Score(probe(input.Modules[0]), 0)]);
            return new CandidateScores(input.Candidates.Select(c =>
            {
                var first = firstCandidate;
                firstCandidate = false;
                return Score(loss(c, first), input.L1 * c.Average(Math.Abs));
            }).ToList());
        }

        private static CandidateScore Score(double? loss, double l1) =>
            loss is { } l ? new CandidateScore(l, l1, l + l1) : new CandidateScore(null, l1, Optimizers.WorstValue);

        private MaterializedAdapter Materialize(MaterializeAdapterInput input)
        {
            Materialized = input;
            return new MaterializedAdapter($"adapters/{input.Request.Task}", ["lorahub.json"]);
        }

        private static T Roundtrip<T>(object? value) => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(value))!;

        public override void SetCustomStatus(object? customStatus) => Statuses.Add(Roundtrip<CompositionStatus>(customStatus));
    }
}
