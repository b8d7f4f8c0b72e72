using System.Diagnostics;
using System.Runtime.InteropServices;
using LoraHub.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Bench;

/// <summary>
/// cpu-dtypes: what BF16 and F16 compute does on this CPU with libtorch 2.10. (i) A 1024³ matrix product; (ii) one
/// few-shot loss evaluation (5 examples of ~110 tokens) of the lora-overhead Llama (F32 weights) loaded as F32, BF16
/// and F16; (iii) tiny-llama's golden cases (tests/fixtures/llama) scored in each type against Hugging Face's F32 losses.
/// Times are medians, ratios are against F32 in the same run.
/// </summary>
public static class CpuDtypes
{
    private static readonly (string Name, ScalarType Type)[] Types =
        [("float32", ScalarType.Float32), ("bfloat16", ScalarType.BFloat16), ("float16", ScalarType.Float16)];

    public static void Run(int rounds)
    {
        Console.WriteLine($"cpu-dtypes: torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset)"}");
        Matmul(rounds);
        // F16 evaluations take seconds each on the CPU: a few rounds tell the ratio.
        LlamaEvaluation(Math.Min(rounds, 5));
        Golden();
    }

    /// <summary>
    /// Times each type's action, rounds interleaved so a noisy neighbour slows every type alike, and prints medians and
    /// ratios to F32. prepare returns the action to time (after one warm-up call) or throws when the CPU kernels refuse the type.
    /// </summary>
    private static void Compare(string what, int rounds, Func<ScalarType, Action> prepare)
    {
        var actions = new List<(string Name, Action Run, List<double> Times)>();
        foreach (var (name, type) in Types)
        {
            try
            {
                var run = prepare(type);
                run();
                actions.Add((name, run, []));
            }
            catch (Exception e) when (e is ExternalException or InvalidOperationException or ArgumentException)
            {
                Console.WriteLine($"cpu-dtypes: {what} {name,-8} fails: {e.Message.Split('\n')[0]}");
            }
        }
        for (var i = 0; i < rounds; i++)
        {
            foreach (var (_, run, times) in actions)
            {
                var sw = Stopwatch.StartNew();
                run();
                times.Add(sw.Elapsed.TotalMilliseconds);
            }
        }
        var f32 = BenchWorld.Median(actions[0].Times);
        foreach (var (name, _, times) in actions)
            Console.WriteLine($"cpu-dtypes: {what} {name,-8} {BenchWorld.Median(times),8:F1} ms  (÷ float32: {BenchWorld.Median(times) / f32:F2}; medians of {rounds})");
    }

    private static void Matmul(int rounds)
    {
        manual_seed(3);
        using var a32 = randn(1024, 1024);
        using var b32 = randn(1024, 1024);
        var inputs = new List<Tensor>();
        Compare("matmul 1024x1024x1024", rounds, type =>
        {
            var (a, b) = (a32.to(type), b32.to(type));
            inputs.AddRange([a, b]);
            return () => { using var c = matmul(a, b); };
        });
        foreach (var t in inputs) t.Dispose();
    }

    private static void LlamaEvaluation(int rounds)
    {
        using var dir = new BenchWorld.TempFolder();
        BenchWorld.SaveRandomLlama(dir.Path, BenchWorld.LlamaConfig());
        var examples = BenchWorld.RandomCausalExamples(new Random(7));
        var models = new List<ICausalLanguageModel>();
        double[]? reference = null;
        Compare("Llama 512x16 few-shot loss", rounds, type =>
        {
            var model = ModelLoader.LoadCausal(dir.Path, type);
            models.Add(model);
            var losses = CausalLm.ExampleLosses(model, examples);
            reference ??= losses;
            Console.WriteLine($"cpu-dtypes: Llama 512x16 losses {type}: max |loss - float32 loss| {losses.Zip(reference, (x, y) => Math.Abs(x - y)).Max():F4} (losses ~{losses.Average():F2})");
            return () => CausalLm.ExampleLosses(model, examples);
        });
        foreach (var m in models) m.Dispose();
    }

    private static void Golden()
    {
        var fixtures = FindFixtures();
        if (fixtures is null)
        {
            Console.WriteLine("cpu-dtypes: tests/fixtures not found above the bench's folder; golden comparison skipped");
            return;
        }
        var golden = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(fixtures, "llama", "golden-visible.json")))!["cases"]!.AsArray();
        int[] Ids(System.Text.Json.Nodes.JsonNode node) => node.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        var examples = golden.Select(c => CausalExample.Join(1, Ids(c!["prompt_ids"]!), Ids(c!["completion_ids"]!), 2)).ToList();
        var expected = golden.Select(c => c!["loss"]!["base"]!.GetValue<double>()).ToArray();
        foreach (var (name, type) in Types)
        {
            try
            {
                using var model = ModelLoader.LoadCausal(Path.Combine(fixtures, "llama", "tiny-llama"), type);
                var losses = CausalLm.ExampleLosses(model, examples);
                var diffs = losses.Zip(expected, (x, y) => Math.Abs(x - y)).ToArray();
                Console.WriteLine($"cpu-dtypes: tiny-llama golden cases ({examples.Count}) {name,-8} |loss - HF float32 loss| mean {diffs.Average():F4}, max {diffs.Max():F4}");
            }
            catch (Exception e) when (e is ExternalException or InvalidOperationException or ArgumentException)
            {
                Console.WriteLine($"cpu-dtypes: tiny-llama golden cases {name,-8} fails: {e.Message.Split('\n')[0]}");
            }
        }
    }

    private static string? FindFixtures()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "tests", "fixtures");
            if (Directory.Exists(Path.Combine(candidate, "llama", "tiny-llama"))) return candidate;
        }
        return null;
    }
}
