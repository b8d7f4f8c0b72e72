using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Tensors;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Lora;

/// <summary>
/// Reading a PEFT adapter folder the way PEFT writes it: which adapter_config.json fields change the computation, which
/// are refused (each with the file and the field in the message), and which tensors make a module.
/// </summary>
public sealed class AdapterFolderTests
{
    private const string Q = "encoder.block.0.layer.0.SelfAttention.q";
    private const string V = "encoder.block.0.layer.0.SelfAttention.v";

    private static string Config(Fixtures.TempDir dir, string json)
    {
        Directory.CreateDirectory(dir["m"]);
        var path = Path.Combine(dir["m"], LoraModule.ConfigFile);
        File.WriteAllText(path, json);
        return path;
    }

    private static LoraConfig Load(string json)
    {
        using var dir = new Fixtures.TempDir();
        return LoraConfig.Load(Config(dir, json));
    }

    private static string Refused(string json)
    {
        using var dir = new Fixtures.TempDir();
        var path = Config(dir, json);
        var e = Assert.Throws<LoraFormatException>(() => LoraConfig.Load(path));
        Assert.StartsWith(path, e.Message);
        return e.Message;
    }

    [Fact]
    public void The_scale_is_alpha_over_r_or_over_sqrt_r_with_rslora_and_alpha_defaults_to_8()
    {
        var plain = Load("""{"peft_type": "LORA", "r": 4, "lora_alpha": 32, "target_modules": ["q", "v"], "task_type": "SEQ_2_SEQ_LM", "base_model_name_or_path": "t5"}""");
        Assert.Equal((4, 32.0, false, 8.0), (plain.R, plain.LoraAlpha, plain.UseRslora, plain.Scale));
        Assert.Equal(["q", "v"], plain.TargetModules);
        Assert.Equal(("SEQ_2_SEQ_LM", "t5"), (plain.TaskType, plain.BaseModelNameOrPath));

        var rs = Load("""{"r": 16, "lora_alpha": 8, "use_rslora": true}""");
        Assert.Equal(2.0, rs.Scale); // 8 / sqrt(16), not 8 / 16
        Assert.True(rs.UseRslora);

        var defaults = Load("""{"r": 2}""");
        Assert.Equal((8.0, 4.0), (defaults.LoraAlpha, defaults.Scale)); // PEFT's lora_alpha default
        Assert.Empty(defaults.TargetModules);
        Assert.Null(defaults.TaskType);
        Assert.Null(defaults.BaseModelNameOrPath);

        // One module name as a string (PEFT accepts it, e.g. a regex); empty patterns and bias "none" are fine.
        var one = Load("""{"r": 1, "target_modules": "q", "rank_pattern": {}, "alpha_pattern": {}, "bias": "none", "fan_in_fan_out": false, "use_dora": false}""");
        Assert.Equal(["q"], one.TargetModules);
        Assert.Equal(1, one.R);
    }

    [Theory]
    [InlineData("""{"peft_type": "IA3", "r": 4}""", "peft_type is 'IA3', only LORA adapters can be composed")]
    [InlineData("""{"lora_alpha": 8}""", "no positive integer 'r'")]
    [InlineData("""{"r": 0}""", "'r'")]
    [InlineData("""{"r": 4, "lora_alpha": 0}""", "'lora_alpha'")]
    [InlineData("""{"r": 4, "rank_pattern": {"q": 8}}""", "'rank_pattern' (per-layer ranks or alphas) is not supported")]
    [InlineData("""{"r": 4, "alpha_pattern": {"q": 8}}""", "'alpha_pattern' (per-layer ranks or alphas) is not supported")]
    [InlineData("""{"r": 4, "fan_in_fan_out": true}""", "fan_in_fan_out adapters (Conv1D layers) are not supported")]
    [InlineData("""{"r": 4, "use_dora": true}""", "DoRA adapters are not supported")]
    [InlineData("""{"r": 4, "bias": "all"}""", "bias 'all' is not supported (only 'none')")]
    [InlineData("""{"r": 4, "target_modules": ["q", 3]}""", "'target_modules'[1]")]
    [InlineData("""{"r": 4, "target_modules": ["q", ""]}""", "'target_modules'[1]")]
    [InlineData("""{"r": 4, "target_modules": {"q": 1}}""", "'target_modules'")]
    [InlineData("""[1, 2]""", "adapter config is not a JSON object")]
    [InlineData("""{"r": 4""", "adapter config is not a JSON object")]
    [InlineData("""null""", "adapter config is empty")]
    public void Configs_that_would_compute_something_else_are_refused_naming_the_file_and_field(string json, string problem) =>
        Assert.Contains(problem, Refused(json));

