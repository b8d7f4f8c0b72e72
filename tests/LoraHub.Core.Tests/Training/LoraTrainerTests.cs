using LoraHub.Core;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Training;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Training;

/// <summary>A private copy of the real tiny-t5 (vocab 32128) so training here never disturbs the shared fixture.</summary>
public sealed class TrainingModelFixture : IDisposable
{
    public ISeq2SeqModel Model { get; } = ModelLoader.LoadSeq2Seq(Fixtures.TinyT5);
    public LoraHub.Core.Tokenization.ITextTokenizer Tokenizer { get; } = ModelLoader.LoadTokenizer(Fixtures.TinyT5);

    /// <summary>A tiny task the random model cannot do: name a colour's opposite in one word.</summary>
    public IReadOnlyList<Example> Examples { get; } =
    [
        new("black or", "white"), new("white or", "black"), new("up or", "down"), new("down or", "up"),
        new("hot or", "cold"), new("cold or", "hot"), new("yes or", "no"), new("no or", "yes"),
    ];

    public List<TokenizedExample> Tokenized => TrainingSupport.Tokenize(Model, Tokenizer, Examples);

    public void Dispose() => Model.Dispose();
}

[CollectionDefinition("training-model")]
public sealed class TrainingModelCollection : ICollectionFixture<TrainingModelFixture>;

[Collection("training-model")]
public sealed class LoraTrainerTests(TrainingModelFixture fx)
{
    private static readonly LoraTrainingOptions Quick = new() { Rank = 4, Alpha = 8, Steps = 60, BatchSize = 8, LearningRate = 1e-2, InitSeed = 5 };

    private static Dictionary<string, Tensor> Snapshot(ISeq2SeqModel model) =>
        model.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    [Fact]
    public void Training_lowers_the_loss_a_lot_and_leaves_the_base_untouched_and_clean()
    {
        var data = fx.Tokenized;
        var before = Snapshot(fx.Model);
        var baseLoss = Seq2Seq.ExampleLosses(fx.Model, data).Average();
        var flags = fx.Model.Module.parameters().Select(p => p.requires_grad).ToList();
        var reported = new List<TrainingProgress>();
        using var result = LoraTrainer.Train(fx.Model, data, Quick, new SyncProgress<TrainingProgress>(reported.Add));

        Assert.Equal(Quick.Steps, result.Losses.Count);
        Assert.Equal(Enumerable.Range(1, Quick.Steps), reported.Select(p => p.Step));
        Assert.All(reported, p => Assert.True(double.IsFinite(p.Loss)));
        Assert.True(result.FinalLoss < 0.2 * baseLoss, $"final loss {result.FinalLoss} vs base {baseLoss}");
        Assert.True(result.FinalLoss < 1.0, $"final loss {result.FinalLoss}");

        // Base weights bit-identical, requires_grad as before, no adapter left attached.
        foreach (var (name, p) in fx.Model.Module.named_parameters())
            Assert.True(p.detach().Same(before[name]), name);
        Assert.Equal(flags, fx.Model.Module.parameters().Select(p => p.requires_grad));
        Assert.Equal(baseLoss, Seq2Seq.ExampleLosses(fx.Model, data).Average(), 6);
        foreach (var t in before.Values) t.Dispose();

        // q and v of every attention block: 2 encoder self + 2 decoder self + 2 cross, times q and v.
        Assert.Equal(12, result.Adapter.Layers.Count);
        Assert.Contains("decoder.block.1.layer.1.EncDecAttention.v", result.Adapter.Layers.Keys);
        Assert.All(result.Adapter.Layers.Values, ab => { Assert.Equal([4L, 64L], ab.A.shape); Assert.Equal([64L, 4L], ab.B.shape); });
    }

