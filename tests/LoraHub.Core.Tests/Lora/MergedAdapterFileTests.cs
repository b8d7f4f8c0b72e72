using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tests.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Lora;

/// <summary>
/// The adapter folder a composition writes, read back the way PEFT reads it: every field of adapter_config.json
/// that PEFT's LoraConfig takes (with its JSON type), the safetensors keys, dtypes and shapes, and the numbers of
/// both merges.
/// </summary>
[Collection("tiny-t5")]
public sealed class MergedAdapterFileTests(TinyT5Fixture fx)
{
    private const string Q0 = "encoder.block.0.layer.0.SelfAttention.q";
    private const string V0 = "encoder.block.0.layer.0.SelfAttention.v";
    private static readonly double[] W = [0.5, -0.3, 1.2];

    /// <summary>Three layers, two of them q: target_modules must name each last part once, sorted.</summary>
    private static MergedAdapter Small(double alpha, bool rslora = false, string? taskType = null)
    {
        manual_seed(7);
        var layers = new Dictionary<string, (Tensor A, Tensor B)>
        {
            ["decoder.block.0.layer.1.EncDecAttention.v"] = (randn(2, 3), randn(5, 2)),
            ["decoder.block.0.layer.0.SelfAttention.q"] = (randn(2, 3), randn(4, 2)),
            ["encoder.block.0.layer.0.SelfAttention.o"] = (randn(2, 6), randn(3, 2)),
            ["encoder.block.0.layer.0.SelfAttention.q"] = (randn(2, 3), randn(4, 2)),
        };
        return taskType is null ? new MergedAdapter(2, alpha, rslora, layers) : new MergedAdapter(2, alpha, rslora, layers, taskType);
    }

