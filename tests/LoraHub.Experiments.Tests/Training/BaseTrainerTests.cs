using LoraHub.Experiments.Training;
using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Experiments.Toy;
using LoraHub.Core.Training;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Experiments.Tests.Training;

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

/// <summary>The same trainer on a decoder-only Llama: causal copy objective, Llama init, config.json, noise regularisers.</summary>
public sealed class LlamaBaseTrainerTests
{
    private static readonly CharTokenizer Tokenizer = ToyTasks.DecoderOnlyTokenizer;

    private static readonly LlamaConfig Small = new("llama", Tokenizer.VocabSize, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
        NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, MaxPositionEmbeddings: 64,
        BosTokenId: Tokenizer.BosId!.Value, EosTokenIds: [Tokenizer.EosId], PadTokenId: Tokenizer.PadId);

    // The decoder-only convention: bos + s + "=" read, s + eos scored.
    private static List<TokenizedExample> CopyData(int count, int seed) => ToyTasks.Sample(ToyTasks.Copy, count, seed, "base-test", 2, 6)
        .Select(e => FewShotFormat.DecoderOnly.Tokenize(Tokenizer, e.Input + ToyTasks.InputEnd, e.Output)).ToList();

    [Fact]
    public void Create_is_seeded_and_scales_the_residual_projections()
    {
        using var a = BaseTrainer.Create(Small, 3);
        using var b = BaseTrainer.Create(Small, 3);
        using var c = BaseTrainer.Create(Small, 4);
        var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var pb = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var name in pa.Keys)
        {
            Assert.True(pa[name].Same(pb[name]), name);
            Assert.True(pa[name].requires_grad, name);
        }
        Assert.Contains("lm_head.weight", pa.Keys);
        Assert.False(pa["model.embed_tokens.weight"].Same(c.named_parameters().First(p => p.name == "model.embed_tokens.weight").parameter));
        Assert.True(pa["model.norm.weight"].eq(1).all().item<bool>());
        // q: hidden^-0.5 ~ 0.177; o: (heads * head_dim)^-0.5 * (2 * layers)^-0.5 ~ 0.088.
        Assert.InRange(pa["model.layers.0.self_attn.q_proj.weight"].std().item<float>(), 0.15, 0.2);
        Assert.InRange(pa["model.layers.0.self_attn.o_proj.weight"].std().item<float>(), 0.07, 0.11);
        Assert.Throws<ArgumentException>(() => BaseTrainer.Create(Small with { ModelType = "qwen2" }, 1));
    }

    [Fact]
    public void A_short_causal_run_lowers_the_loss_and_the_saved_folder_loads_back_identically()
    {
        using var dir = new Fixtures.TempDir();
        var data = CopyData(64, 1);
        using var model = BaseTrainer.Create(Small, 1);
        var result = BaseTrainer.Train(model, data, new BaseTrainingOptions { Steps = 60, BatchSize = 32, LearningRate = 1e-2, Seed = 1 });
        Assert.True(result.Losses.TakeLast(5).Average() < 0.6 * result.Losses.Take(5).Average(),
            $"loss {result.Losses.Take(5).Average()} -> {result.Losses.TakeLast(5).Average()}");

        BaseTrainer.Save(model, dir.Path, Tokenizer);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "config.json")))!;
        Assert.Equal("llama", config["model_type"]!.GetValue<string>());
        Assert.Equal(3, config["bos_token_id"]!.GetValue<int>());
        Assert.Equal(1, config["eos_token_id"]!.GetValue<int>());
        Assert.Equal(2, config["num_key_value_heads"]!.GetValue<int>());
        var header = LoraHub.Core.Tensors.SafeTensors.ReadHeader(Path.Combine(dir.Path, "model.safetensors"));
        Assert.Contains("model.layers.1.self_attn.v_proj.weight", header.Keys);
        Assert.Contains("lm_head.weight", header.Keys);

        using var loaded = ModelLoader.Load(dir.Path);
        var causal = Assert.IsAssignableFrom<ICausalLanguageModel>(loaded);
        Assert.Equal(Small, ((LlamaForCausalLM)causal).Config with { EosTokenIds = Small.EosTokenIds });
        Assert.Equal(3, Assert.IsType<CharTokenizer>(ModelLoader.LoadTokenizer(dir.Path)).BosId);
        var expected = ((IAdaptableModel)model).ExampleLosses(data.Take(8).ToList());
        var actual = loaded.ExampleLosses(data.Take(8).ToList());
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 5);
        Assert.All(loaded.Module.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void Noisy_teacher_forcing_changes_what_is_read_not_the_prompt_or_the_labels()
    {
        using var model = BaseTrainer.Create(Small, 1);
        var data = CopyData(8, 2);
        var examples = data.Select(CausalExample.Of).ToList();
        using var clean = CausalLm.PerExampleLoss(model, examples);
        using var noNoise = BaseTrainer.NoisyLoss(model, data, 0.0, [4], new Random(1));
        Assert.True(clean.allclose(noNoise, rtol: 1e-5, atol: 1e-6));
        using var noisy = BaseTrainer.NoisyLoss(model, data, 0.9, [4], new Random(1));
        Assert.False(clean.allclose(noisy));

        // p = 1 replaces exactly the completion tokens that are read to predict the next one: not the prompt, not eos.
        var read = examples.Select(e => { var ids = e.InputIds; for (var i = e.PromptIds.Length; i < ids.Length - 1; i++) ids[i] = 4; return ids; }).ToList();
        using var manual = CausalLm.PerExampleLoss(model, examples, read);
        using var always = BaseTrainer.NoisyLoss(model, data, 1.0, [4], new Random(1));
        Assert.True(manual.allclose(always, rtol: 1e-5, atol: 1e-6));

        // The scored targets are the examples' own: changing what is read at the last position (never scored) changes nothing.
        var lastChanged = examples.Select(e => { var ids = e.InputIds; ids[^1] = 5; return ids; }).ToList();
        using var same = CausalLm.PerExampleLoss(model, examples, lastChanged);
        Assert.True(clean.allclose(same, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Adapter_noise_on_q_proj_and_v_proj_trains_and_leaves_no_adapter_behind()
    {
        using var dir = new Fixtures.TempDir();
        var data = CopyData(32, 3);
        using var model = BaseTrainer.Create(Small, 2);
        var result = BaseTrainer.Train(model, data, new BaseTrainingOptions
        {
            Steps = 10, BatchSize = 16, Seed = 2, AdapterNoise = 0.05, DecoderInputNoise = 0.3,
            NoiseTokenIds = Tokenizer.Encode(ToyTasks.Letters + ToyTasks.Digits, addSpecialTokens: false).Ids.ToList(),
        });
        Assert.All(result.Losses, l => Assert.True(double.IsFinite(l)));
        // The noise went through q_proj and v_proj (a run without it differs) and none is left attached.
        using (var quiet = BaseTrainer.Create(Small, 2))
        {
            var plain = BaseTrainer.Train(quiet, data, new BaseTrainingOptions
            {
                Steps = 10, BatchSize = 16, Seed = 2, DecoderInputNoise = 0.3,
                NoiseTokenIds = Tokenizer.Encode(ToyTasks.Letters + ToyTasks.Digits, addSpecialTokens: false).Ids.ToList(),
            });
            Assert.NotEqual(plain.Losses[^1], result.Losses[^1]);
        }
        foreach (var path in LoraTrainer.TargetPaths(model, ["q_proj", "v_proj"]))
            Assert.False(LoraHub.Core.Lora.LoraInjector.Wrap(model, path).HasAdapter, path);
        BaseTrainer.Save(model, dir.Path, Tokenizer);
        using var loaded = ModelLoader.Load(dir.Path);
        var expected = loaded.ExampleLosses(data.Take(4).ToList());
        var actual = ((IAdaptableModel)model).ExampleLosses(data.Take(4).ToList());
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 5);
    }
}
