using System.Diagnostics;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;

namespace LoraHub.Bench;

/// <summary>
/// (i) composition-overhead: a whole composition (select 20 modules, load them, 40 COBYLA evaluations, merge)
/// divided by 40 base-only objective evaluations; target at most 1.2.
/// (ii) batched-candidates: objective evaluations per second for lambda = 8 candidates evaluated in one
/// grouped forward pass versus one at a time.
/// </summary>
public static class CompositionOverhead
{
    public static void Run(int rounds)
    {
        using var dir = new BenchWorld.TempFolder();
        using var model = BenchWorld.RandomT5(dir.Path);
        var targets = BenchWorld.AttentionQv(model);
        foreach (var i in Enumerable.Range(0, 20)) BenchWorld.RandomModule(dir.Path, i, model, targets).Dispose();
        var pool = ModuleRef.Scan(Path.Combine(dir.Path, "modules"));
        var tokenizer = ModelLoader.LoadTokenizer(dir.Path);
        var rng = new Random(11);
        string Words(int n) => string.Join(' ', Enumerable.Range(0, n).Select(_ => $"w{rng.Next(1000)}"));
        // About 100 input tokens and 10 label tokens each with the real T5 tokenizer.
        var examples = Enumerable.Range(0, 5).Select(_ => new Example(Words(34), Words(3))).ToList();
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, tokenizer, examples, out _);
        Console.WriteLine($"examples: {tokenized.Average(t => t.InputIds.Length):F0} input and {tokenized.Average(t => t.Labels.Length):F0} label tokens on average");

        double BaseEvaluation()
        {
            var sw = Stopwatch.StartNew();
            Seq2Seq.ExampleLosses(model, tokenized);
            return sw.Elapsed.TotalMilliseconds;
        }
        double Composition(bool batched)
        {
            var sw = Stopwatch.StartNew();
            using var result = new Composer(model, tokenizer).Compose(pool, examples,
                new CompositionSettings { Budget = 40, K = 20, BatchCandidates = batched }, "bench");
            return sw.Elapsed.TotalMilliseconds;
        }
        BaseEvaluation();
        Composition(true);
        var baseTimes = new List<double>();
        var compositionTimes = new List<double>();
        var serialTimes = new List<double>();
        var n = Math.Max(3, rounds / 5);
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < 5; j++) baseTimes.Add(BaseEvaluation());
            compositionTimes.Add(Composition(true));
            serialTimes.Add(Composition(false));
        }
        var baseMs = BenchWorld.Median(baseTimes);
        var batchedMs = BenchWorld.Median(compositionTimes);
        var serialMs = BenchWorld.Median(serialTimes);
        Console.WriteLine($"composition-overhead: base evaluation {baseMs:F1} ms; composition (K=20, budget 40) {batchedMs:F0} ms batched, {serialMs:F0} ms one at a time (medians of {n})");
        Console.WriteLine($"composition-overhead ratio (composition / (40 x base evaluation)): {batchedMs / (40 * baseMs):F3} batched, {serialMs / (40 * baseMs):F3} one at a time  (target <= 1.2)");

        // (ii) lambda = 8 candidates.
        var modules = pool.Select(m => LoraModule.Load(m.Directory, m.Name)).ToList();
        using var composed = new ComposedModel(model, modules);
        var objective = new FewShotObjective(composed, tokenized);
        var candidates = Enumerable.Range(0, 8).Select(_ => (IReadOnlyList<double>)Enumerable.Range(0, 20).Select(_ => rng.NextDouble() * 3 - 1.5).ToArray()).ToList();
        double Batched() { var sw = Stopwatch.StartNew(); objective.EvaluateMany(candidates); return sw.Elapsed.TotalSeconds; }
        double OneByOne() { var sw = Stopwatch.StartNew(); foreach (var c in candidates) objective.Evaluate(c); return sw.Elapsed.TotalSeconds; }
        Batched(); OneByOne();
        var b = new List<double>();
        var s = new List<double>();
        for (var i = 0; i < n; i++) { b.Add(Batched()); s.Add(OneByOne()); }
        var (bm, sm) = (BenchWorld.Median(b), BenchWorld.Median(s));
        Console.WriteLine($"batched-candidates: {8 / bm:F2} evaluations/s batched (lambda = 8 in one forward) vs {8 / sm:F2} one at a time: speed-up {sm / bm:F2}x");
        foreach (var m in modules) m.Dispose();
    }
}