    private static JsonObject ReadConfig(string dir) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(dir, LoraModule.ConfigFile)))!.AsObject();

    [Fact]
    public void Adapter_config_has_every_field_PEFT_reads_with_its_JSON_type()
    {
        using var dir = new Fixtures.TempDir();
        using (var adapter = Small(16.0, taskType: "CAUSAL_LM")) adapter.Save(dir["out"], "org/base-model");
        var text = File.ReadAllText(Path.Combine(dir["out"], LoraModule.ConfigFile));
        var config = ReadConfig(dir["out"]);

        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());
        Assert.Equal("org/base-model", config["base_model_name_or_path"]!.GetValue<string>());
        Assert.Equal(["o", "q", "v"], config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(JsonValueKind.Number, config["r"]!.GetValueKind());
        Assert.Equal("2", config["r"]!.ToJsonString());
        // An integral alpha is written as an integer, as PEFT itself saves it (LoraConfig.lora_alpha: int).
        Assert.Equal("16", config["lora_alpha"]!.ToJsonString());
        Assert.Equal("none", config["bias"]!.GetValue<string>());
        Assert.False(config["fan_in_fan_out"]!.GetValue<bool>());
        Assert.True(config["inference_mode"]!.GetValue<bool>());
        Assert.True(config["init_lora_weights"]!.GetValue<bool>());
        Assert.False(config["use_rslora"]!.GetValue<bool>());
        Assert.Equal(0.0, config["lora_dropout"]!.GetValue<double>());
        Assert.Empty(config["rank_pattern"]!.AsObject());
        Assert.Empty(config["alpha_pattern"]!.AsObject());
        foreach (var isNull in new[] { "modules_to_save", "layers_to_transform", "layers_pattern", "revision", "auto_mapping" })
        {
            Assert.True(config.ContainsKey(isNull), isNull);
            Assert.Null(config[isNull]);
        }
        // Written for people too (PEFT writes it indented), and complete: no temporary file left behind.
        Assert.True(text.Split('\n').Length > 20);
        Assert.Equal([LoraModule.ConfigFile, LoraModule.SafetensorsFile],
            Directory.GetFiles(dir["out"]).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var read = LoraConfig.Load(Path.Combine(dir["out"], LoraModule.ConfigFile));
        Assert.Equal((2, 16.0, false, "CAUSAL_LM", "org/base-model"), (read.R, read.LoraAlpha, read.UseRslora, read.TaskType, read.BaseModelNameOrPath));
        Assert.Equal(8.0, read.Scale);
    }

    [Fact]
    public void A_fractional_alpha_stays_a_float_rslora_is_kept_and_the_task_defaults_to_seq2seq()
    {
        using var dir = new Fixtures.TempDir();
        using (var adapter = Small(12.5, rslora: true)) adapter.Save(dir["out"], "tiny-t5");
        var config = ReadConfig(dir["out"]);
        Assert.Equal("12.5", config["lora_alpha"]!.ToJsonString());
        Assert.True(config["use_rslora"]!.GetValue<bool>());
        Assert.Equal("SEQ_2_SEQ_LM", config["task_type"]!.GetValue<string>());
        var read = LoraConfig.Load(Path.Combine(dir["out"], LoraModule.ConfigFile));
        Assert.Equal(12.5 / Math.Sqrt(2), read.Scale, 12);
    }

    [Fact]
    public void Safetensors_hold_PEFT_keys_as_float32_with_the_shapes_and_values_given()
    {
        using var dir = new Fixtures.TempDir();
        using var adapter = Small(8);
        adapter.Save(dir["out"], "tiny-t5");
        var file = Path.Combine(dir["out"], LoraModule.SafetensorsFile);

        Assert.Equal("pt", SafeTensors.ReadMetadata(file)["format"]);
        var header = SafeTensors.ReadHeader(file);
        var expectedKeys = adapter.Layers.Keys
            .SelectMany(p => new[] { $"base_model.model.{p}.lora_A.weight", $"base_model.model.{p}.lora_B.weight" })
            .Order(StringComparer.Ordinal);
        Assert.Equal(expectedKeys, header.Keys.Order(StringComparer.Ordinal));
        Assert.All(header.Values, h => Assert.Equal("F32", h.Dtype));
        foreach (var (path, (a, b)) in adapter.Layers)
        {
            Assert.Equal(a.shape, header[$"base_model.model.{path}.lora_A.weight"].Shape);
            Assert.Equal(b.shape, header[$"base_model.model.{path}.lora_B.weight"].Shape);
        }

        // Read back as a module: the same layers, A and B on their own sides, bit for bit.
        using var module = LoraModule.Load(dir["out"]);
        Assert.Equal(adapter.Layers.Keys.Order(StringComparer.Ordinal), module.Layers.Keys.Order(StringComparer.Ordinal));
        foreach (var (path, (a, b)) in adapter.Layers)
        {
            Assert.True(module.Layers[path].A.eq(a).all().item<bool>(), path);
            Assert.True(module.Layers[path].B.eq(b).all().item<bool>(), path);
        }
    }

    [Fact]
    public void Saving_again_replaces_the_files_and_creates_missing_folders()
    {
        using var dir = new Fixtures.TempDir();
        var target = Path.Combine(dir["a"], "b", "c");
        using (var first = Small(16)) first.Save(target, "tiny-t5");
        using (var second = Small(4.5)) second.Save(target, "tiny-t5");
        Assert.Equal(4.5, ReadConfig(target)["lora_alpha"]!.GetValue<double>());
        Assert.Equal(2, Directory.GetFiles(target).Length);
    }

    [Fact]
    public void Dispose_releases_every_A_and_B()
    {
        var adapter = Small(8);
        var tensors = adapter.Layers.Values.SelectMany(l => new[] { l.A, l.B }).ToList();
        adapter.Dispose();
        Assert.All(tensors, t => Assert.True(t.IsInvalid));
    }

    /// <summary>The paper's merge: A_hat = Σ w_i A_i and B_hat = Σ w_i B_i, merged separately; one shared scale stays in lora_alpha.</summary>
    [Fact]
    public void The_lorahub_merge_writes_the_weighted_sums_of_A_and_of_B()
    {
        using var dir = new Fixtures.TempDir();
        using (var merged = fx.Composed.Merge(W))
        {
            Assert.Equal((4, 32.0, false, "SEQ_2_SEQ_LM"), (merged.Rank, merged.LoraAlpha, merged.UseRslora, merged.TaskType));
            merged.Save(dir["m"], "tiny-t5");
        }
        var config = ReadConfig(dir["m"]);
        Assert.Equal("4", config["r"]!.ToJsonString());
        Assert.Equal("32", config["lora_alpha"]!.ToJsonString());
        Assert.Equal(["q", "v"], config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));

        var saved = SafeTensors.Load(Path.Combine(dir["m"], LoraModule.SafetensorsFile));
        var paths = fx.Modules.SelectMany(m => m.Layers.Keys).Distinct().ToList();
        Assert.Equal(paths.Count * 2, saved.Count);
        foreach (var path in paths)
        {
            var a = WeightedSum(i => fx.Modules[i].Layers[path].A);
            var b = WeightedSum(i => fx.Modules[i].Layers[path].B);
            AssertClose(a, saved[$"base_model.model.{path}.lora_A.weight"], path);
            AssertClose(b, saved[$"base_model.model.{path}.lora_B.weight"], path);
        }
        foreach (var t in saved.Values) t.Dispose();
    }

    /// <summary>Modules of different scales: B carries each module's scale and lora_alpha = r makes PEFT's scale 1.</summary>
    [Fact]
    public void Modules_of_different_alpha_merge_with_the_scales_in_B_and_alpha_equal_to_r()
    {
        using var dir = new Fixtures.TempDir();
        var half = CopyModule(dir, 1, c => c["lora_alpha"] = 16);
        using var other = LoraModule.Load(half);
        var modules = new[] { fx.Modules[0], other, fx.Modules[2] };
        double[] scales = [8, 4, 8];
        using (var composed = new ComposedModel(fx.Model, modules))
        using (var merged = composed.Merge(W))
        {
            Assert.Equal((4, 4.0, false), (merged.Rank, merged.LoraAlpha, merged.UseRslora));
            var (a, b) = merged.Layers[Q0];
            AssertClose(WeightedSum(i => modules[i].Layers[Q0].A), a, Q0);
            AssertClose(WeightedSum(i => modules[i].Layers[Q0].B * scales[i]), b, Q0);
        }
        fx.Model.Module.eval();
    }

    [Fact]
    public void Rslora_modules_keep_rslora_and_their_alpha_unless_scales_differ()
    {
        using var dir = new Fixtures.TempDir();
        var folders = Enumerable.Range(0, 3).Select(i => CopyModule(dir, i, c => c["use_rslora"] = true)).ToList();
        var rs = folders.Select(f => LoraModule.Load(f)).ToList();
        try
        {
            using (var composed = new ComposedModel(fx.Model, rs))
            using (var merged = composed.Merge(W))
            {
                Assert.Equal((32.0, true), (merged.LoraAlpha, merged.UseRslora));
                AssertClose(WeightedSum(i => rs[i].Layers[V0].B), merged.Layers[V0].B, V0);
            }
            // One rsLoRA module among plain ones: scales 16 vs 8 differ, so B carries them and rsLoRA is off.
            var mixed = new[] { rs[0], fx.Modules[1], fx.Modules[2] };
            using (var composed = new ComposedModel(fx.Model, mixed))
            using (var merged = composed.Merge(W))
            {
                Assert.Equal((4.0, false), (merged.LoraAlpha, merged.UseRslora));
                double[] scales = [16, 8, 8];
                AssertClose(WeightedSum(i => mixed[i].Layers[V0].B * scales[i]), merged.Layers[V0].B, V0);
            }
        }
        finally
        {
            foreach (var m in rs) m.Dispose();
        }
    }

    /// <summary>The linear merge: rank Σ r_i, lora_alpha = Σ r_i, and B A = Σ w_i s_i B_i A_i exactly, layer by layer.</summary>
    [Fact]
    public void The_linear_merge_writes_rank_sum_and_the_exact_weighted_delta()
    {
        using var dir = new Fixtures.TempDir();
        using (var composed = new ComposedModel(fx.Model, fx.Modules, MergeMode.Linear))
        using (var merged = composed.Merge(W))
        {
            Assert.Equal((12, 12.0, false), (merged.Rank, merged.LoraAlpha, merged.UseRslora));
            merged.Save(dir["lin"], "tiny-t5");
        }
        var config = ReadConfig(dir["lin"]);
        Assert.Equal("12", config["r"]!.ToJsonString());
        Assert.Equal("12", config["lora_alpha"]!.ToJsonString());
        using var saved = LoraModule.Load(dir["lin"]);
        Assert.Equal(1.0, saved.Config.Scale);
        foreach (var path in saved.Layers.Keys)
        {
            var (a, b) = saved.Layers[path];
            var expected = WeightedSum(i => matmul(fx.Modules[i].Layers[path].B, fx.Modules[i].Layers[path].A) * fx.Modules[i].Config.Scale);
            AssertClose(expected, matmul(b, a), path);
            // The cat layout: module i owns rows 4i..4i+3 of A (times w_i) and columns 4i..4i+3 of B (times s_i).
            for (var i = 0; i < 3; i++)
            {
                AssertClose(fx.Modules[i].Layers[path].A * W[i], a[(4 * i)..(4 * i + 4)], path);
                AssertClose(fx.Modules[i].Layers[path].B * fx.Modules[i].Config.Scale, b[.., (4 * i)..(4 * i + 4)], path);
            }
        }
    }

    [Fact]
    public void Merge_refuses_a_weight_vector_of_the_wrong_length()
    {
        var e = Assert.Throws<ArgumentException>(() => fx.Composed.Merge([1.0, 2.0]));
        Assert.Contains("2 weights", e.Message);
        Assert.Contains("3 modules", e.Message);
    }

    [Theory]
    [InlineData("lorahub", MergeMode.LoraHub)]
    [InlineData("LINEAR", MergeMode.Linear)]
    [InlineData("Linear", MergeMode.Linear)]
    public void Merge_modes_parse_by_name_ignoring_case_and_round_trip(string name, MergeMode mode)
    {
        Assert.Equal(mode, MergeModes.Parse(name));
        Assert.Equal(name.ToLowerInvariant(), mode.Name());
        Assert.Equal(mode, MergeModes.Parse(mode.Name()));
    }

    [Fact]
    public void An_unknown_merge_mode_names_itself_and_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => MergeModes.Parse("ties"));
        Assert.Contains("'ties'", e.Message);
        Assert.Contains("lorahub, linear", e.Message);
        Assert.Equal(["lorahub", "linear"], MergeModes.Names);
    }

    private static Tensor WeightedSum(Func<int, Tensor> term)
    {
        var sum = term(0) * W[0];
        for (var i = 1; i < W.Length; i++) sum = sum + term(i) * W[i];
        return sum;
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var diff = (expected - actual).abs().max().item<float>();
        var size = expected.abs().max().item<float>();
        Assert.True(diff <= 1e-5 * Math.Max(1, size), $"{what}: max |difference| {diff} (size {size})");
    }

    /// <summary>A copy of fixture module i with its adapter_config.json edited.</summary>
    private static string CopyModule(Fixtures.TempDir dir, int i, Action<JsonObject> edit)
    {
        var to = dir[$"lora_{i}_edited"];
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(Fixtures.Adapter(i))) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        var config = ReadConfig(to);
        edit(config);
        File.WriteAllText(Path.Combine(to, LoraModule.ConfigFile), config.ToJsonString());
        return to;
    }
}
