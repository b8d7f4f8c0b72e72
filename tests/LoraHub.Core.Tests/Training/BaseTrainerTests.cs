using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Core.Toy;
using LoraHub.Core.Training;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Training;

public sealed class BaseTrainerTests
{
    private static readonly T5Config Small = new(ToyTasks.Tokenizer.VocabSize, DModel: 32, DKv: 8, DFf: 64, NumLayers: 1, NumDecoderLayers: 1,
        NumHeads: 4, RelativeAttentionNumBuckets: 32, RelativeAttentionMaxDistance: 32, TieWordEmbeddings: false);

    // The encoder-decoder convention: input and output each end with eos.
    private static List<TokenizedExample> CopyData(int count, int seed) => ToyTasks.Sample(ToyTasks.Copy, count, seed, "base-test", 2, 6)
        .Select(e => new TokenizedExample(ToyTasks.Tokenizer.Encode(e.Input).Ids.ToArray(), ToyTasks.Tokenizer.Encode(e.Output).Ids.ToArray())).ToList();

    [Fact]
    public void Create_is_seeded_and_uses_t5_initialisation()
    {
        using var a = BaseTrainer.Create(Small, 3);
        using var b = BaseTrainer.Create(Small, 3);
        using var c = BaseTrainer.Create(Small, 4);
        var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var pb = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var pc = c.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var name in pa.Keys)
        {
            Assert.True(pa[name].Same(pb[name]), name);
            Assert.True(pa[name].requires_grad, name);
        }
        Assert.False(pa["shared.weight"].Same(pc["shared.weight"]));
        Assert.True(pa["encoder.final_layer_norm.weight"].eq(1).all().item<bool>());
        // q: std (d_model * d_kv)^-0.5 = 1/16; k: d_model^-0.5 ~ 0.177.
        Assert.InRange(pa["encoder.block.0.layer.0.SelfAttention.q.weight"].std().item<float>(), 0.05, 0.075);
        Assert.InRange(pa["encoder.block.0.layer.0.SelfAttention.k.weight"].std().item<float>(), 0.15, 0.2);
    }

    [Fact]
    public void A_short_run_lowers_the_loss_and_the_saved_folder_loads_back_identically()
    {
        using var dir = new Fixtures.TempDir();
        var data = CopyData(64, 1);
        using var model = BaseTrainer.Create(Small, 1);
        var result = BaseTrainer.Train(model, data, new BaseTrainingOptions { Steps = 80, BatchSize = 32, LearningRate = 1e-2, Seed = 1 });
        Assert.Equal(80, result.Losses.Count);
        Assert.True(result.Losses.TakeLast(5).Average() < 0.6 * result.Losses.Take(5).Average(),
            $"loss {result.Losses.Take(5).Average()} -> {result.Losses.TakeLast(5).Average()}");

        BaseTrainer.Save(model, dir.Path, ToyTasks.Tokenizer);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "config.json")))!;
        Assert.Equal("t5", config["model_type"]!.GetValue<string>());
        Assert.Equal("relu", config["feed_forward_proj"]!.GetValue<string>());
        Assert.False(config["tie_word_embeddings"]!.GetValue<bool>());
        var header = LoraHub.Core.Tensors.SafeTensors.ReadHeader(Path.Combine(dir.Path, "model.safetensors"));
        Assert.Contains("shared.weight", header.Keys);
        Assert.Contains("lm_head.weight", header.Keys);
        Assert.Contains("decoder.block.0.layer.1.EncDecAttention.q.weight", header.Keys);
        Assert.DoesNotContain("encoder.embed_tokens.weight", header.Keys);

        using var loaded = ModelLoader.LoadSeq2Seq(dir.Path);
        Assert.IsType<CharTokenizer>(ModelLoader.LoadTokenizer(dir.Path));
        var expected = Seq2Seq.ExampleLosses(model, data.Take(8).ToList());
        var actual = Seq2Seq.ExampleLosses(loaded, data.Take(8).ToList());
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 5);
        Assert.All(loaded.Module.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void Decoder_input_noise_changes_the_inputs_not_the_labels()
    {
        using var model = BaseTrainer.Create(Small, 1);
        var data = CopyData(8, 2);
        using var clean = Seq2Seq.PerExampleLoss(model, data);
        using var noNoise = BaseTrainer.NoisyLoss(model, data, 0.0, [3], new Random(1));
        Assert.True(clean.allclose(noNoise, rtol: 1e-5, atol: 1e-6));
        using var noisy = BaseTrainer.NoisyLoss(model, data, 0.9, [3], new Random(1));
        Assert.False(clean.allclose(noisy));
    }

    [Fact]
    public void Adapter_noise_trains_and_leaves_no_adapter_behind()
    {
        using var dir = new Fixtures.TempDir();
        var data = CopyData(32, 3);
        using var model = BaseTrainer.Create(Small, 2);
        var result = BaseTrainer.Train(model, data, new BaseTrainingOptions { Steps = 10, BatchSize = 16, Seed = 2, AdapterNoise = 0.05 });
        Assert.All(result.Losses, l => Assert.True(double.IsFinite(l)));
        BaseTrainer.Save(model, dir.Path, ToyTasks.Tokenizer);
        using var loaded = ModelLoader.LoadSeq2Seq(dir.Path);
        var expected = Seq2Seq.ExampleLosses(loaded, data.Take(4).ToList());
        var actual = Seq2Seq.ExampleLosses(model, data.Take(4).ToList());
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 5);
    }

    [Fact]
    public void A_loaded_frozen_model_is_refused()
    {
        using var model = BaseTrainer.Create(Small, 1);
        foreach (var p in model.parameters()) p.requires_grad = false;
        var e = Assert.Throws<InvalidOperationException>(() => BaseTrainer.Train(model, CopyData(4, 1), new BaseTrainingOptions { Steps = 1 }));
        Assert.Contains("BaseTrainer.Create", e.Message);
    }
}