    [Fact]
    public void Saved_module_loads_in_peft_layout_and_scores_its_final_loss()
    {
        using var dir = new Fixtures.TempDir();
        var data = fx.Tokenized;
        using (var result = LoraTrainer.Train(fx.Model, data, Quick))
        {
            result.Save(dir["m"], "tiny-t5", "opposites.jsonl");
            using var module = LoraModule.Load(dir["m"]);
            Assert.Equal(4, module.Rank);
            Assert.Equal(2.0, module.Config.Scale);
            Assert.Equal(["q", "v"], module.Config.TargetModules);
            using var composed = new ComposedModel(fx.Model, [module]);
            composed.SetWeights([1.0]);
            var loss = Seq2Seq.ExampleLosses(fx.Model, data).Average();
            composed.Clear();
            Assert.InRange(Math.Abs(loss - result.FinalLoss), 0, 1e-4);
        }
        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["m"], LoraTrainingResult.RecordFile)))!;
        Assert.Equal(5, record["init_seed"]!.GetValue<int>());
        Assert.False(record["freeze_a"]!.GetValue<bool>());
        Assert.Equal(60, record["steps"]!.GetValue<int>());
        Assert.Equal("opposites.jsonl", record["data"]!.GetValue<string>());
        Assert.True(record["final_loss"]!.GetValue<double>() < record["first_loss"]!.GetValue<double>());
    }

    [Fact]
    public void A_starts_from_the_hub_seed_and_stays_there_when_frozen()
    {
        var data = fx.Tokenized;
        using var frozen = LoraTrainer.Train(fx.Model, data, Quick with { FreezeA = true, Steps = 20 });
        using var free = LoraTrainer.Train(fx.Model, data, Quick with { Steps = 20 });
        foreach (var (path, (a, _)) in frozen.Adapter.Layers)
        {
            var start = TrainingSupport.KaimingUniformA(5, path, 4, 64);
            Assert.Equal(start, a.data<float>().ToArray());
            Assert.All(start, x => Assert.InRange(x, -0.125f, 0.125f)); // PEFT: U(-1/sqrt(in), 1/sqrt(in))
            Assert.NotEqual(start, free.Adapter.Layers[path].A.data<float>().ToArray());
        }
        Assert.True(frozen.FinalLoss < Seq2Seq.ExampleLosses(fx.Model, data).Average());
    }

    [Fact]
    public void Modules_with_one_init_seed_share_A_exactly_and_differ_in_B()
    {
        var data = fx.Tokenized;
        var other = TrainingSupport.Tokenize(fx.Model, fx.Tokenizer, [new("left or", "right"), new("right or", "left"), new("in or", "out")]);
        using var m1 = LoraTrainer.Train(fx.Model, data, Quick with { FreezeA = true, Steps = 15 });
        using var m2 = LoraTrainer.Train(fx.Model, other, Quick with { FreezeA = true, Steps = 15, Seed = 9 });
        using var m3 = LoraTrainer.Train(fx.Model, data, Quick with { FreezeA = true, Steps = 1, InitSeed = 6 });
        foreach (var path in m1.Adapter.Layers.Keys)
        {
            Assert.True(m1.Adapter.Layers[path].A.Same(m2.Adapter.Layers[path].A), path);
            Assert.False(m1.Adapter.Layers[path].B.Same(m2.Adapter.Layers[path].B), path);
            Assert.False(m1.Adapter.Layers[path].A.Same(m3.Adapter.Layers[path].A), path);
        }
    }

    [Fact]
    public void Training_is_deterministic()
    {
        var data = fx.Tokenized;
        using var a = LoraTrainer.Train(fx.Model, data, Quick with { Steps = 10 });
        using var b = LoraTrainer.Train(fx.Model, data, Quick with { Steps = 10 });
        Assert.Equal(a.Losses, b.Losses);
        foreach (var path in a.Adapter.Layers.Keys) Assert.True(a.Adapter.Layers[path].B.Same(b.Adapter.Layers[path].B), path);
    }

    [Fact]
    public void Bad_options_and_targets_are_rejected_by_name()
    {
        var data = fx.Tokenized;
        var e = Assert.Throws<ArgumentException>(() => LoraTrainer.Train(fx.Model, data, Quick with { Targets = ["query"] }));
        Assert.Contains("query", e.Message);
        Assert.Contains("q, v", e.Message.Replace("k, o, q, v", "q, v")); // lists the layer names the model has
        Assert.Throws<ArgumentException>(() => LoraTrainer.Train(fx.Model, data, Quick with { Steps = 0 }));
        Assert.Throws<ArgumentException>(() => LoraTrainer.Train(fx.Model, data, Quick with { LearningRate = -1 }));
        Assert.Throws<ArgumentException>(() => LoraTrainer.Train(fx.Model, [], Quick));
        Assert.Equal(["encoder.block.0.layer.0.SelfAttention.q", "encoder.block.1.layer.0.SelfAttention.q"],
            LoraTrainer.TargetPaths(fx.Model, ["q"]).Where(p => p.StartsWith("encoder", StringComparison.Ordinal)));
    }

    [Fact]
    public void Cancellation_stops_training_and_leaves_the_model_clean()
    {
        var data = fx.Tokenized;
        var baseLoss = Seq2Seq.ExampleLosses(fx.Model, data).Average();
        using var cts = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() =>
            LoraTrainer.Train(fx.Model, data, Quick, new SyncProgress<TrainingProgress>(p => { if (p.Step == 3) cts.Cancel(); }), cts.Token));
        Assert.Equal(baseLoss, Seq2Seq.ExampleLosses(fx.Model, data).Average(), 6);
        Assert.All(fx.Model.Module.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void Schedule_warms_up_then_decays_to_zero()
    {
        Assert.Equal(0.25, TrainingSupport.LearningRateFactor(0, 100, 4));
        Assert.Equal(1.0, TrainingSupport.LearningRateFactor(3, 100, 4));
        Assert.Equal(1.0, TrainingSupport.LearningRateFactor(4, 100, 4));
        Assert.Equal(1.0 / 96, TrainingSupport.LearningRateFactor(99, 100, 4), 12);
        Assert.Equal(1.0, TrainingSupport.LearningRateFactor(0, 10, 0));
    }

    [Fact]
    public void Batches_cover_every_example_each_pass_in_a_seeded_order()
    {
        var items = Enumerable.Range(0, 10).ToList();
        var s1 = new BatchSampler<int>(items, 5, 3);
        var pass = s1.Next().Concat(s1.Next()).ToList();
        Assert.Equal(items, pass.Order());
        var s2 = new BatchSampler<int>(items, 5, 3);
        Assert.Equal(pass, s2.Next().Concat(s2.Next()));
        Assert.Equal(3, new BatchSampler<int>([1, 2, 3], 32, 0).Next().Count);
    }

}
