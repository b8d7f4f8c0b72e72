using System.Text.Json.Nodes;
using LoraHub.Core.Optimization;
using Xunit;
using static LoraHub.Core.Tests.Optimization.OptimizerHarness;

namespace LoraHub.Core.Tests.Optimization;

/// <summary>The paper's setting, 20 weights and 40 evaluations: the reference's COBYLA trace, and the searches made for it.</summary>
public sealed class SearchAtK20Tests
{
    private static readonly JsonNode Trace = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Root, "cobyla", "scipy-cobyla-20d.json")))!;

    private static double[] Doubles(string key) => Trace[key]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();

    /// <summary>
    /// make_trace.py's objective, in the same order of operations (sequential sums): the LoraHub merge scales module i
    /// by (Σw)·w_i; modules 0, 3 and 7 want 0.45, 0.6 and -0.2, the 17 others 0; plus 0.05 · mean |w|.
    /// </summary>
    private static Func<double[], double> MergeObjective()
    {
        var target = Doubles("target");
        var curvature = Doubles("curvature");
        var l1 = Trace["l1"]!.GetValue<double>();
        return w =>
        {
            double s = 0;
            foreach (var x in w) s += x;
            double loss = 0;
            for (int i = 0; i < w.Length; i++)
            {
                double r = s * w[i] - target[i];
                loss += curvature[i] * (r * r);
            }
            double abs = 0;
            foreach (var x in w) abs += Math.Abs(x);
            return loss + l1 * (abs / w.Length);
        };
    }

    [Fact]
    public void Cobyla_asks_the_points_scipy_asked_in_20_dimensions_with_budget_40()
    {
        // Recorded by tests/fixtures/cobyla/make_trace.py: scipy 1.10.1's COBYLA (what the reference's nevergrad NGOpt
        // runs for 20 weights and 40 evaluations) from w = 0, rhobeg 0.5, the box as 40 linear constraints.
        var points = Trace["points"]!.AsArray().Select(p => p!.AsArray().Select(v => v!.GetValue<double>()).ToArray()).ToList();
        var values = Doubles("values");
        Assert.Equal(40, points.Count);
        var trace = Run(new OptimizerSettings("cobyla", 20, 40), MergeObjective());
        AssertSamePoints(points, trace.Points);
        Assert.Equal(values, trace.Values); // the same objective, bit for bit
        Assert.Equal(Enumerable.Repeat(1, 40), trace.BatchSizes); // the reference's 40 sequential rounds
    }

    [Fact]
    public void The_default_is_at_least_as_good_as_cobyla_in_at_most_20_rounds_at_k20_budget40()
    {
        Assert.Equal("quadratic-greedy", Optimizers.Default);
        // A retrieval task (one module wants weight 1) and a pair (two modules want 0.707 each, the merge's (Σw)·w_i
        // = 0.5), among 20: serial COBYLA creeps to 1.41 on the first in 40 rounds; the default lands on the
        // optimum of both in 8 rounds.
        foreach (var (f, cobylaBest, defaultBest) in new[]
        {
            (Task((5, 1.0)), 1.4112, 0.0025),
            (Task((2, 0.5), (11, 0.5)), 0.0025, 0.0025),
        })
        {
            var cobyla = Optimizers.Create(new OptimizerSettings("cobyla", 20, 40));
            Run(cobyla, f);
            var chosen = Optimizers.Create(new OptimizerSettings(Optimizers.Default, 20, 40));
            var trace = Run(chosen, f);
            Assert.Equal(40, trace.Points.Count);
            Assert.True(trace.BatchSizes.Count <= 20, $"{trace.BatchSizes.Count} rounds");
            Assert.Equal(8, trace.BatchSizes.Count);
            Assert.Equal(cobylaBest, cobyla.Best!.Value, 4);
            Assert.Equal(defaultBest, chosen.Best!.Value, 4);
            Assert.True(chosen.Best.Value <= cobyla.Best.Value + 1e-12, $"{Optimizers.Default} {chosen.Best.Value} vs cobyla {cobyla.Best.Value}");
        }
        // Not everywhere: on the fixture's objective (a third module wants a negative weight, the two others sit in one
        // probe block) serial COBYLA's one-at-a-time accumulation wins, 0.0975 against 0.285 (docs/search.md).
    }

    [Fact]
    public void Quadratic_greedy_probes_in_four_rounds_each_from_the_best_point_so_far()
    {
        var f = Task((2, 0.5), (11, 0.5));
        var trace = Run(new OptimizerSettings("quadratic-greedy", 20, 40), f);
        Assert.Equal([6, 5, 5, 5], trace.BatchSizes.Take(4)); // the start and 5 probes, then 5 probes a round
        for (int round = 1; round < 4; round++)
        {
            int before = trace.BatchSizes.Take(round).Sum();
            var best = trace.Points[Enumerable.Range(0, before).MinBy(i => trace.Values[i])];
            for (int k = 0; k < 5; k++)
            {
                var expected = (double[])best.Clone();
                expected[round * 5 + k] += 0.5;
                AssertSamePoints([expected], [trace.Points[before + k]]);
            }
        }
        // Module 2 (round 1) made the best point, so round 3 probes module 11 on top of it: the pair at 0.5 each.
        Assert.Equal(0.0025, trace.Values.Take(21).Min(), 4);
        Assert.Equal(8, trace.BatchSizes.Count);
    }

    [Fact]
    public void Ranked_probes_every_weight_in_one_round_then_searches_the_best_few_only()
    {
        var f = MergeObjective();
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-ranked", 20, 40));
        var trace = Run(optimizer, f);
        Assert.Equal(40, trace.Points.Count);
        Assert.Equal(21, trace.BatchSizes[0]);
        Assert.All(trace.BatchSizes.Skip(1), b => Assert.Equal(1, b)); // 20 rounds in all
        Assert.Equal(20, trace.BatchSizes.Count);
        for (int j = 0; j < 20; j++) Assert.Equal(0.5, trace.Points[j + 1][j]);

        // The 5 weights whose probe scored best are searched; the others stay 0 after the probe round.
        var ranked = Enumerable.Range(0, 20).OrderBy(j => trace.Values[j + 1]).ThenBy(j => j).Take(5).Order().ToArray();
        Assert.Equal(ranked, ((RankedCobyla)optimizer).Chosen);
        Assert.Contains(0, ranked);
        Assert.Contains(3, ranked);
        foreach (var p in trace.Points.Skip(21))
            for (int j = 0; j < 20; j++)
                if (!ranked.Contains(j)) Assert.Equal(0, p[j]);
        // Nothing is evaluated twice: the subspace COBYLA's simplex comes from the probe round.
        Assert.Equal(40, trace.Points.Select(p => string.Join(",", p.Select(BitConverter.DoubleToInt64Bits))).Distinct().Count());

        // Its steps are COBYLA's own in 5 dimensions: the same as cobyla-parallel run on the subspace objective.
        var sub = Run(new OptimizerSettings("cobyla-parallel", 5, 6 + 19), x =>
        {
            var full = new double[20];
            for (int k = 0; k < 5; k++) full[ranked[k]] = x[k];
            return f(full);
        });
        AssertSamePoints(sub.Points.Skip(6).ToList(), trace.Points.Skip(21).Select(p => ranked.Select(j => p[j]).ToArray()).ToList());
        Assert.True(optimizer.Best!.Value < trace.Values.Take(21).Min(), "the subspace search improves on the probes");
    }

    [Fact]
    public void Ranked_stops_after_the_probe_round_when_the_budget_ends_in_it()
    {
        var trace = Run(new OptimizerSettings("cobyla-ranked", 20, 20), MergeObjective());
        Assert.Equal([20], trace.BatchSizes);
        var small = Run(new OptimizerSettings("cobyla-ranked", 3, 40, Population: 5), Quadratic([0.3, -0.7, 1.1]));
        Assert.Equal(4, small.BatchSizes[0]); // K below the subspace size: all weights are searched
        Assert.True(small.Values.Min() < 0.05);
    }

    [Fact]
    public void Greedy_builds_the_simplex_in_two_rounds_each_from_the_best_so_far()
    {
        var f = MergeObjective();
        var trace = Run(new OptimizerSettings("cobyla-greedy", 20, 40), f);
        Assert.Equal(40, trace.Points.Count);
        Assert.Equal([11, 10], trace.BatchSizes.Take(2));
        Assert.All(trace.BatchSizes.Skip(2), b => Assert.Equal(1, b)); // 21 rounds in all
        // Round 2 probes from the best point of round 1.
        var best1 = trace.Points[Enumerable.Range(0, 11).MinBy(i => trace.Values[i])];
        for (int j = 10; j < 20; j++)
        {
            var expected = (double[])best1.Clone();
            expected[j] += 0.5;
            AssertSamePoints([expected], [trace.Points[11 + j - 10]]);
        }
        var cobyla = Optimizers.Create(new OptimizerSettings("cobyla", 20, 40));
        Run(cobyla, f);
        Assert.True(trace.Values.Min() < 0.5, $"greedy best {trace.Values.Min()}"); // cobyla: 0.0975
    }

    [Fact]
    public void Greedy_equals_cobyla_parallel_when_no_start_step_improves()
    {
        // With no improving probe every round probes from the start: the simplex is cobyla-parallel's, so is the rest.
        var f = Quadratic([0.2, -0.4, 0.1, -1.0, 0.25, -0.3]);
        var greedy = Run(new OptimizerSettings("cobyla-greedy", 6, 80, Population: 2), f);
        var parallel = Run(new OptimizerSettings("cobyla-parallel", 6, 80), f);
        AssertSamePoints(parallel.Points, greedy.Points);
        Assert.Equal([3, 2, 2], greedy.BatchSizes.Take(3));
    }

    [Fact]
    public void Greedy_converges_on_a_quadratic_and_handles_a_start_near_the_bound()
    {
        double[] c = [0.3, -0.7, 1.1, -0.2, 0.9];
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-greedy", 5, 300, Start: [1.3, 0, 0, 0, 0]));
        var trace = Run(optimizer, Quadratic(c));
        Assert.True(MaxAbsDiff(optimizer.Best!.Point, c) < 1e-3, string.Join(", ", optimizer.Best.Point));
        Assert.All(trace.Points, p => Assert.All(p, v => Assert.InRange(v, -1.5, 1.5)));
        Assert.Equal(1.5, trace.Points[1][0]); // 1.3 + 0.5 clipped
    }

    [Fact]
    public void Quadratic_ranked_fits_its_model_in_five_rounds()
    {
        var f = MergeObjective();
        var optimizer = Optimizers.Create(new OptimizerSettings("quadratic-ranked", 20, 40));
        var trace = Run(optimizer, f);
        Assert.Equal(40, trace.Points.Count);
        Assert.Equal([21, 10, 3, 3, 3], trace.BatchSizes); // probes, the design of 4 weights, three model rounds
        Assert.Equal(40, trace.Points.Select(p => string.Join(",", p.Select(BitConverter.DoubleToInt64Bits))).Distinct().Count());
        // The design's pair point (modules 0 and 3 at 0.5 each) is where serial COBYLA's greedy start ends up too.
        Assert.Equal(0.0975, optimizer.Best!.Value, 1e-12);
        Assert.True(trace.Values.Take(21).Min() > 0.4, "the probes alone are far from it");
        // On an exact quadratic the model is exact: one model round lands on the box-constrained minimum.
        double[] c = [0.3, -0.7, 1.1, -0.2];
        var exact = Optimizers.Create(new OptimizerSettings("quadratic-ranked", 4, 20));
        Run(exact, Quadratic(c));
        Assert.True(MaxAbsDiff(exact.Best!.Point, c) < 1e-6, string.Join(", ", exact.Best.Point));
    }

    /// <summary>
    /// A toy-world-like objective in 20 weights: the merge (Σw)·w_i should reach the targets on the needed modules and 0
    /// elsewhere (curvatures 1 to 2), plus the L1 term; the loss is 1 - exp(-residual), saturating far from the target
    /// as a cross-entropy does.
    /// </summary>
    internal static Func<double[], double> Task(params (int Module, double Target)[] needed) => w =>
    {
        double s = 0;
        foreach (var x in w) s += x;
        double residual = 0, abs = 0;
        for (int i = 0; i < w.Length; i++)
        {
            double t = needed.FirstOrDefault(n => n.Module == i).Target;
            double r = s * w[i] - t;
            residual += (1 + 0.25 * ((7 * i) % 5)) * r * r;
            abs += Math.Abs(w[i]);
        }
        return 4 * (1 - Math.Exp(-residual)) + 0.05 * abs / w.Length;
    };

    [Fact]
    public void Invert_inverts_a_triangular_simplex()
    {
        var m = new double[,] { { 0.5, 0, 0.5 }, { 0, 0.5, 0.5 }, { 0, 0, 0.5 } };
        var inv = Cobyla.Invert(m);
        for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
        {
            double s = 0;
            for (int k = 0; k < 3; k++) s += m[i, k] * inv[k, j];
            Assert.Equal(i == j ? 1 : 0, s, 12);
        }
    }
}
