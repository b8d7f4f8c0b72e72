using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Core.Training;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>
/// The in-process host around the driver, on tiny-t5 and its three adapters: what it checks, what it records in
/// lorahub.json (merge, rank, counts, timings, warnings) and what it reports while it runs.
/// </summary>
[Collection("tiny-t5")]
public sealed class ComposerHostTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static readonly IReadOnlyList<Example> Examples = Cases.Select(c => new Example(c!["input_text"]!.GetValue<string>(), c["target_text"]!.GetValue<string>())).ToList();
    private static IReadOnlyList<ModuleRef> Pool => ModuleRef.Scan(Path.Combine(Fixtures.T5, "adapters"));
    private static ITextTokenizer Tokenizer => ModelLoader.LoadTokenizer(Fixtures.TinyT5);

    private Composer Composer => new(fx.Model, Tokenizer);

    [Fact]
    public void No_examples_is_refused_before_any_evaluation()
    {
        var reports = new List<CompositionProgress>();
        var e = Assert.Throws<CompositionException>(() => Composer.Compose(Pool, [], new CompositionSettings { K = 3, Selection = "loss" }, "tiny-t5",
            new SyncProgress<CompositionProgress>(reports.Add)));
        Assert.Equal("no examples to compose from", e.Message);
        Assert.Empty(reports);
    }

    [Fact]
    public void The_record_says_what_was_composed_how_and_how_long_it_took()
    {
        var settings = new CompositionSettings { Budget = 6, K = 2, Seed = 4, Optimizer = "random", Population = 3, L1 = 0.1, Lower = -1, Upper = 1.25, InitialStep = 0.4 };
        using var result = Composer.Compose(Pool, Examples, settings, "tiny-t5-base");
        var r = result.Record;
        Assert.Equal(("tiny-t5-base", "lorahub", 4, 4, "random", "random", 6), (r.BaseModel, r.Merge, r.Rank, r.Seed, r.Selection, r.Optimizer, r.Budget));
        Assert.Equal((0.1, 0.4, Examples.Count), (r.L1Coefficient, r.InitialStep, r.Examples));
        Assert.Equal([-1, 1.25], r.Bounds);
        Assert.Equal(2, r.Rounds); // 6 evaluations in batches of 3
        Assert.Equal(2, r.Modules.Count);
        Assert.All(r.Modules, m => Assert.Equal(Path.Combine(Fixtures.T5, "adapters", m.Name), m.Path));
        Assert.Equal(r.Weights, r.Modules.Select(m => m.Weight));
        Assert.Equal(r.History[r.Best!.Evaluation - 1].Objective, r.Best.Objective);
        Assert.Equal(r.History.Min(h => h.Objective), r.Best.Objective);
        Assert.All(r.History, h => Assert.Equal(0.1 * h.Weights.Average(Math.Abs), h.L1, 12));

        var t = r.Timings!;
        Assert.True(t.SelectSeconds >= 0 && t.LoadSeconds >= 0 && t.SearchSeconds > 0, $"{t}");
        Assert.Equal(6 / t.SearchSeconds, t.EvaluationsPerSecond, 6);
        // The adapter written is the record's weights merged.
        Assert.Equal(4, result.Adapter.Rank);
        Assert.NotEmpty(result.Adapter.Layers);
        Assert.All(result.Adapter.Layers.Values, ab => Assert.Equal(4, ab.A.shape[0]));
    }

    [Fact]
    public void The_linear_merge_is_recorded_with_the_rank_sum_and_gives_a_rank_sum_adapter()
    {
        using var result = Composer.Compose(Pool, Examples, new CompositionSettings { Budget = 3, K = 3, Merge = "linear" }, "tiny-t5");
        Assert.Equal(("linear", 12), (result.Record.Merge, result.Record.Rank));
        Assert.Equal(12, result.Adapter.Rank);
        Assert.All(result.Adapter.Layers.Values, ab => Assert.Equal(12, ab.A.shape[0]));
    }

    [Fact]
    public void Batched_candidates_give_the_same_search_as_one_at_a_time()
    {
        var settings = new CompositionSettings { Budget = 8, K = 3, Optimizer = "cmaes", Population = 4, Seed = 1 };
        using var alone = Composer.Compose(Pool, Examples, settings, "tiny-t5");
        using var batched = Composer.Compose(Pool, Examples, settings with { BatchCandidates = true }, "tiny-t5");
        // The first generation is the same points whatever the values; its objectives agree to rounding.
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(alone.Record.History[i].Weights, batched.Record.History[i].Weights);
            Assert.Equal(alone.Record.History[i].Objective, batched.Record.History[i].Objective, 1e-5);
        }
        Assert.Equal(8, batched.Record.History.Count);
    }

    [Fact]
    public async Task Loss_selection_reports_each_probed_module_then_the_search_rounds()
    {
        var reports = new List<CompositionProgress>();
        using var result = await Composer.ComposeAsync(Pool, Examples, new CompositionSettings { Budget = 3, K = 2, Selection = "loss", Optimizer = "cobyla" },
            "tiny-t5", new SyncProgress<CompositionProgress>(reports.Add));
        var select = reports.Where(r => r.Phase == "select").Select(r => r.Done).ToList();
        Assert.Equal([0, 1, 2, 3, 3], select); // the driver's start, one per module probed, the driver's end
        Assert.All(reports.Where(r => r.Phase == "select"), r => Assert.Equal(3, r.Total));
        Assert.Equal([0, 1, 2, 3], reports.Where(r => r.Phase == "search").Select(r => r.Done));
        Assert.Equal("loss", result.Record.Selection);
        Assert.Equal(2, result.Record.Modules.Count);
    }

    [Fact]
    public void Modules_trained_from_different_A_inits_are_warned_about_in_the_lorahub_merge_only()
    {
        using var dir = new Fixtures.TempDir();
        var pool = dir["pool"];
        for (var i = 0; i < 3; i++)
        {
            var target = Path.Combine(pool, $"m{i}");
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(Fixtures.Adapter(i))) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
            File.WriteAllText(Path.Combine(target, LoraTrainingResult.RecordFile), $$"""{"init_seed": {{(i == 2 ? 8 : 7)}}, "steps": 10}""");
        }
        var modules = ModuleRef.Scan(pool);
        const string warning = "modules were trained from different A initialisations (init seeds 7, 8): the lorahub merge may not combine them well";
        using (var lorahub = Composer.Compose(modules, Examples, new CompositionSettings { Budget = 2, K = 3 }, "tiny-t5"))
            Assert.Equal([warning], lorahub.Record.Warnings);
        using (var linear = Composer.Compose(modules, Examples, new CompositionSettings { Budget = 2, K = 3, Merge = "linear" }, "tiny-t5"))
            Assert.Empty(linear.Record.Warnings);
        using (var same = Composer.Compose(modules.Take(2).ToList(), Examples, new CompositionSettings { Budget = 2, K = 2 }, "tiny-t5"))
            Assert.Empty(same.Record.Warnings);
    }
}

