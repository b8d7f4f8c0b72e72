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
        using var dir = new BenchWorld.TempFolder();
        using var model = BenchWorld.RandomT5(dir.Path);
        var targets = BenchWorld.AttentionQv(model);
        var modules = Enumerable.Range(0, 20).Select(i => BenchWorld.RandomModule(dir.Path, i, targets)).ToList();
        using var composed = new ComposedModel(model, modules);
        using var linear = new ComposedModel(model, modules, MergeMode.Linear);

        var rng = new Random(7);
        var examples = BenchWorld.RandomExamples(rng);
        var weights = Enumerable.Range(0, 20).Select(_ => rng.NextDouble() * 3 - 1.5).ToArray();

        double Base()
        {
            composed.Clear();
            linear.Clear();
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
        // The linear merge: rank Σ r_i = 320 per layer, still no d×d matrix.
        double Linear()
        {
            var sw = Stopwatch.StartNew();
            linear.SetWeights(weights);
            Seq2Seq.ExampleLosses(model, examples);
            var ms = sw.Elapsed.TotalMilliseconds;
            linear.Clear();
            return ms;
        }
        for (var i = 0; i < 3; i++) { Base(); Composed(); Linear(); } // warm-up
        var baseTimes = new List<double>();
        var composedTimes = new List<double>();
        var linearTimes = new List<double>();
        for (var i = 0; i < rounds; i++)
        {
            // Interleaved so that a noisy neighbour slows every side alike.
            baseTimes.Add(Base());
            composedTimes.Add(Composed());
            composed.Clear();
            linearTimes.Add(Linear());
        }
        var setTimes = new List<double>();
        for (var i = 0; i < rounds; i++)
        {
            var sw = Stopwatch.StartNew();
            composed.SetWeights(weights);
            setTimes.Add(sw.Elapsed.TotalMilliseconds);
        }
        composed.Clear();
        Console.WriteLine($"lora-overhead: switching weights alone (K=20, every q and v) {Median(setTimes):F2} ms");
        var (b, c, l) = (Median(baseTimes), Median(composedTimes), Median(linearTimes));
        Console.WriteLine($"lora-overhead: base evaluation {b:F1} ms, K=20 r=16 composed evaluation {c:F1} ms, linear merge {l:F1} ms (medians of {rounds})");
        Console.WriteLine($"lora-overhead ratio (composed / base): {c / b:F3}  (target <= 1.10)");
        Console.WriteLine($"linear-overhead ratio (linear merge, rank 320 / base): {l / b:F3}");
        foreach (var m in modules) m.Dispose();
    }

    internal static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s[s.Count / 2];
    }
}
