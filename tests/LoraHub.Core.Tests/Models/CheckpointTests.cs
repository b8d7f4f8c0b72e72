using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Models;

/// <summary>Checkpoint variants: dtypes, embed_tokens keys, tied heads, and broken folders.</summary>
public sealed class CheckpointTests
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static TokenizedExample Example(int i) => new(
        Cases[i]!["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
        Cases[i]!["labels"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray());
    private static double Golden(int i) => Cases[i]!["loss"]!["base"]!.GetValue<double>();

    /// <summary>A copy of tiny-t5 whose config and tensors were edited.</summary>
    private static string Variant(Fixtures.TempDir dir, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> tensors, Action<JsonObject>? config = null)
    {
        var path = dir["model"];
        Directory.CreateDirectory(path);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.TinyT5, "config.json")))!.AsObject();
        config?.Invoke(json);
        File.WriteAllText(Path.Combine(path, "config.json"), json.ToJsonString());
        SafeTensors.Save(Path.Combine(path, "model.safetensors"), tensors(SafeTensors.Load(Path.Combine(Fixtures.TinyT5, "model.safetensors"))));
        return path;
    }

    [Fact]
    public void Embed_tokens_keys_instead_of_shared_give_the_same_model()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, t =>
        {
            t["encoder.embed_tokens.weight"] = t["shared.weight"];
            t["decoder.embed_tokens.weight"] = t["shared.weight"];
            t.Remove("shared.weight");
            return t;
        });
        using var model = ModelLoader.LoadSeq2Seq(path);
        Assert.InRange(Math.Abs(Seq2Seq.ExampleLosses(model, [Example(0)]).Single() - Golden(0)), 0, 1e-4);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, ScalarType.Float32, 0.05)]
    [InlineData(ScalarType.Float16, ScalarType.Float32, 0.01)]
    [InlineData(ScalarType.BFloat16, ScalarType.BFloat16, 0.05)]
    [InlineData(ScalarType.Float16, ScalarType.Float16, 0.01)]
    public void Half_precision_checkpoints_load_and_compute_in_the_asked_type(ScalarType stored, ScalarType compute, double tolerance)
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, t => t.ToDictionary(kv => kv.Key, kv => kv.Value.to(stored)));
        Assert.All(SafeTensors.ReadHeader(Path.Combine(path, "model.safetensors")).Values, h => Assert.Equal(stored == ScalarType.BFloat16 ? "BF16" : "F16", h.Dtype));
        using var model = ModelLoader.LoadSeq2Seq(path, compute);
        Assert.All(model.Module.parameters(), p => Assert.Equal(compute, p.dtype));
        // The shared embedding (read into shared.weight, used by both stacks) is the stored tensor, converted.
        using var expected = SafeTensors.Load(Path.Combine(path, "model.safetensors"), castTo: compute)["shared.weight"];
        Tensors.TensorAssert.Equal(expected, model.Module.named_parameters().Single(p => p.name == "shared.weight").parameter);
        var loss = Seq2Seq.ExampleLosses(model, [Example(0)]).Single();
        Assert.InRange(Math.Abs(loss - Golden(0)), 0, tolerance);
    }

    [Fact]
    public void A_tied_head_equals_an_untied_head_holding_the_rescaled_embedding()
    {
        using var dir = new Fixtures.TempDir();
        var shared = SafeTensors.Load(Path.Combine(Fixtures.TinyT5, "model.safetensors"))["shared.weight"];
        var untiedPath = Variant(dir, t => { t["lm_head.weight"] = shared * Math.Pow(64, -0.5); return t; });
        using var untied = ModelLoader.LoadSeq2Seq(untiedPath);
        var expected = Seq2Seq.ExampleLosses(untied, [Example(1)]).Single();
        using var dir2 = new Fixtures.TempDir();
        var tiedPath = Variant(dir2, t => { t.Remove("lm_head.weight"); return t; }, c => c["tie_word_embeddings"] = true);
        using var tied = ModelLoader.LoadSeq2Seq(tiedPath);
        Assert.InRange(Math.Abs(Seq2Seq.ExampleLosses(tied, [Example(1)]).Single() - expected), 0, 1e-5);
        Assert.NotEqual(Golden(1), expected, 3);
    }

    [Fact]
    public void A_relu_feed_forward_model_loads_wi_and_wo()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, t =>
        {
            foreach (var key in t.Keys.Where(k => k.Contains("wi_1")).ToList()) t.Remove(key);
            foreach (var key in t.Keys.Where(k => k.Contains("wi_0")).ToList()) { t[key.Replace("wi_0", "wi")] = t[key]; t.Remove(key); }
            return t;
        }, c => c["feed_forward_proj"] = "relu");
        using var model = ModelLoader.LoadSeq2Seq(path);
        Assert.Contains(model.Module.named_parameters(), p => p.name == "encoder.block.0.layer.1.DenseReluDense.wi.weight");
        var loss = Seq2Seq.ExampleLosses(model, [Example(0)]).Single();
        Assert.True(double.IsFinite(loss) && Math.Abs(loss - Golden(0)) > 1e-3);
    }

    [Fact]
    public void A_checkpoint_missing_a_layer_is_refused_by_name()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, t => { t.Remove("decoder.block.1.layer.2.DenseReluDense.wo.weight"); return t; });
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadSeq2Seq(path));
        Assert.Contains("decoder.block.1.layer.2.DenseReluDense.wo.weight", e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void A_checkpoint_tensor_of_the_wrong_shape_is_refused_by_name()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, t => t, c => c["d_ff"] = 256);
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadSeq2Seq(path));
        Assert.Contains("DenseReluDense.wi_0.weight", e.Message);
        Assert.Contains("[128, 64]", e.Message);
    }

    [Fact]
    public void An_unknown_model_type_lists_the_supported_ones()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, t => t, c => c["model_type"] = "gpt_neox");
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadSeq2Seq(path));
        Assert.Contains("gpt_neox", e.Message);
        Assert.Contains("t5", e.Message);
    }

    [Fact]
    public void A_corrupt_checkpoint_surfaces_as_a_model_error_naming_the_file()
    {
        using var dir = new Fixtures.TempDir();
        var path = Variant(dir, t => t);
        var file = Path.Combine(path, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadSeq2Seq(path));
        Assert.Contains("model.safetensors", e.Message);
    }
}
