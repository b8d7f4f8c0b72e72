using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using static TorchSharp.torch;

namespace LoraHub.Bench;

/// <summary>
/// The benchmark geometry (a T5 runnable here): d_model 512, 8 + 8 layers, 8 heads, gated-gelu d_ff 1024,
/// vocab 32128, random weights written as a real HF folder; rank-16 modules on q and v of every attention block.
/// A smaller geometry can be asked for (durable-overhead runs whole compositions many times).
/// </summary>
internal static class BenchWorld
{
    /// <summary>T5 sizes (d_kv 64, gated-gelu, vocab 32128 for the real tokenizer, untied head).</summary>
    public sealed record T5Geometry(int DModel, int Layers, int Heads, int DFf)
    {
        public static readonly T5Geometry Default = new(512, 8, 8, 1024);
    }

    public static ISeq2SeqModel RandomT5(string dir, T5Geometry? geometry = null)
    {
        var g = geometry ?? T5Geometry.Default;
        var config = new JsonObject
        {
            ["model_type"] = "t5", ["vocab_size"] = 32128, ["d_model"] = g.DModel, ["d_kv"] = 64, ["d_ff"] = g.DFf,
            ["num_layers"] = g.Layers, ["num_decoder_layers"] = g.Layers, ["num_heads"] = g.Heads, ["feed_forward_proj"] = "gated-gelu",
            ["tie_word_embeddings"] = false,
        };
        Directory.CreateDirectory(dir);
        manual_seed(1);
        using (var random = new T5ForConditionalGeneration(T5Config.FromJson(config, "bench")))
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            SafeTensors.Save(Path.Combine(dir, "model.safetensors"), random.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
        }
        // The real T5 tokenizer, for benches that start from text.
        var spiece = Path.Combine(AppContext.BaseDirectory, "spiece.model");
        if (File.Exists(spiece)) File.Copy(spiece, Path.Combine(dir, "spiece.model"), overwrite: true);
        return ModelLoader.LoadSeq2Seq(dir);
    }

    public static List<string> AttentionQv(ISeq2SeqModel model) => model.Module.named_modules().Select(m => m.name)
        .Where(n => n.EndsWith("Attention.q", StringComparison.Ordinal) || n.EndsWith("Attention.v", StringComparison.Ordinal)).ToList();

    /// <summary>A rank-16 module at root/modules/mNN (the layout of a local hub's module pool).</summary>
    public static LoraModule RandomModule(string root, int index, IReadOnlyList<string> targets, int dModel = 512)
    {
        var path = Path.Combine(root, "modules", $"m{index:D2}");
        var layers = targets.ToDictionary(t => t, t => (randn(16, dModel) * 0.02, randn(dModel, 16) * 0.02));
        using (var adapter = new MergedAdapter(16, 32, false, layers)) adapter.Save(path, "bench-t5");
        return LoraModule.Load(path);
    }

    public static List<TokenizedExample> RandomExamples(Random rng) => Enumerable.Range(0, 5).Select(_ => new TokenizedExample(
        Enumerable.Range(0, 100).Select(_ => rng.Next(3, 32000)).Append(1).ToArray(),
        Enumerable.Range(0, 10).Select(_ => rng.Next(3, 32000)).Append(1).ToArray())).ToList();

    internal sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("lorahub-bench-").FullName;
        public void Dispose() => Directory.Delete(Path, true);
    }
}
