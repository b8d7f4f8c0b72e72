using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tests.Models;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Lora;

[Collection("tiny-t5")]
public sealed class LoraModuleTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static TokenizedExample Example(int i) => new(
        Cases[i]!["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
        Cases[i]!["labels"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray());

    [Fact]
    public void Peft_keys_map_to_target_layers_with_config_rank_and_scale()
    {
        var m = fx.Modules[0];
        Assert.Equal(4, m.Rank);
        Assert.Equal(8.0, m.Config.Scale);
        Assert.Contains("encoder.block.0.layer.0.SelfAttention.q", m.Layers.Keys);
        Assert.Contains("decoder.block.1.layer.1.EncDecAttention.v", m.Layers.Keys);
        Assert.All(m.Layers.Values, ab => { Assert.Equal(new long[] { 4, 64 }, ab.A.shape); Assert.Equal(new long[] { 64, 4 }, ab.B.shape); });
        Assert.Equal(("encoder.block.0.layer.0.SelfAttention.q", 'A'), LoraModule.ParseKey("base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"));
        Assert.Equal(("decoder.block.1.layer.1.EncDecAttention.v", 'B'), LoraModule.ParseKey("base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_B.default.weight"));
        Assert.Null(LoraModule.ParseKey("base_model.model.encoder.block.0.layer.0.SelfAttention.q.weight"));
    }

    [Fact]
    public void A_saved_composition_is_a_peft_adapter_that_scores_like_the_composition()
    {
        using var dir = new Fixtures.TempDir();
        double[] w = [0.5, -0.3, 1.2];
        using (var merged = fx.Composed.Merge(w)) merged.Save(dir["composed"], "tiny-t5");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["composed"], "adapter_config.json")))!;
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal(4, config["r"]!.GetValue<int>());
        Assert.Equal(32, config["lora_alpha"]!.GetValue<int>());
        Assert.Equal(["q", "v"], config["target_modules"]!.AsArray().Select(x => x!.GetValue<string>()));
        var header = SafeTensors.ReadHeader(Path.Combine(dir["composed"], "adapter_model.safetensors"));
        Assert.Equal(fx.Modules[0].Layers.Count * 2, header.Count);
        Assert.Equal(new long[] { 4, 64 }, header["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"].Shape);

        using var saved = LoraModule.Load(dir["composed"]);
        using var again = new ComposedModel(fx.Model, [saved]);
        again.SetWeights([1.0]);
        var loss = Seq2Seq.ExampleLosses(fx.Model, [Example(0)]).Single();
        again.Clear();
        Assert.InRange(Math.Abs(loss - Cases[0]!["loss"]!["lorahub"]!.GetValue<double>()), 0, 1e-4);
        fx.Use("base");
    }

    [Fact]
    public void A_legacy_bin_module_scores_exactly_like_its_safetensors_twin()
    {
        var binDir = Path.Combine(Fixtures.Root, "bin", "lora_0");
        using var bin = LoraModule.Load(binDir);
        Assert.Equal(fx.Modules[0].Layers.Keys.Order(), bin.Layers.Keys.Order());
        foreach (var (path, (a, b)) in fx.Modules[0].Layers)
        {
            Assert.True(a.eq(bin.Layers[path].A).all().item<bool>(), path);
            Assert.True(b.eq(bin.Layers[path].B).all().item<bool>(), path);
        }
    }

    private static string CopyAdapter(Fixtures.TempDir dir, int index = 0)
    {
        var target = dir[$"adapter{index}"];
        Directory.CreateDirectory(target);
        foreach (var f in Directory.GetFiles(Fixtures.Adapter(index))) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        return target;
    }

    private static void EditConfig(string adapterDir, Action<JsonObject> edit)
    {
        var path = Path.Combine(adapterDir, "adapter_config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    private static void RewriteTensors(string adapterDir, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> edit)
    {
        var path = Path.Combine(adapterDir, "adapter_model.safetensors");
        var tensors = SafeTensors.Load(path);
        SafeTensors.Save(path, edit(tensors));
    }

    [Fact]
    public void Adapter_config_without_r_is_refused_naming_the_file()
    {
        using var dir = new Fixtures.TempDir();
        var a = CopyAdapter(dir);
        EditConfig(a, j => j.Remove("r"));
        var e = Assert.Throws<LoraFormatException>(() => LoraModule.Load(a));
        Assert.Contains("adapter_config.json", e.Message);
        Assert.Contains("'r'", e.Message);
    }

    [Fact]
    public void A_rank_that_disagrees_with_the_config_is_refused()
    {
        using var dir = new Fixtures.TempDir();
        var a = CopyAdapter(dir);
        EditConfig(a, j => j["r"] = 8);
        var e = Assert.Throws<LoraFormatException>(() => LoraModule.Load(a));
        Assert.Contains("rank 4", e.Message);
        Assert.Contains("r = 8", e.Message);
    }

    [Fact]
    public void An_adapter_whose_shapes_do_not_fit_the_model_is_refused_by_layer_name()
    {
        using var dir = new Fixtures.TempDir();
        var a = CopyAdapter(dir);
        const string key = "base_model.model.encoder.block.1.layer.0.SelfAttention.v.lora_A.weight";
        RewriteTensors(a, t => { t[key] = zeros(4, 32); return t; });
        using var module = LoraModule.Load(a);
        var e = Assert.Throws<LoraFormatException>(() => module.ValidateAgainst(fx.Model.Module));
        Assert.Contains("encoder.block.1.layer.0.SelfAttention.v", e.Message);
        Assert.Contains("[4, 32]", e.Message);
    }

    [Fact]
    public void An_adapter_targeting_a_layer_the_model_lacks_is_refused_by_name()
    {
        using var dir = new Fixtures.TempDir();
        var a = CopyAdapter(dir);
        RewriteTensors(a, t =>
        {
            t["base_model.model.encoder.block.7.layer.0.SelfAttention.q.lora_A.weight"] = zeros(4, 64);
            t["base_model.model.encoder.block.7.layer.0.SelfAttention.q.lora_B.weight"] = zeros(64, 4);
            return t;
        });
        using var module = LoraModule.Load(a);
        var e = Assert.Throws<LoraFormatException>(() => new ComposedModel(fx.Model, [module]));
        Assert.Contains("encoder.block.7.layer.0.SelfAttention.q", e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Modules_of_mixed_ranks_cannot_be_merged_the_lorahub_way()
    {
        using var dir = new Fixtures.TempDir();
        var a = CopyAdapter(dir);
        EditConfig(a, j => j["r"] = 2);
        RewriteTensors(a, t => t.ToDictionary(kv => kv.Key, kv => kv.Key.Contains("lora_A") ? kv.Value[..2] : kv.Value[.., ..2]));
        using var small = LoraModule.Load(a);
        var e = Assert.Throws<LoraFormatException>(() => new ComposedModel(fx.Model, [fx.Modules[0], small]));
        Assert.Contains("different ranks", e.Message);
        // The linear merge concatenates, so mixed ranks are fine there.
        using var linear = new ComposedModel(fx.Model, [fx.Modules[0], small], MergeMode.Linear);
        Assert.Equal(6, linear.Rank);
    }

    [Fact]
    public void Stray_tensors_and_missing_halves_are_refused_by_name()
    {
        using var dir = new Fixtures.TempDir();
        var a = CopyAdapter(dir);
        RewriteTensors(a, t => { t.Remove("base_model.model.decoder.block.0.layer.0.SelfAttention.q.lora_B.weight"); return t; });
        var e = Assert.Throws<LoraFormatException>(() => LoraModule.Load(a));
        Assert.Contains("decoder.block.0.layer.0.SelfAttention.q", e.Message);
        Assert.Contains("no lora_B", e.Message);

        var b = CopyAdapter(dir, 1);
        RewriteTensors(b, t => { t["base_model.model.shared.weight"] = zeros(3); return t; });
        var e2 = Assert.Throws<LoraFormatException>(() => LoraModule.Load(b));
        Assert.Contains("base_model.model.shared.weight", e2.Message);
    }

    [Fact]
    public void A_folder_without_weights_or_config_is_refused()
    {
        using var dir = new Fixtures.TempDir();
        Directory.CreateDirectory(dir["empty"]);
        Assert.Contains("adapter_config.json", Assert.Throws<LoraFormatException>(() => LoraModule.Load(dir["empty"])).Message);
        File.Copy(Path.Combine(Fixtures.Adapter(0), "adapter_config.json"), Path.Combine(dir["empty"], "adapter_config.json"));
        Assert.Contains("adapter_model.safetensors", Assert.Throws<LoraFormatException>(() => LoraModule.Load(dir["empty"])).Message);
        Assert.Contains("does not exist", Assert.Throws<LoraFormatException>(() => LoraModule.Load(dir["nope"])).Message);
    }
}
