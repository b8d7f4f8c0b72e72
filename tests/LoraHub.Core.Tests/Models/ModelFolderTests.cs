using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Models;

/// <summary>
/// ModelLoader on whole model folders (copies of tests/fixtures/t5/tiny-t5 and llama/tiny-llama, edited): what a folder
/// without a usable config.json is told, which loader each model_type needs, which tokenizer a folder gives, and the
/// messages for checkpoints that do not fit their config. ParameterFactory's layers are checked as built.
/// </summary>
public sealed class ModelFolderTests
{
    private static string TinyLlama => Path.Combine(Fixtures.Root, "llama", "tiny-llama");

    private static string Copy(string source, Fixtures.TempDir dir, Action<JsonObject>? config = null)
    {
        var path = dir["model"];
        Directory.CreateDirectory(path);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(path, Path.GetFileName(file)));
        if (config is not null)
        {
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(path, "config.json")))!.AsObject();
            config(json);
            File.WriteAllText(Path.Combine(path, "config.json"), json.ToJsonString());
        }
        return path;
    }

    private static string Refused(Action load) => Assert.Throws<ModelFormatException>(load).Message;

    /// <summary>Rewrites a model folder's model.safetensors after <paramref name="edit"/> (which may remove, rename or change tensors).</summary>
    private static void EditCheckpoint(string path, Action<Dictionary<string, Tensor>> edit)
    {
        var tensors = SafeTensors.Load(Path.Combine(path, "model.safetensors"));
        var loaded = tensors.Values.ToList();
        try
        {
            edit(tensors);
            SafeTensors.Save(Path.Combine(path, "model.safetensors"), tensors);
        }
        finally
        {
            foreach (var t in loaded) t.Dispose();
        }
    }

    [Fact]
    public void A_folder_without_a_usable_config_is_named()
    {
        using var dir = new Fixtures.TempDir();
        var missing = dir["nowhere"];
        Assert.Equal($"{missing}: model folder does not exist", Refused(() => ModelLoader.ReadConfig(missing)));
        Assert.Equal($"{dir.Path}: no config.json in the model folder", Refused(() => ModelLoader.ReadConfig(dir.Path)));

        var config = dir["config.json"];
        File.WriteAllText(config, "null");
        Assert.Equal($"{config}: config is empty", Refused(() => ModelLoader.ReadConfig(dir.Path)));
        File.WriteAllText(config, "[1]");
        Assert.StartsWith($"{config}: not a JSON object (", Refused(() => ModelLoader.ReadConfig(dir.Path)));
        File.WriteAllText(config, "{\"model_type\": ");
        Assert.StartsWith($"{config}: not a JSON object (", Refused(() => ModelLoader.ReadConfig(dir.Path)));
        File.WriteAllText(config, """{"model_type": "t5", "model_type": "llama"}""");
        Assert.StartsWith($"{config}: not a JSON object (", Refused(() => ModelLoader.ReadConfig(dir.Path)));
        File.WriteAllText(config, """{"model_type": "t5"}""");
        Assert.Equal("t5", ModelLoader.ReadConfig(dir.Path)["model_type"]!.GetValue<string>());
    }

    [Fact]
    public void Each_loader_names_the_other_for_a_model_of_the_other_family()
    {
        using var t5 = new Fixtures.TempDir();
        using var llama = new Fixtures.TempDir();
        var t5Path = Copy(Fixtures.TinyT5, t5);
        var llamaPath = Copy(TinyLlama, llama);

        Assert.Equal(
            $"{Path.Combine(llamaPath, "config.json")}: model_type 'llama' is not supported; supported: t5, llama, mistral, qwen2 ('llama' is a decoder-only model: use Load or LoadCausal)",
            Refused(() => ModelLoader.LoadSeq2Seq(llamaPath)));
        Assert.Equal(
            $"{Path.Combine(t5Path, "config.json")}: model_type 't5' is not supported; supported: t5, llama, mistral, qwen2 ('t5' is an encoder-decoder model: use Load or LoadSeq2Seq)",
            Refused(() => ModelLoader.LoadCausal(t5Path)));

        Assert.False(ModelLoader.IsCausal(t5Path));
        Assert.True(ModelLoader.IsCausal(llamaPath));
        Assert.Equal(FewShotFormat.EncoderDecoder, ModelLoader.FormatOf(t5Path));
        Assert.Equal(FewShotFormat.DecoderOnly, ModelLoader.FormatOf(llamaPath));
        Assert.Equal(["t5", "llama", "mistral", "qwen2"], ModelLoader.AllModelTypes);
    }

    [Theory]
    [InlineData(null, "(none)")]
    [InlineData("bert", "bert")]
    public void A_missing_or_unknown_model_type_gets_no_hint(string? modelType, string shown)
    {
        using var dir = new Fixtures.TempDir();
        var path = Copy(TinyLlama, dir, c => c["model_type"] = modelType);
        var expected = $"{Path.Combine(path, "config.json")}: model_type '{shown}' is not supported; supported: t5, llama, mistral, qwen2";
        Assert.Equal(expected, Refused(() => ModelLoader.LoadCausal(path)));
        Assert.Equal(expected, Refused(() => ModelLoader.LoadSeq2Seq(path)));
        Assert.Equal(expected, Refused(() => ModelLoader.Load(path)));
        Assert.False(ModelLoader.IsCausal(path));
    }

    [Fact]
    public void The_tokenizer_of_a_folder_is_found_in_order()
    {
        using var dir = new Fixtures.TempDir();
        var none = $"{dir.Path}: no tokenizer found (looked for spiece.model, lorahub-vocab.json, tokenizer.model and tokenizer.json)";
        Assert.Equal(none, Refused(() => ModelLoader.LoadTokenizer(dir.Path)));
        Assert.Equal($"{dir.Path}: no tokenizer found (looked for tokenizer.model and tokenizer.json)", Refused(() => ModelLoader.LoadCausalTokenizer(dir.Path)));

        File.Copy(Path.Combine(TinyLlama, "tokenizer.model"), dir["tokenizer.model"]);
        Assert.IsType<LlamaTokenizer>(ModelLoader.LoadTokenizer(dir.Path));

        new CharTokenizer(["a", "b"]).Save(dir.Path);
        Assert.IsType<CharTokenizer>(ModelLoader.LoadTokenizer(dir.Path));
        Assert.IsType<LlamaTokenizer>(ModelLoader.LoadCausalTokenizer(dir.Path));

        File.Copy(Path.Combine(Fixtures.T5, "spiece.model"), dir["spiece.model"]);
        Assert.IsType<T5Tokenizer>(ModelLoader.LoadTokenizer(dir.Path));
    }

    [Fact]
    public void A_checkpoint_the_config_does_not_describe_is_refused_before_anything_is_built()
    {
        using var dir = new Fixtures.TempDir();
        var path = Copy(TinyLlama, dir, c => c["num_hidden_layers"] = 3);
        Assert.Equal(
            $"{Path.Combine(path, "config.json")}: the checkpoint is missing 'model.layers.2.self_attn.q_proj.weight' (num_attention_heads * head_dim x hidden_size, in the last of num_hidden_layers); config.json does not describe this checkpoint",
            Refused(() => ModelLoader.LoadCausal(path)));

        using var other = new Fixtures.TempDir();
        var wide = Copy(TinyLlama, other, c => c["intermediate_size"] = 96);
        Assert.Equal(
            $"{Path.Combine(wide, "config.json")}: config.json implies 'model.layers.0.mlp.up_proj.weight' of shape [96, 64] (intermediate_size x hidden_size, in layer 0) but the checkpoint has [128, 64]",
            Refused(() => ModelLoader.LoadCausal(wide)));
    }

    [Theory]
    [InlineData("num_layers", 3, "the checkpoint is missing 'encoder.block.2.layer.0.SelfAttention.q.weight' (num_heads * d_kv x d_model, in the last of num_layers)")]
    [InlineData("num_decoder_layers", 3, "the checkpoint is missing 'decoder.block.2.layer.0.SelfAttention.q.weight' (num_heads * d_kv x d_model, in the last of num_decoder_layers)")]
    [InlineData("d_ff", 96, "config.json implies 'encoder.block.1.layer.1.DenseReluDense.wi_0.weight' of shape [96, 64] (d_ff x d_model, in the last of num_layers) but the checkpoint has [128, 64]")]
    [InlineData("d_kv", 8, "config.json implies 'encoder.block.0.layer.0.SelfAttention.q.weight' of shape [32, 64] (num_heads * d_kv x d_model, in block 0) but the checkpoint has [64, 64]")]
    [InlineData("relative_attention_num_buckets", 16, "config.json implies 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight' of shape [16, 4] (relative_attention_num_buckets x num_heads) but the checkpoint has [32, 4]")]
    [InlineData("vocab_size", 32000, "config.json implies 'shared.weight' of shape [32000, 64] (vocab_size x d_model) but the checkpoint has [32128, 64]")]
    public void A_t5_checkpoint_the_config_does_not_describe_is_refused_naming_the_tensor_and_the_sizes(string field, int value, string problem)
    {
        using var dir = new Fixtures.TempDir();
        var path = Copy(Path.Combine(Fixtures.T5, "tiny-t5"), dir, c => c[field] = value);
        var message = Refused(() => ModelLoader.LoadSeq2Seq(path));
        Assert.StartsWith($"{Path.Combine(path, "config.json")}: {problem}", message);
    }

    [Fact]
    public void A_t5_checkpoint_without_the_untied_head_or_the_last_decoder_projection_is_named()
    {
        foreach (var (tensor, because) in new[]
        {
            ("lm_head.weight", "vocab_size x d_model (tie_word_embeddings is false)"),
            ("decoder.block.1.layer.2.DenseReluDense.wo.weight", "d_model x d_ff, in the last of num_decoder_layers"),
            ("encoder.block.1.layer.1.DenseReluDense.wi_0.weight", "d_ff x d_model, in the last of num_layers"),
        })
        {
            using var dir = new Fixtures.TempDir();
            var path = Copy(Path.Combine(Fixtures.T5, "tiny-t5"), dir);
            EditCheckpoint(path, tensors => tensors.Remove(tensor));
            Assert.Equal(
                $"{Path.Combine(path, "config.json")}: the checkpoint is missing '{tensor}' ({because}); config.json does not describe this checkpoint",
                Refused(() => ModelLoader.LoadSeq2Seq(path)));
        }
    }

    [Theory]
    [InlineData("vocab_size", 32001, "config.json implies 'model.embed_tokens.weight' of shape [32001, 64] (vocab_size x hidden_size) but the checkpoint has [32000, 64]")]
    [InlineData("head_dim", 8, "config.json implies 'model.layers.0.self_attn.q_proj.weight' of shape [32, 64] (num_attention_heads * head_dim x hidden_size, in layer 0) but the checkpoint has [64, 64]")]
    [InlineData("num_key_value_heads", 4, "config.json implies 'model.layers.0.self_attn.k_proj.weight' of shape [64, 64] (num_key_value_heads * head_dim x hidden_size, in layer 0) but the checkpoint has [32, 64]")]
    [InlineData("num_key_value_heads", 1, "config.json implies 'model.layers.0.self_attn.k_proj.weight' of shape [16, 64] (num_key_value_heads * head_dim x hidden_size, in layer 0) but the checkpoint has [32, 64]")]
    public void A_decoder_checkpoint_the_config_does_not_describe_is_refused_naming_the_tensor_and_the_sizes(string field, int value, string problem)
    {
        using var dir = new Fixtures.TempDir();
        var path = Copy(TinyLlama, dir, c => c[field] = value);
        Assert.Equal($"{Path.Combine(path, "config.json")}: {problem}", Refused(() => ModelLoader.LoadCausal(path)));
    }

    [Fact]
    public void A_decoder_checkpoint_without_the_embedding_or_a_last_layer_projection_is_named()
    {
        foreach (var (tensor, because) in new[]
        {
            ("model.embed_tokens.weight", "vocab_size x hidden_size"),
            ("model.layers.1.self_attn.k_proj.weight", "num_key_value_heads * head_dim x hidden_size, in the last of num_hidden_layers"),
            ("model.layers.1.mlp.up_proj.weight", "intermediate_size x hidden_size, in the last of num_hidden_layers"),
            ("model.layers.0.self_attn.k_proj.weight", "num_key_value_heads * head_dim x hidden_size, in layer 0"),
        })
        {
            using var dir = new Fixtures.TempDir();
            var path = Copy(TinyLlama, dir);
            EditCheckpoint(path, tensors => tensors.Remove(tensor));
            Assert.Equal(
                $"{Path.Combine(path, "config.json")}: the checkpoint is missing '{tensor}' ({because}); config.json does not describe this checkpoint",
                Refused(() => ModelLoader.LoadCausal(path)));
        }
    }

    [Fact]
    public void A_layer_missing_in_the_middle_is_named_as_absent_beside_the_missing_tensors()
    {
        // Three layers in config.json, a checkpoint holding layers 0 and 2 (the preflight's first and last) and no
        // final norm: every missing tensor counts, only the numbered block with nothing in it is called absent.
        using var dir = new Fixtures.TempDir();
        var path = Copy(TinyLlama, dir, c => c["num_hidden_layers"] = 3);
        EditCheckpoint(path, tensors =>
        {
            foreach (var key in tensors.Keys.Where(k => k.StartsWith("model.layers.1.", StringComparison.Ordinal)).ToList())
            {
                tensors.Remove(key, out var moved);
                tensors["model.layers.2." + key["model.layers.1.".Length..]] = moved!;
            }
            tensors.Remove("model.norm.weight");
        });

        var message = Refused(() => ModelLoader.LoadCausal(path));
        Assert.StartsWith($"{path}: checkpoint is missing 10 tensor(s): model.layers.1.", message);
        Assert.EndsWith(", ... (layer(s) absent: model.layers.1)", message);
    }

    [Fact]
    public void A_checkpoint_without_a_head_the_config_asks_for_is_named()
    {
        using var dir = new Fixtures.TempDir();
        var path = Copy(TinyLlama, dir);
        EditCheckpoint(path, tensors => tensors.Remove("lm_head.weight"));
        Assert.Equal(
            $"{Path.Combine(path, "config.json")}: the checkpoint is missing 'lm_head.weight' (vocab_size x hidden_size (tie_word_embeddings is false)); config.json does not describe this checkpoint",
            Refused(() => ModelLoader.LoadCausal(path)));
    }

    [Fact]
    public void Missing_tensors_are_counted_and_the_first_five_named()
    {
        using var dir = new Fixtures.TempDir();
        var path = Copy(TinyLlama, dir);
        string[] gone = [];
        EditCheckpoint(path, tensors =>
        {
            gone = [.. tensors.Keys.Where(k => k.StartsWith("model.layers.1.", StringComparison.Ordinal) && !k.Contains("q_proj") && !k.Contains("k_proj") && !k.Contains("up_proj")).Order(StringComparer.Ordinal)];
            foreach (var k in gone) tensors.Remove(k);
        });
        var message = Refused(() => ModelLoader.LoadCausal(path));
        Assert.StartsWith($"{path}: checkpoint is missing {gone.Length} tensor(s): ", message);
        Assert.True(gone.Length > 5);
        Assert.EndsWith(", ...", message);
        Assert.Equal(5, message.Split(": ", 3)[2].Split(", ").Count(n => n.StartsWith("model.layers.1.", StringComparison.Ordinal)));
        Assert.DoesNotContain("absent", message);
    }

    [Fact]
    public void A_checkpoint_holding_non_finite_weights_names_the_file_and_tensor()
    {
        using var dir = new Fixtures.TempDir();
        var path = Copy(TinyLlama, dir);
        EditCheckpoint(path, tensors =>
        {
            using (no_grad()) tensors["model.norm.weight"][3].fill_(float.PositiveInfinity);
        });
        var message = Refused(() => ModelLoader.LoadCausal(path));
        Assert.StartsWith($"{Path.Combine(path, "model.safetensors")}: checkpoint tensor 'model.norm.weight' holds ", message);
        Assert.EndsWith("; a model with non-finite weights cannot be used", message);
    }

    [Fact]
    public void A_loaded_model_is_frozen_in_eval_mode_and_in_the_asked_type()
    {
        using var model = ModelLoader.LoadCausal(TinyLlama, ScalarType.BFloat16);
        var module = (nn.Module)model;
        Assert.All(module.parameters(), p => Assert.False(p.requires_grad));
        Assert.All(module.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        Assert.False(module.training);
    }

    [Fact]
    public void The_parameter_factory_builds_layers_in_its_type_and_leaves_only_linear_weights_uninitialised()
    {
        var f = new ParameterFactory(ScalarType.Float64, CPU, Uninitialised: true);
        using var linear = f.Linear(3, 5, hasBias: true);
        Assert.Equal([5L, 3], linear.weight!.shape);
        Assert.Equal([5L], linear.bias!.shape);
        Assert.Equal(ScalarType.Float64, linear.weight.dtype);
        using var noBias = f.Linear(3, 5, hasBias: false);
        Assert.Null(noBias.bias);

        using var embedding = f.Embedding(7, 4);
        Assert.Equal([7L, 4], embedding.weight!.shape);
        Assert.Equal(ScalarType.Float64, embedding.weight.dtype);
        Assert.True(embedding.weight.abs().sum().item<double>() > 0); // initialised
        using var ones = f.Ones(6);
        Assert.Equal(Enumerable.Repeat(1.0, 6), ones.data<double>().ToArray());

        using var initialised = ParameterFactory.Default.Linear(3, 5, hasBias: true);
        Assert.Equal(ScalarType.Float32, initialised.weight!.dtype);
        Assert.True(initialised.weight.abs().sum().item<float>() > 0);
        Assert.InRange(initialised.weight.abs().max().item<float>(), 0f, 1f / MathF.Sqrt(3) + 1e-6f); // PyTorch's kaiming-uniform bound
        Assert.False(ParameterFactory.Default.Uninitialised);
    }
}
