using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tests.Models;
using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

[Collection("tiny-t5")]
public sealed class ComposerTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static readonly IReadOnlyList<Example> Examples = Cases.Select(c => new Example(c!["input_text"]!.GetValue<string>(), c["target_text"]!.GetValue<string>())).ToList();
    private static IReadOnlyList<ModuleRef> Pool => ModuleRef.Scan(Path.Combine(Fixtures.T5, "adapters"));
    private static ITextTokenizer Tokenizer => ModelLoader.LoadTokenizer(Fixtures.TinyT5);

    private CompositionResult Compose(CompositionSettings settings, IReadOnlyList<ModuleRef>? pool = null) =>
        new Composer(fx.Model, Tokenizer).Compose(pool ?? Pool, Examples, settings, "tiny-t5");

    [Fact]
    public void The_written_adapter_scores_the_loss_recorded_in_lorahub_json()
    {
        using var dir = new Fixtures.TempDir();
        using (var result = Compose(new CompositionSettings { Budget = 12, K = 3 }))
            CompositionOutput.Write(dir["out"], result, force: false, reportPng: [1, 2, 3]);
        var record = CompositionRecord.Load(Path.Combine(dir["out"], "lorahub.json"));
        Assert.Equal(12, record.History.Count);
        Assert.Equal(3, record.Weights.Length);
        Assert.Equal(record.History.Min(h => h.Objective), record.Best!.Objective);
        Assert.True(record.Best.Objective < record.History[0].Objective, "the search improved on w = 0");
        Assert.InRange(Math.Abs(record.Best.L1 - 0.05 * record.Weights.Average(Math.Abs)), 0, 1e-12);

        using var module = LoraModule.Load(dir["out"]);
        using var composed = new ComposedModel(fx.Model, [module]);
        composed.SetWeights([1.0]);
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, Tokenizer, Examples, out _);
        var loss = Seq2Seq.ExampleLosses(fx.Model, tokenized).Average();
        composed.Clear();
        Assert.InRange(Math.Abs(loss - record.Best.Loss), 0, 1e-4);
    }

    [Theory]
    [InlineData("cobyla")]
    [InlineData("cmaes")]
    [InlineData("random")]
    public void The_same_seed_gives_the_same_composition(string optimizer)
    {
        var settings = new CompositionSettings { Budget = 10, K = 2, Optimizer = optimizer, Seed = 3 };
        using var a = Compose(settings);
        using var b = Compose(settings);
        Assert.Equal(a.Record.Modules.Select(m => m.Name), b.Record.Modules.Select(m => m.Name));
        Assert.Equal(a.Record.Weights, b.Record.Weights);
        Assert.Equal(a.Record.History.Select(h => h.Objective), b.Record.History.Select(h => h.Objective));
        Assert.Equal(10, a.Record.History.Count);
    }

    [Fact]
    public void Batched_candidates_score_like_one_at_a_time()
    {
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, Tokenizer, Examples, out _);
        var objective = new FewShotObjective(fx.Composed, tokenized);
        double[][] candidates = [[0.5, -0.3, 1.2], [0, 0, 0], [1, 0, 0], [-1.5, 1.5, 0.2]];
        var batched = objective.EvaluateMany(candidates);
        for (var i = 0; i < candidates.Length; i++)
        {
            var alone = objective.Evaluate(candidates[i]);
            Assert.InRange(Math.Abs(batched[i].Value - alone.Value), 0, 1e-5);
            Assert.Equal(alone.L1, batched[i].L1);
        }
        Assert.InRange(Math.Abs(batched[0].Loss - Cases.Average(c => c!["loss"]!["lorahub"]!.GetValue<double>())), 0, 1e-4);
        fx.Use("base");
    }

    [Fact]
    public void Selection_by_loss_keeps_the_modules_with_the_lowest_single_loss()
    {
        using var result = Compose(new CompositionSettings { Budget = 3, K = 2, Selection = "loss" });
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, Tokenizer, Examples, out _);
        var single = new Dictionary<string, double>();
        foreach (var i in Enumerable.Range(0, 3))
        {
            fx.Use($"lora_{i}");
            single[$"lora_{i}"] = Seq2Seq.ExampleLosses(fx.Model, tokenized).Average();
        }
        fx.Use("base");
        Assert.Equal(single.OrderBy(kv => kv.Value).Take(2).Select(kv => kv.Key).Order(), result.Record.Modules.Select(m => m.Name).Order());
    }

    [Fact]
    public void Bad_settings_are_refused_before_any_work()
    {
        Assert.Contains("cannot select 4 modules from a pool of 3", Assert.Throws<CompositionException>(() => Compose(new CompositionSettings { K = 4 })).Message);
        Assert.Contains("budget must be at least 1 (got 0)", Assert.Throws<CompositionException>(() => Compose(new CompositionSettings { Budget = 0, K = 3 })).Message);
        Assert.Contains("unknown optimizer 'adam'", Assert.Throws<CompositionException>(() => Compose(new CompositionSettings { Optimizer = "adam", K = 3 })).Message);
    }

    [Fact]
    public void Over_long_examples_are_truncated_with_a_warning()
    {
        using var result = new Composer(fx.Model, Tokenizer).Compose(Pool, Examples, new CompositionSettings { Budget = 2, K = 3, MaxTokens = 8 }, "tiny-t5");
        Assert.Contains(result.Record.Warnings, w => w.Contains("example 1: input has 12 tokens, truncated to 8"));
        var ids = ExampleTokenizer.Truncate([5, 6, 7, 8, 1], 3, 1, out var length);
        Assert.Equal([5, 6, 1], ids);
        Assert.Equal(5, length);
    }

    [Fact]
    public void A_module_of_another_base_model_is_refused_by_name()
    {
        using var dir = new Fixtures.TempDir();
        var pool = dir["pool"];
        foreach (var i in Enumerable.Range(0, 2))
        {
            var target = Path.Combine(pool, $"m{i}");
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(Fixtures.Adapter(i))) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        }
        // A module for a wider model (d_model 128): same keys, other shapes.
        var foreign = Path.Combine(pool, "m2");
        Directory.CreateDirectory(foreign);
        File.Copy(Path.Combine(Fixtures.Adapter(2), "adapter_config.json"), Path.Combine(foreign, "adapter_config.json"));
        var tensors = LoraHub.Core.Tensors.SafeTensors.Load(Path.Combine(Fixtures.Adapter(2), "adapter_model.safetensors"))
            .ToDictionary(kv => kv.Key, kv => kv.Key.Contains("lora_A") ? TorchSharp.torch.zeros(4, 128) : TorchSharp.torch.zeros(128, 4));
        LoraHub.Core.Tensors.SafeTensors.Save(Path.Combine(foreign, "adapter_model.safetensors"), tensors);
        var e = Assert.Throws<LoraFormatException>(() => Compose(new CompositionSettings { K = 3, Budget = 2 }, ModuleRef.Scan(pool)));
        Assert.Contains("m2", e.Message);
        Assert.Contains("does not fit the base model", e.Message);
    }

    [Fact]
    public void An_existing_composition_is_kept_unless_forced_and_a_failed_write_changes_nothing()
    {
        using var dir = new Fixtures.TempDir();
        var result = Compose(new CompositionSettings { Budget = 2, K = 3 });
        CompositionOutput.Write(dir["out"], result, force: false);
        var before = File.ReadAllText(Path.Combine(dir["out"], "lorahub.json"));
        Assert.Contains("--force", Assert.Throws<CompositionException>(() => CompositionOutput.Write(dir["out"], result, force: false)).Message);

        result.Dispose(); // the adapter's tensors are gone: writing fails half-way
        Assert.ThrowsAny<Exception>(() => CompositionOutput.Write(dir["out"], result, force: true));
        Assert.Equal(before, File.ReadAllText(Path.Combine(dir["out"], "lorahub.json")));
        Assert.Equal(["out"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));

        using var again = Compose(new CompositionSettings { Budget = 3, K = 3 });
        CompositionOutput.Write(dir["out"], again, force: true);
        Assert.Equal(3, CompositionRecord.Load(Path.Combine(dir["out"], "lorahub.json")).History.Count);
        Assert.Equal(["out"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }
}
