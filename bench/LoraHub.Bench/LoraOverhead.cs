using System.Diagnostics;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Bench;

/// <summary>
/// One objective evaluation with K = 20 composed rank-16 modules (set the weights, then the few-shot loss)
/// divided by the same loss on the base model alone. T5 geometry runnable here: d_model 512, 8 + 8 layers,
/// 8 heads, gated-gelu d_ff 1024, vocab 32128; 5 examples of about 100 input tokens and 10 label tokens.
/// Modules target q and v of every attention block, like the reference hub. Target: ratio at most 1.10.
/// </summary>
public static class LoraOverhead
{
    public static void Run(int rounds)
    {
        Console.WriteLine($"torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset)"}");
        using var dir = new TempFolder();
        var config = new JsonObject
        {
            ["model_type"] = "t5", ["vocab_size"] = 32128, ["d_model"] = 512, ["d_kv"] = 64, ["d_ff"] = 1024,
            ["num_layers"] = 8, ["num_decoder_layers"] = 8, ["num_heads"] = 8, ["feed_forward_proj"] = "gated-gelu",
            ["tie_word_embeddings"] = false,
        };
        torch.manual_seed(1);
        var t5Config = T5Config.FromJson(config, "bench");
        using (var random = new T5ForConditionalGeneration(t5Config))
        {
            var state = random.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
            File.WriteAllText(Path.Combine(dir.Path, "config.json"), config.ToJsonString());
            SafeTensors.Save(Path.Combine(dir.Path, "model.safetensors"), state);
        }
        using var model = ModelLoader.Load(dir.Path);
        var targets = model.Module.named_modules().Select(m => m.name)
            .Where(n => n.EndsWith("Attention.q", StringComparison.Ordinal) || n.EndsWith("Attention.v", StringComparison.Ordinal)).ToList();
        var modules = Enumerable.Range(0, 20).Select(i => MakeModule(dir.Path, i, targets)).ToList();
        using var composed = new ComposedModel(model, modules);

        var rng = new Random(7);
        var examples = Enumerable.Range(0, 5).Select(_ => new TokenizedExample(
            Enumerable.Range(0, 100).Select(_ => rng.Next(3, 32000)).Append(1).ToArray(),
            Enumerable.Range(0, 10).Select(_ => rng.Next(3, 32000)).Append(1).ToArray())).ToList();
        var weights = Enumerable.Range(0, 20).Select(_ => rng.NextDouble() * 3 - 1.5).ToArray();

        double Base()
        {
            composed.Clear();
            var sw = Stopwatch.StartNew();
            Seq2Seq.ExampleLosses(model, examples);
            return sw.Elapsed.TotalMilliseconds;
        }
        double Composed()
        {
            var sw = Stopwatch.StartNew();
            composed.SetWeights(weights);
            Seq2Seq.ExampleLosses(model, examples);
            return sw.Elapsed.TotalMilliseconds;
        }
        for (var i = 0; i < 3; i++) { Base(); Composed(); } // warm-up
        var baseTimes = new List<double>();
        var composedTimes = new List<double>();
        for (var i = 0; i < rounds; i++)
        {
            // Interleaved so that a noisy neighbour slows both sides alike.
            baseTimes.Add(Base());
            composedTimes.Add(Composed());
        }
        var (b, c) = (Median(baseTimes), Median(composedTimes));
        Console.WriteLine($"lora-overhead: base evaluation {b:F1} ms, K=20 r=16 composed evaluation {c:F1} ms (medians of {rounds})");
        Console.WriteLine($"lora-overhead ratio (composed / base): {c / b:F3}  (target <= 1.10)");
        foreach (var m in modules) m.Dispose();
    }

    private static LoraModule MakeModule(string root, int index, IReadOnlyList<string> targets)
    {
        var path = Path.Combine(root, "modules", $"m{index}");
        var layers = targets.ToDictionary(t => t, t => (randn(16, 512) * 0.02, randn(512, 16) * 0.02));
        using (var adapter = new MergedAdapter(16, 32, false, layers)) adapter.Save(path, "bench-t5");
        return LoraModule.Load(path);
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s[s.Count / 2];
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("lorahub-bench-").FullName;
        public void Dispose() => Directory.Delete(Path, true);
    }
}