    [Fact]
    public void The_target_list_error_says_what_the_entry_is()
    {
        Assert.Contains("not a module name", Refused("""{"r": 4, "target_modules": ["q", 3]}"""));
        Assert.Contains("not a list of module names", Refused("""{"r": 4, "target_modules": 7}"""));
    }

    private static string Module(Fixtures.TempDir dir, Dictionary<string, Tensor> tensors, int r = 2, string name = "m")
    {
        var folder = dir[name];
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, LoraModule.ConfigFile), $$"""{"peft_type": "LORA", "r": {{r}}, "lora_alpha": 4}""");
        SafeTensors.Save(Path.Combine(folder, LoraModule.SafetensorsFile), tensors);
        return folder;
    }

    private static string Key(string layer, char kind, string? adapter = null) =>
        $"base_model.model.{layer}.lora_{kind}{(adapter is null ? "" : "." + adapter)}.weight";

    [Fact]
    public void A_module_maps_each_layer_to_its_A_and_B_with_or_without_the_adapter_name_in_the_keys()
    {
        using var dir = new Fixtures.TempDir();
        var folder = Module(dir, new()
        {
            [Key(Q, 'A')] = ones(2, 8), [Key(Q, 'B')] = full(8, 2, 3.0f),
            [Key(V, 'A', "default")] = full(2, 8, 2.0f), [Key(V, 'B', "default")] = zeros(8, 2),
        }, name: "my-module");
        using var module = LoraModule.Load(Path.Combine(folder, "..", "my-module"));
        Assert.Equal("my-module", module.Name);
        Assert.Equal(Path.GetFullPath(folder), module.Directory);
        Assert.Equal(2, module.Rank);
        Assert.Equal([Q, V], module.Layers.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(1f, module.Layers[Q].A.mean().item<float>());
        Assert.Equal(3f, module.Layers[Q].B.mean().item<float>());
        Assert.Equal(2f, module.Layers[V].A.mean().item<float>());
        using var named = LoraModule.Load(folder, "given");
        Assert.Equal("given", named.Name);
    }

    [Fact]
    public void Keys_are_parsed_only_in_PEFTs_two_spellings()
    {
        Assert.Equal((Q, 'A'), LoraModule.ParseKey(Key(Q, 'A')));
        Assert.Equal((Q, 'B'), LoraModule.ParseKey(Key(Q, 'B', "task1")));
        Assert.Equal(("q", 'A'), LoraModule.ParseKey("base_model.model.q.lora_A.weight"));
        Assert.Null(LoraModule.ParseKey("base_model.model.lora_A.weight"));            // no layer
        Assert.Null(LoraModule.ParseKey($"base_model.model.{Q}.lora_A.a.b.weight"));     // the kind two parts before the end
        Assert.Null(LoraModule.ParseKey($"base_model.model.{Q}.lora_A.bias"));
        Assert.Null(LoraModule.ParseKey($"model.{Q}.lora_A.weight"));
        Assert.Null(LoraModule.ParseKey($"base_model.model.{Q}.lora_C.weight"));
    }

    [Theory]
    [InlineData("int", "is Int32; LoRA weights must be floating point")]
    [InlineData("nan", "holds")]
    [InlineData("twice", "has more than one lora_A (several adapter names in one file?)")]
    [InlineData("only-b", "holds no LoRA weights")]
    [InlineData("vector", "both must be matrices")]
    [InlineData("b-rank", "has rank 2")]
    [InlineData("a-only", "has lora_A but no lora_B")]
    [InlineData("b-only", "layer 'encoder.block.0.layer.0.SelfAttention.q' has lora_B but no lora_A")]
    public void Tensors_that_do_not_make_a_module_are_refused_naming_the_file_and_tensor(string kind, string problem)
    {
        using var dir = new Fixtures.TempDir();
        var tensors = kind switch
        {
            "int" => new Dictionary<string, Tensor> { [Key(Q, 'A')] = ones(2, 8, int32), [Key(Q, 'B')] = ones(8, 2) },
            "nan" => new() { [Key(Q, 'A')] = full(2, 8, float.NaN), [Key(Q, 'B')] = ones(8, 2) },
            "twice" => new() { [Key(Q, 'A')] = ones(2, 8), [Key(Q, 'A', "other")] = ones(2, 8), [Key(Q, 'B')] = ones(8, 2) },
            "only-b" => new() { [Key(Q, 'B')] = ones(8, 2) },
            "vector" => new() { [Key(Q, 'A')] = ones(2, 8, 1), [Key(Q, 'B')] = ones(8, 2) },
            "b-rank" => new() { [Key(Q, 'A')] = ones(2, 8), [Key(Q, 'B')] = ones(8, 3) },
            "b-only" => new() { [Key(Q, 'B')] = ones(8, 2), [Key(V, 'A')] = ones(2, 8), [Key(V, 'B')] = ones(8, 2) },
            _ => new() { [Key(Q, 'A')] = ones(2, 8), [Key(V, 'A')] = ones(2, 8), [Key(V, 'B')] = ones(8, 2) },
        };
        var folder = Module(dir, tensors);
        var e = Assert.Throws<LoraFormatException>(() => LoraModule.Load(folder));
        Assert.Contains(problem, e.Message);
        Assert.Contains(LoraModule.SafetensorsFile, e.Message);
    }

    [Fact]
    public void A_module_with_many_misfits_lists_the_first_five_and_counts_the_rest()
    {
        using var dir = new Fixtures.TempDir();
        var tensors = new Dictionary<string, Tensor>();
        for (var i = 0; i < 7; i++)
        {
            tensors[Key($"missing{i}", 'A')] = ones(2, 8);
            tensors[Key($"missing{i}", 'B')] = ones(8, 2);
        }
        using var module = LoraModule.Load(Module(dir, tensors, name: "misfit"));
        using var model = nn.Sequential(("other", nn.Linear(8, 8)));
        var e = Assert.Throws<LoraFormatException>(() => module.ValidateAgainst(model));
        Assert.Contains("LoRA module 'misfit' does not fit the base model", e.Message);
        Assert.Contains("target 'missing4' does not exist", e.Message);
        Assert.DoesNotContain("missing5", e.Message);
        Assert.EndsWith("(and 2 more)", e.Message);

        using var five = LoraModule.Load(Module(dir, tensors.Where(kv => !kv.Key.Contains("missing5") && !kv.Key.Contains("missing6"))
            .ToDictionary(kv => kv.Key, kv => kv.Value), name: "five"));
        var e5 = Assert.Throws<LoraFormatException>(() => five.ValidateAgainst(model));
        Assert.EndsWith("target 'missing3' does not exist in the base model; target 'missing4' does not exist in the base model", e5.Message);
    }

    [Fact]
    public void A_module_fits_a_model_whose_linear_has_its_shapes_and_not_a_transposed_one()
    {
        using var dir = new Fixtures.TempDir();
        using var module = LoraModule.Load(Module(dir, new() { [Key("proj", 'A')] = ones(2, 8), [Key("proj", 'B')] = ones(6, 2) }));
        using var fits = nn.Sequential(("proj", nn.Linear(8, 6)));
        module.ValidateAgainst(fits);
        using var transposed = nn.Sequential(("proj", nn.Linear(6, 8)));
        var e = Assert.Throws<LoraFormatException>(() => module.ValidateAgainst(transposed));
        Assert.Contains("'proj' has A [2, 8] and B [6, 2] but the base layer is 6 -> 8", e.Message);
        using var wider = nn.Sequential(("proj", nn.Linear(8, 7)));
        Assert.Throws<LoraFormatException>(() => module.ValidateAgainst(wider));
        // A module named like a non-Linear layer does not fit either.
        using var notLinear = nn.Sequential(("proj", nn.ReLU()));
        Assert.Contains("target 'proj' does not exist", Assert.Throws<LoraFormatException>(() => module.ValidateAgainst(notLinear)).Message);
    }

    [Fact]
    public void The_legacy_bin_file_is_read_when_there_is_no_safetensors_and_its_errors_name_it()
    {
        using var dir = new Fixtures.TempDir();
        var folder = Module(dir, new() { [Key("proj", 'A')] = ones(2, 8), [Key("proj", 'B')] = full(6, 2, 5.0f) });
        var bin = Path.Combine(folder, LoraModule.BinFile);
        File.Move(Path.Combine(folder, LoraModule.SafetensorsFile), bin);
        // The reader goes by content, so these weights load from the .bin name.
        using (var module = LoraModule.Load(folder)) Assert.Equal(5f, module.Layers["proj"].B.mean().item<float>());
        File.WriteAllText(bin, "not a tensor file");
        var e = Assert.Throws<LoraFormatException>(() => LoraModule.Load(folder));
        Assert.Contains(LoraModule.BinFile, e.Message);
    }
}
