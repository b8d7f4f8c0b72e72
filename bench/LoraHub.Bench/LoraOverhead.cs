using System.Diagnostics;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using TorchSharp;

namespace LoraHub.Bench;

/// <summary>
/// One objective evaluation with K = 20 composed rank-16 modules (set the weights, then the few-shot loss)
/// divided by the same loss on the base model alone; 5 examples of about 100 input tokens and 10 label tokens. Also the same with every layer on the LoRA side path and with every layer folded (W + BA), and the largest difference in loss the folding makes.
/// Modules target q and v of every attention block, like the reference hub. Target: ratio at most 1.05.
/// lora-overhead uses the T5 geometry (48 targets), lora-overhead-llama the Llama one of similar size (32 targets:
/// q_proj 512→512 and v_proj 512→128 in 16 layers); see <see cref="BenchWorld"/>.
/// </summary>
public static class LoraOverhead
{
    public static void RunT5(int rounds)
    {
        using var dir = new BenchWorld.TempFolder();
        using var model = BenchWorld.RandomT5(dir.Path);
        var examples = BenchWorld.RandomExamples(new Random(7));
        Run("lora-overhead", "T5 d_model 512, 8 + 8 layers", model, dir.Path, () => Seq2Seq.ExampleLosses(model, examples), rounds);
    }

    public static void RunLlama(int rounds)
    {
        using var dir = new BenchWorld.TempFolder();
        BenchWorld.SaveRandomLlama(dir.Path, BenchWorld.LlamaConfig());
        using var model = ModelLoader.LoadCausal(dir.Path);
        var examples = BenchWorld.RandomCausalExamples(new Random(7));
        Run("lora-overhead-llama", "Llama hidden 512, 16 layers, 8 heads / 2 kv heads, MLP 1376", model, dir.Path, () => CausalLm.ExampleLosses(model, examples), rounds);
    }

    private static void Run(string name, string geometry, IAdaptableModel model, string root, Func<double[]> lossesOf, int rounds)
    {
        Console.WriteLine($"{name}: {geometry}, {model.Module.parameters().Sum(p => p.numel()) / 1e6:F1} M parameters; torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset)"}");
        var targets = BenchWorld.AttentionQv(model);
        var modules = Enumerable.Range(0, 20).Select(i => BenchWorld.RandomModule(root, i, model, targets)).ToList();
        using var composed = new ComposedModel(model, modules);
        using var linear = new ComposedModel(model, modules, MergeMode.Linear);
        var rng = new Random(7);
        var weights = Enumerable.Range(0, 20).Select(_ => rng.NextDouble() * 3 - 1.5).ToArray();

        void evaluate() => lossesOf();
        static (double Wall, double Cpu) Time(Action action) => BenchWorld.Time(action);
        (double, double) Base()
        {
            composed.Clear();
            linear.Clear();
            return Time(evaluate);
        }
        (double, double) Composed() => Time(() => { composed.SetWeights(weights); evaluate(); });
        // The same with LoraLinear's folding forced off (every layer on the side path) and forced on (every layer folded).
        (double, double) WithFold(double factor)
        {
            var saved = LoraLinear.FoldFactor;
            LoraLinear.FoldFactor = factor;
            try { return Composed(); }
            finally { LoraLinear.FoldFactor = saved; composed.Clear(); }
        }
        // The linear merge: rank Σ r_i = 320 per layer, still no d×d matrix.
        (double, double) Linear()
        {
            var times = Time(() => { linear.SetWeights(weights); evaluate(); });
            linear.Clear();
            return times;
        }
        // Folding must not change the objective beyond float rounding.
        composed.SetWeights(weights);
        var sideLosses = Losses(double.PositiveInfinity);
        var foldLosses = Losses(0);
        double[] Losses(double factor)
        {
            var saved = LoraLinear.FoldFactor;
            LoraLinear.FoldFactor = factor;
            try { return lossesOf(); }
            finally { LoraLinear.FoldFactor = saved; }
        }
        composed.Clear();
        Console.WriteLine($"{name}: folded vs side-path losses differ by at most {sideLosses.Zip(foldLosses, (a, b) => Math.Abs(a - b)).Max():E2}");
        for (var i = 0; i < 3; i++) { Base(); Composed(); WithFold(double.PositiveInfinity); WithFold(0); Linear(); } // warm-up
        var sideTimes = new List<(double Wall, double Cpu)>();
        var foldTimes = new List<(double Wall, double Cpu)>();
        var baseTimes = new List<(double Wall, double Cpu)>();
        var composedTimes = new List<(double Wall, double Cpu)>();
        var linearTimes = new List<(double Wall, double Cpu)>();
        for (var i = 0; i < rounds; i++)
        {
            // Interleaved so that a noisy neighbour slows every side alike.
            baseTimes.Add(Base());
            composedTimes.Add(Composed());
            composed.Clear();
            sideTimes.Add(WithFold(double.PositiveInfinity));
            foldTimes.Add(WithFold(0));
            linearTimes.Add(Linear());
        }
        var setTimes = new List<double>();
        for (var i = 0; i < rounds; i++) setTimes.Add(Time(() => composed.SetWeights(weights)).Wall);
        composed.Clear();
        Console.WriteLine($"{name}: switching weights alone (K=20, {targets.Count} targets: every q and v) {BenchWorld.Median(setTimes):F2} ms");
        double Wall(List<(double Wall, double Cpu)> xs) => BenchWorld.Median(xs.Select(x => x.Wall).ToList());
        double Cpu(List<(double Wall, double Cpu)> xs) => BenchWorld.Median(xs.Select(x => x.Cpu).ToList());
        var (b, c, l) = (Wall(baseTimes), Wall(composedTimes), Wall(linearTimes));
        Console.WriteLine($"{name}: base evaluation {b:F1} ms, K=20 r=16 composed evaluation {c:F1} ms, linear merge {l:F1} ms (medians of {rounds}; CPU time {Cpu(baseTimes):F0}, {Cpu(composedTimes):F0}, {Cpu(linearTimes):F0} ms)");
        Console.WriteLine($"{name} ratio (composed / base): {c / b:F3} wall, {Cpu(composedTimes) / Cpu(baseTimes):F3} CPU time  (target <= 1.05; LoraLinear.FoldFactor {LoraLinear.FoldFactor})");
        // Each round's composed time over the base time measured just before it, then the median: a neighbour's
        // burst slows one pair, not one side of the comparison.
        double Paired(Func<(double Wall, double Cpu), double> f) => BenchWorld.Median(baseTimes.Zip(composedTimes, (x, y) => f(y) / f(x)).ToList());
        Console.WriteLine($"{name} paired ratio (median over rounds of composed / base): {Paired(t => t.Wall):F3} wall, {Paired(t => t.Cpu):F3} CPU time");
        Console.WriteLine($"{name}   side path everywhere / base: {Wall(sideTimes) / b:F3} wall, {Cpu(sideTimes) / Cpu(baseTimes):F3} CPU time; folded everywhere / base: {Wall(foldTimes) / b:F3} wall, {Cpu(foldTimes) / Cpu(baseTimes):F3} CPU time");
        Console.WriteLine($"{name} linear ratio (linear merge, rank 320 / base): {l / b:F3} wall, {Cpu(linearTimes) / Cpu(baseTimes):F3} CPU time");
        foreach (var m in modules) m.Dispose();
    }
}
