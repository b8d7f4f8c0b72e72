using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tests.Models;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Composition;

/// <summary>
/// The objective through its public API: the numbers it reports, how non-finite losses are scored, and that
/// grouped candidates give what one-at-a-time evaluation gives in fewer forward passes.
/// </summary>
[Collection("tiny-t5")]
public sealed class FewShotObjectiveTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static readonly double[] Mix = [0.5, -0.3, 1.2];
    private static List<TokenizedExample> Examples => Cases.Select(c => new TokenizedExample(
        c!["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
        c["labels"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray())).ToList();

    /// <summary>The real model, counting its forward passes and rows: the objective's batching is its contract.</summary>
    private sealed class Counting(IAdaptableModel inner) : IAdaptableModel
    {
        public List<int> Forwards { get; } = [];
        public nn.Module Module => inner.Module;
        public int EosTokenId => inner.EosTokenId;
        public int PadTokenId => inner.PadTokenId;
        public int VocabSize => inner.VocabSize;
        public IReadOnlyList<string> DefaultLoraTargets => inner.DefaultLoraTargets;
        public string PeftTaskType => inner.PeftTaskType;
        public FewShotFormat Format => inner.Format;
        public double[] ExampleLosses(IReadOnlyList<TokenizedExample> batch, int groups = 1)
        {
            Forwards.Add(batch.Count);
            return inner.ExampleLosses(batch, groups);
        }
        public Tensor PerExampleLoss(IReadOnlyList<TokenizedExample> batch) => inner.PerExampleLoss(batch);
        public int[] Greedy(int[] promptIds, int maxNewTokens, bool stopAtEos = true) => inner.Greedy(promptIds, maxNewTokens, stopAtEos);
        public int[][] GreedyBatch(IReadOnlyList<int[]> prompts, int maxNewTokens) => inner.GreedyBatch(prompts, maxNewTokens);
        public void Dispose() { } // the fixture owns the model
    }

    [Fact]
    public void Evaluate_reports_the_mean_example_loss_the_l1_term_and_their_sum()
    {
        var objective = new FewShotObjective(fx.Composed, Examples, l1Coefficient: 0.1);
        var v = objective.Evaluate(Mix);
        var golden = Cases.Select(c => c!["loss"]!["lorahub"]!.GetValue<double>()).ToArray();
        Assert.Equal(3, v.ExampleLosses.Length);
        for (var i = 0; i < 3; i++) Assert.InRange(Math.Abs(v.ExampleLosses[i] - golden[i]), 0, 1e-4);
        Assert.Equal(v.ExampleLosses.Average(), v.Loss, 12);
        Assert.Equal(0.1 * (0.5 + 0.3 + 1.2) / 3, v.L1, 12);
        Assert.Equal(v.Loss + v.L1, v.Value, 12);
        Assert.Equal(0.1 * 2.0 / 3, objective.L1([1.0, -1.0, 0.0]), 12);
        Assert.Equal(0.05, new FewShotObjective(fx.Composed, Examples).L1Coefficient);
        Assert.Equal(Mix, fx.Composed.Weights);
        fx.Use("base");
    }

    [Fact]
    public void Examples_split_over_several_forwards_give_the_same_losses()
    {
        var counting = new Counting(fx.Model);
        using var composed = new ComposedModel(counting, fx.Modules);
        var whole = new FewShotObjective(composed, Examples).Evaluate(Mix);
        Assert.Equal([3], counting.Forwards);
        counting.Forwards.Clear();
        var split = new FewShotObjective(composed, Examples, maxRowsPerForward: 2).Evaluate(Mix);
        Assert.Equal([2, 1], counting.Forwards);
        for (var i = 0; i < 3; i++) Assert.InRange(Math.Abs(whole.ExampleLosses[i] - split.ExampleLosses[i]), 0, 1e-5);
        composed.Clear();
    }

    [Fact]
    public void Grouped_candidates_equal_one_at_a_time_in_fewer_forward_passes()
    {
        var counting = new Counting(fx.Model);
        using var composed = new ComposedModel(counting, fx.Modules);
        double[][] candidates = [[0.5, -0.3, 1.2], [0, 0, 0], [1, 0, 0], [-1.5, 1.5, 0.2], [0.1, 0.2, 0.3]];
        // 7 rows per forward, 3 examples: 2 candidates per forward, so 5 candidates take 3 forwards of 6, 6 and 3 rows.
        var objective = new FewShotObjective(composed, Examples, maxRowsPerForward: 7);
        var grouped = objective.EvaluateMany(candidates);
        Assert.Equal([6, 6, 3], counting.Forwards);
        // After a group the adapters are detached: the model computes as the base model again.
        Assert.Null(composed.Weights);
        var after = Seq2Seq.ExampleLosses(fx.Model, Examples);
        for (var e = 0; e < 3; e++) Assert.InRange(Math.Abs(after[e] - Cases[e]!["loss"]!["base"]!.GetValue<double>()), 0, 1e-4);

        counting.Forwards.Clear();
        var alone = candidates.Select(c => objective.Evaluate(c)).ToList();
        Assert.Equal(5, counting.Forwards.Count);
        Assert.Equal(candidates.Length, grouped.Count);
        for (var i = 0; i < candidates.Length; i++)
        {
            Assert.Equal(alone[i].L1, grouped[i].L1);
            for (var e = 0; e < 3; e++) Assert.InRange(Math.Abs(alone[i].ExampleLosses[e] - grouped[i].ExampleLosses[e]), 0, 1e-5);
            Assert.InRange(Math.Abs(alone[i].Value - grouped[i].Value), 0, 1e-5);
        }
        // The candidates differ, so a mix-up of groups would show.
        Assert.True(Math.Abs(grouped[0].Loss - grouped[1].Loss) > 1e-3);
        composed.Clear();
    }

    [Fact]
    public void One_candidate_or_one_per_forward_is_evaluated_alone()
    {
        var counting = new Counting(fx.Model);
        using var composed = new ComposedModel(counting, fx.Modules);
        var single = new FewShotObjective(composed, Examples).EvaluateMany([Mix]);
        Assert.Equal([3], counting.Forwards);
        Assert.Equal(Mix, composed.Weights); // evaluated as Evaluate does: the weights stay attached
        counting.Forwards.Clear();
        // Room for 5 rows only: one candidate (3 rows) per forward.
        var tight = new FewShotObjective(composed, Examples, maxRowsPerForward: 5).EvaluateMany([Mix, [0, 0, 0]]);
        Assert.Equal([3, 3], counting.Forwards);
        Assert.InRange(Math.Abs(single[0].Value - tight[0].Value), 0, 1e-5);
        Assert.True(tight[1].Loss > tight[0].Loss, "w = 0 is the base model, worse than the golden mix here");
        composed.Clear();
    }

    [Fact]
    public void A_diverged_composition_scores_infinity_not_NaN()
    {
        var objective = new FewShotObjective(fx.Composed, Examples);
        double[] huge = [1e20, 1e20, 1e20];
        var alone = objective.Evaluate(huge);
        Assert.False(double.IsFinite(alone.Loss), $"the forward should overflow (loss {alone.Loss})");
        Assert.Equal(double.PositiveInfinity, alone.Value);
        Assert.Equal(0.05 * 1e20, alone.L1, 1e6);

        // In a group, the diverged candidate does not spoil the finite one next to it.
        var grouped = objective.EvaluateMany([huge, Mix]);
        Assert.Equal(double.PositiveInfinity, grouped[0].Value);
        Assert.True(double.IsFinite(grouped[1].Value));
        Assert.InRange(Math.Abs(grouped[1].Value - objective.Evaluate(Mix).Value), 0, 1e-5);
        fx.Use("base");
    }
}
