using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;
using static LoraHub.Core.Tests.Llama.LlamaFiles;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Llama;

/// <summary>Mistral (sliding window), Qwen2 (q/k/v biases), tied heads and Llama 3 rope scaling, on tiny-llama's weights.</summary>
public sealed class LlamaVariantTests
{
    private static readonly JsonArray Cases = Golden["cases"]!.AsArray();
    private static CausalExample Example(int i) => CausalExample.Join(1, Ids(Cases[i]!["prompt_ids"]!), Ids(Cases[i]!["completion_ids"]!), 2);

    private static string Variant(Fixtures.TempDir dir, Action<JsonObject> edit, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>>? state = null)
    {
        var to = dir["m"];
        Directory.CreateDirectory(to);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(TinyLlama, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(to, "config.json"), config.ToJsonString());
        var tensors = SafeTensors.Load(Path.Combine(TinyLlama, "model.safetensors"));
        var saved = state?.Invoke(tensors) ?? tensors;
        SafeTensors.Save(Path.Combine(to, "model.safetensors"), saved, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (var t in saved.Values.Where(t => !tensors.Values.Any(o => ReferenceEquals(o, t)))) t.Dispose();
        foreach (var t in tensors.Values) t.Dispose();
        return to;
    }

    [Fact]
    public void Mistral_with_a_window_longer_than_the_text_computes_as_llama()
    {
        using var dir = new Fixtures.TempDir();
        using var model = ModelLoader.LoadCausal(Variant(dir, c => { c["model_type"] = "mistral"; c["sliding_window"] = 4096; }));
        var loss = CausalLm.ExampleLosses(model, [Example(1)]).Single();
        Assert.InRange(Math.Abs(loss - Cases[1]!["loss"]!["base"]!.GetValue<double>()), 0, 1e-4);
    }

    [Fact]
    public void A_short_sliding_window_changes_the_loss_and_the_cache_agrees_with_full_recompute()
    {
        using var dir = new Fixtures.TempDir();
        using var model = ModelLoader.LoadCausal(Variant(dir, c => { c["model_type"] = "mistral"; c["sliding_window"] = 4; }));
        var loss = CausalLm.ExampleLosses(model, [Example(1)]).Single();
        Assert.True(Math.Abs(loss - Cases[1]!["loss"]!["base"]!.GetValue<double>()) > 1e-3);

        // Greedy with the cache must equal argmax of a full forward over the growing sequence.
        var prompt = Example(2).PromptIds;
        var cached = CausalLm.Greedy(model, prompt, 6, stopAtEos: false);
        var sequence = prompt.ToList();
        using (no_grad())
        {
            for (var step = 0; step < 6; step++)
            {
                using var scope = NewDisposeScope();
                var logits = model.Forward(tensor(sequence.Select(x => (long)x).ToArray()).unsqueeze(0));
                sequence.Add((int)logits[0, -1].argmax().item<long>());
            }
        }
        Assert.Equal(sequence.Skip(prompt.Length), cached);
        // And batched, left-padded generation agrees with it.
        var batch = CausalLm.GreedyBatch(model, [Example(0).PromptIds, prompt], 6);
        Assert.Equal(cached.TakeWhile(t => t != 2), batch[1].TakeWhile(t => t != 2));
    }

    [Fact]
    public void Qwen2_has_qkv_biases_and_zero_biases_compute_as_llama()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, c => c["model_type"] = "qwen2", s =>
        {
            var withBias = new Dictionary<string, Tensor>(s);
            for (var l = 0; l < 2; l++)
                foreach (var (proj, size) in new[] { ("q_proj", 64), ("k_proj", 32), ("v_proj", 32) })
                    withBias[$"model.layers.{l}.self_attn.{proj}.bias"] = zeros(size);
            return withBias;
        });
        using var model = ModelLoader.LoadCausal(path);
        var names = model.Module.named_parameters().Select(p => p.name).ToHashSet();
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", names);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", names);
        var loss = CausalLm.ExampleLosses(model, [Example(0)]).Single();
        Assert.InRange(Math.Abs(loss - Cases[0]!["loss"]!["base"]!.GetValue<double>()), 0, 1e-4);
    }

    [Fact]
    public void A_tied_head_reuses_the_embedding_and_ignores_a_stored_lm_head()
    {
        using var dir = new Fixtures.TempDir();
        using var model = ModelLoader.LoadCausal(Variant(dir, c => c["tie_word_embeddings"] = true));
        Assert.DoesNotContain(model.Module.named_parameters(), p => p.name == "lm_head.weight");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.Forward(tensor(new long[] { 1, 15043 }).unsqueeze(0));
        Assert.Equal(new long[] { 1, 2, 32000 }, logits.shape);
    }

    [Fact]
    public void Llama3_rope_scaling_follows_the_reference_formula()
    {
        var config = new LlamaConfig("llama", 10, 64, 128, 1, 1, 1, 64, RopeTheta: 500000.0,
            RopeScaling: new RopeScaling("llama3", 8.0, 1.0, 4.0, 8192));
        var actual = config.InverseFrequencies();
        for (var i = 0; i < 32; i++)
        {
            var f = 1.0 / Math.Pow(500000.0, 2.0 * i / 64);
            var wavelen = 2 * Math.PI / f;
            double expected;
            if (wavelen < 8192 / 4.0) expected = f;
            else if (wavelen > 8192 / 1.0) expected = f / 8;
            else
            {
                var smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0);
                expected = (1 - smooth) * f / 8 + smooth * f;
            }
            Assert.InRange(Math.Abs(actual[i] - expected) / expected, 0, 1e-5);
        }
    }

    [Fact]
    public void Unsupported_rope_scaling_is_a_clear_error()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, c => c["rope_scaling"] = new JsonObject { ["type"] = "yarn", ["factor"] = 4.0 });
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadCausal(path));
        Assert.Contains("yarn", e.Message);
    }
}