/// <summary>What a module's training record says about its A init, read defensively.</summary>
public sealed class ModuleProvenanceTests
{
    private static string Module(Fixtures.TempDir dir, string name, string? record)
    {
        var folder = dir[name];
        Directory.CreateDirectory(folder);
        if (record is not null) File.WriteAllText(Path.Combine(folder, LoraTrainingResult.RecordFile), record);
        return folder;
    }

    [Fact]
    public void The_init_seed_is_read_from_the_training_record_or_is_unknown()
    {
        using var dir = new Fixtures.TempDir();
        Assert.Equal("42", ModuleProvenance.InitSeed(Module(dir, "a", """{"init_seed": 42}""")));
        Assert.Equal("\"hub\"", ModuleProvenance.InitSeed(Module(dir, "b", """{"init_seed": "hub"}""")));
        Assert.Null(ModuleProvenance.InitSeed(Module(dir, "c", """{"steps": 3}""")));
        Assert.Null(ModuleProvenance.InitSeed(Module(dir, "d", "{not json")));
        Assert.Null(ModuleProvenance.InitSeed(Module(dir, "e", null)));
    }

    [Fact]
    public void A_warning_needs_two_different_known_seeds()
    {
        using var dir = new Fixtures.TempDir();
        var a = Module(dir, "a", """{"init_seed": 1}""");
        var a2 = Module(dir, "a2", """{"init_seed": 1}""");
        var b = Module(dir, "b", """{"init_seed": 2}""");
        var unknown = Module(dir, "u", null);
        Assert.Empty(ModuleProvenance.InitWarnings([a, a2, unknown]));
        Assert.Empty(ModuleProvenance.InitWarnings([b]));
        Assert.Empty(ModuleProvenance.InitWarnings([]));
        var w = Assert.Single(ModuleProvenance.InitWarnings([a, unknown, b, a2]));
        Assert.Contains("(init seeds 1, 2)", w);
    }
}
