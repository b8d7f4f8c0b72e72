using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using Xunit;
using static LoraHub.Core.Tests.Llama.LlamaFiles;

namespace LoraHub.Core.Tests.Llama;

[Collection("tiny-llama")]
public sealed class LlamaBadInputTests(TinyLlamaFixture fx)
{
    /// <summary>A copy of tiny-llama whose config.json is changed by edit and whose checkpoint keeps the tensors keep accepts.</summary>
    private static void CopyModel(string to, Action<JsonObject>? edit = null, Func<string, bool>? keep = null)
    {
        Directory.CreateDirectory(to);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(TinyLlama, "config.json")))!.AsObject();
        edit?.Invoke(config);
        File.WriteAllText(Path.Combine(to, "config.json"), config.ToJsonString());
        var state = SafeTensors.Load(Path.Combine(TinyLlama, "model.safetensors"));
        try
        {
            SafeTensors.Save(Path.Combine(to, "model.safetensors"), state.Where(kv => keep?.Invoke(kv.Key) ?? true).ToDictionary(),
                new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }

    [Fact]
    public void An_unknown_model_type_lists_the_supported_ones()
    {
        using var dir = new Fixtures.TempDir();
        CopyModel(dir["m"], c => c["model_type"] = "gpt_neox");
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadCausal(dir["m"]));
        Assert.Contains("gpt_neox", e.Message);
        foreach (var supported in new[] { "llama", "mistral", "qwen2" }) Assert.Contains(supported, e.Message);
    }

    [Fact]
    public void A_checkpoint_missing_a_layer_names_it()
    {
        using var dir = new Fixtures.TempDir();
        CopyModel(dir["m"], keep: k => !k.StartsWith("model.layers.1.", StringComparison.Ordinal));
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadCausal(dir["m"]));
        Assert.Contains("model.layers.1", e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void A_checkpoint_of_the_wrong_shape_names_the_tensor()
    {
        using var dir = new Fixtures.TempDir();
        CopyModel(dir["m"], c => c["num_key_value_heads"] = 4);
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadCausal(dir["m"]));
        Assert.Contains("model.layers.0.self_attn.k_proj.weight", e.Message);
    }

    [Fact]
    public void An_adapter_whose_targets_the_model_lacks_is_rejected_by_name()
    {
        using var dir = new Fixtures.TempDir();
        var to = dir["adapter"];
        Directory.CreateDirectory(to);
        File.Copy(Path.Combine(Adapter(0), LoraModule.ConfigFile), Path.Combine(to, LoraModule.ConfigFile));
        var state = SafeTensors.Load(Path.Combine(Adapter(0), LoraModule.SafetensorsFile));
        try
        {
            // A four-layer model's adapter: layers 2 and 3 do not exist in tiny-llama.
            var renamed = state.ToDictionary(kv => kv.Key.Replace("layers.1.", "layers.3."), kv => kv.Value);
            SafeTensors.Save(Path.Combine(to, LoraModule.SafetensorsFile), renamed, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
        using var module = LoraModule.Load(to);
        var e = Assert.Throws<LoraFormatException>(() => module.ValidateAgainst(fx.Model.Module));
        Assert.Contains("model.layers.3.self_attn.q_proj", e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Every_peft_causal_lm_target_is_a_wrappable_linear()
    {
        var names = fx.Model.Module.named_modules().Select(m => m.name).ToHashSet();
        foreach (var target in new[] { "q_proj", "k_proj", "v_proj", "o_proj" })
            Assert.Contains($"model.layers.1.self_attn.{target}", names);
        foreach (var target in new[] { "gate_proj", "up_proj", "down_proj" })
            Assert.Contains($"model.layers.1.mlp.{target}", names);
        var layer = LoraInjector.Wrap(fx.Model.Module, "model.layers.1.mlp.down_proj");
        Assert.Equal((128, 64), (layer.InFeatures, layer.OutFeatures));
        Assert.Throws<KeyNotFoundException>(() => LoraInjector.Wrap(fx.Model.Module, "model.layers.1.mlp.nope"));
    }

    [Fact]
    public void An_empty_prompt_is_an_argument_error()
    {
        Assert.Throws<ArgumentException>(() => CausalLm.ExampleLosses(fx.Model, [new CausalExample([], [2])]));
        Assert.Throws<ArgumentException>(() => CausalLm.Greedy(fx.Model, [], 4));
    }
}
