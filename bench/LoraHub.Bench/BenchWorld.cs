using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraHub.Bench;

/// <summary>
/// The benchmark geometries, random weights written as real HF folders: a T5 (d_model 512, 8 + 8 layers, 8 heads,
/// gated-gelu d_ff 1024, vocab 32128) and a Llama of similar size (hidden 512, 16 layers, 8 heads over 2 key/value
/// heads, SiLU MLP 1376, vocab 32000, about 77 M parameters against the T5's 83 M); rank-16 modules on q and v.
/// Smaller T5s can be asked for (durable-overhead runs whole compositions many times).
/// </summary>
internal static class BenchWorld
{
    /// <summary>A T5 config (d_kv 64, gated-gelu, vocab 32128 for the real tokenizer, untied head); the defaults are the lora-overhead geometry.</summary>
    public static JsonObject T5Config(int dModel = 512, int layers = 8, int heads = 8, int dFf = 1024) => new()
    {
        ["model_type"] = "t5", ["vocab_size"] = 32128, ["d_model"] = dModel, ["d_kv"] = 64, ["d_ff"] = dFf,
        ["num_layers"] = layers, ["num_decoder_layers"] = layers, ["num_heads"] = heads, ["feed_forward_proj"] = "gated-gelu",
        ["tie_word_embeddings"] = false,
    };

    /// <summary>A Llama config; the defaults are the lora-overhead geometry.</summary>
    public static JsonObject LlamaConfig(int hidden = 512, int layers = 16, int heads = 8, int kvHeads = 2, int intermediate = 1376, int vocab = 32000) => new()
    {
        ["model_type"] = "llama", ["vocab_size"] = vocab, ["hidden_size"] = hidden, ["intermediate_size"] = intermediate,
        ["num_hidden_layers"] = layers, ["num_attention_heads"] = heads, ["num_key_value_heads"] = kvHeads,
        ["hidden_act"] = "silu", ["rms_norm_eps"] = 1e-6, ["max_position_embeddings"] = 2048, ["tie_word_embeddings"] = false,
        ["bos_token_id"] = 1, ["eos_token_id"] = 2,
    };

    public static ISeq2SeqModel RandomT5(string dir, JsonObject? config = null)
    {
        config ??= T5Config();
        manual_seed(1);
        using (var random = new T5ForConditionalGeneration(Core.Models.T5Config.FromJson(config, "bench")))
            Save(dir, config, random);
        // The real T5 tokenizer, for benches that start from text.
        var spiece = Path.Combine(AppContext.BaseDirectory, "spiece.model");
        if (File.Exists(spiece)) File.Copy(spiece, Path.Combine(dir, "spiece.model"), overwrite: true);
        return ModelLoader.LoadSeq2Seq(dir);
    }

    /// <summary>Writes a random Llama folder with its weights stored as storeAs.</summary>
    public static void SaveRandomLlama(string dir, JsonObject config, ScalarType storeAs = ScalarType.Float32)
    {
        manual_seed(1);
        using var random = new LlamaForCausalLM(Core.Models.LlamaConfig.FromJson(config, "bench"));
        Save(dir, config, random, storeAs);
    }

    /// <summary>config.json and model.safetensors (floating tensors converted to storeAs one at a time).</summary>
    private static void Save(string dir, JsonObject config, nn.Module model, ScalarType storeAs = ScalarType.Float32)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        using var scope = NewDisposeScope();
        SafeTensors.Save(Path.Combine(dir, "model.safetensors"), model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to(storeAs)));
    }

    /// <summary>The q and v projections of every attention block (T5: SelfAttention.q / EncDecAttention.v; Llama: self_attn.q_proj).</summary>
    public static List<string> AttentionQv(IAdaptableModel model) => model.Module.named_modules().Select(m => m.name)
        .Where(n => n.EndsWith("Attention.q", StringComparison.Ordinal) || n.EndsWith("Attention.v", StringComparison.Ordinal)
            || n.EndsWith("self_attn.q_proj", StringComparison.Ordinal) || n.EndsWith("self_attn.v_proj", StringComparison.Ordinal)).ToList();

    /// <summary>A rank-16, alpha-32 module with random A and B on every target, shaped by the model's layer there.</summary>
    public static LoraModule RandomModule(string root, int index, IAdaptableModel model, IReadOnlyList<string> targets)
    {
        var path = Path.Combine(root, "modules", $"m{index:D2}");
        var linears = model.Module.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => ((Linear)m.module).weight!.shape);
        var layers = targets.ToDictionary(t => t, t => (randn(16, linears[t][1]) * 0.02, randn(linears[t][0], 16) * 0.02));
        using (var adapter = new MergedAdapter(16, 32, false, layers)) adapter.Save(path, "bench");
        return LoraModule.Load(path);
    }

    /// <summary>Five examples of 100 input tokens (+ eos) and 10 label tokens (+ eos), ids in T5's vocabulary.</summary>
    public static List<TokenizedExample> RandomExamples(Random rng) => Enumerable.Range(0, 5).Select(_ => new TokenizedExample(
        Enumerable.Range(0, 100).Select(_ => rng.Next(3, 32000)).Append(1).ToArray(),
        Enumerable.Range(0, 10).Select(_ => rng.Next(3, 32000)).Append(1).ToArray())).ToList();

    /// <summary>The same sizes for a decoder-only model: bos + 100 prompt tokens, then 10 completion tokens + eos.</summary>
    public static List<CausalExample> RandomCausalExamples(Random rng) => Enumerable.Range(0, 5).Select(_ => CausalExample.Join(1,
        Enumerable.Range(0, 100).Select(_ => rng.Next(3, 32000)).ToArray(),
        Enumerable.Range(0, 10).Select(_ => rng.Next(3, 32000)).ToArray(), 2)).ToList();

    /// <summary>Bytes held by a model's parameters.</summary>
    public static long ParameterBytes(nn.Module model) => model.parameters().Sum(p => p.numel() * p.element_size());

    /// <summary>
    /// Wall time and the process's CPU time of one call, in milliseconds: on a busy machine the CPU time counts only the
    /// work done, not the waiting.
    /// </summary>
    internal static (double Wall, double Cpu) Time(Action action)
    {
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        action();
        var wall = sw.Elapsed.TotalMilliseconds;
        process.Refresh();
        return (wall, (process.TotalProcessorTime - cpu).TotalMilliseconds);
    }

    internal static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s[s.Count / 2];
    }

    internal sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("lorahub-bench-").FullName;
        public void Dispose() => Directory.Delete(Path, true);
    }
}
