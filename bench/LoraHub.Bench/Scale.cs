using System.Diagnostics;
using System.Globalization;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using static TorchSharp.torch;

namespace LoraHub.Bench;

/// <summary>
/// scale: the paper's setting at its real size (see <see cref="ScaleWorld"/>), every measurement in its own child
/// process: load time and peak memory ÷ model bytes (F32 T5-large, BF16 1.1 B decoder computed in BF16); one objective
/// evaluation with K = 20 ÷ the base evaluation (5 examples of ~110 tokens); BF16 ÷ F32 compute for the decoder; a
/// whole composition (K = 20, budget 40, select from the pool) ÷ 40 base evaluations, and its peak memory with a pool of
/// 196 against a pool of exactly the 20 modules it selects. --quick: budget 8 and 2 rounds (the ratios stay
/// comparable; the minutes are extrapolated and say so). --parts load,eval,dtype,compose runs some of them (default all).
/// The decoder's K = 20 ÷ base is measured computing in F32: on a CPU without BF16 instructions one BF16 evaluation of
/// the 1.1 B decoder takes minutes, and the dtype does not change what the side path costs relative to the base.
/// </summary>
public static class Scale
{
    private const string ChildVerb = "scale-child";
    private const int K = 20;
    private const int Seed = 0;

    public static void Run(int? rounds)
    {
        var args = Environment.GetCommandLineArgs();
        var quick = args.Contains("--quick");
        var at = Array.IndexOf(args, "--parts");
        var parts = at >= 0 && at + 1 < args.Length ? args[at + 1].Split(',') : ["load", "eval", "dtype", "compose"];
        var budget = quick ? 8 : 40;
        var n = rounds ?? (quick ? 2 : 3);
        ScaleWorld.Ensure();
        var t5Bytes = new FileInfo(Path.Combine(ScaleWorld.T5Dir, "model.safetensors")).Length;
        var llamaBytes = Directory.GetFiles(ScaleWorld.LlamaDir, "*.safetensors").Sum(f => new FileInfo(f).Length);
        var hub = ModuleRef.Scan(ScaleWorld.T5Hub);
        var hubBytes = hub.Sum(m => Directory.GetFiles(m.Directory).Sum(f => new FileInfo(f).Length));
        Console.WriteLine($"scale: cache {ScaleWorld.Cache}; T5-large geometry F32 {t5Bytes / 1e9:F2} GB, hub of {hub.Count} modules {hubBytes / 1e9:F2} GB "
            + $"({hub.Count(m => File.Exists(Path.Combine(m.Directory, LoraModule.BinFile)))} as adapter_model.bin), 1.1 B decoder BF16 {llamaBytes / 1e9:F2} GB in 2 shards; "
            + $"budget {budget}, {n} rounds; load {Load()}");

        // The 20 modules the composition selects from the 196, and a pool of exactly those (symbolic links).
        var selected = ModuleSelector.Random(hub, K, Seed);
        var pool20 = Path.Combine(ScaleWorld.Cache, "t5-pool-20");
        if (Directory.Exists(pool20)) Directory.Delete(pool20, true);
        Directory.CreateDirectory(pool20);
        foreach (var m in selected) Directory.CreateSymbolicLink(Path.Combine(pool20, m.Name), m.Directory);
        var selectedBytes = selected.Sum(m => Directory.GetFiles(m.Directory).Sum(f => new FileInfo(f).Length));
        var rows = new List<string>();

        foreach (var (kind, bytes) in parts.Contains("load") ? new[] { ("t5", t5Bytes), ("llama-bf16", llamaBytes) } : [])
        {
            var v = Child("load", kind);
            rows.Add($"| load {kind} | {v[1]:F1} s | peak {v[2] / 1e9:F2} GB ÷ parameters {v[0] / 1e9:F2} GB = {v[2] / v[0]:F2} (file {bytes / 1e9:F2} GB) |");
            Console.WriteLine(rows[^1]);
        }

        foreach (var kind in parts.Contains("eval") ? new[] { "t5", "llama-f32" } : [])
        {
            var v = Child("eval", kind, n.ToString(CultureInfo.InvariantCulture));
            rows.Add($"| K=20 ÷ base, {kind} | {v[2] / v[0]:F3} wall, {v[3] / v[1]:F3} CPU | base {v[0]:F1} s, K=20 {v[2]:F1} s (target ≤ 1.05) |");
            Console.WriteLine(rows[^1]);
        }

        // BF16 against F32 compute for the decoder, alternating child processes.
        var bf16 = new List<double>();
        var f32 = new List<double>();
        for (var i = 0; i < (parts.Contains("dtype") ? rounds ?? 1 : 0); i++)
        {
            bf16.Add(Child("eval", "llama-bf16", "1", "base-only")[0]);
            f32.Add(Child("eval", "llama-f32", "1", "base-only")[0]);
        }
        if (bf16.Count > 0) rows.Add($"| decoder base evaluation, BF16 ÷ F32 compute | {BenchWorld.Median(bf16) / BenchWorld.Median(f32):F2} | BF16 {BenchWorld.Median(bf16):F1} s, F32 {BenchWorld.Median(f32):F1} s |");
        if (bf16.Count > 0) Console.WriteLine(rows[^1]);
        if (!parts.Contains("compose")) return;

        var c196 = Child("compose", ScaleWorld.T5Hub, budget.ToString(CultureInfo.InvariantCulture));
        var c20 = Child("compose", pool20, budget.ToString(CultureInfo.InvariantCulture));
        foreach (var (name, c) in new[] { ("pool 196", c196), ("pool 20", c20) })
        {
            rows.Add($"| compose (K=20, budget {budget}), {name} | {c[0] / (budget * c[2]):F3} ÷ {budget} base evaluations | {c[0] / 60:F1} min (base evaluation {c[2]:F1} s); peak growth {c[1] / 1e9:F2} GB |");
            Console.WriteLine(rows[^1]);
        }
        var difference = c196[1] - c20[1];
        rows.Add($"| peak memory, pool 196 − pool 20 | {difference / 1e6:F0} MB | the 20 selected modules' files: {selectedBytes / 1e6:F0} MB; target ≤ {selectedBytes * 1.1 / 1e6:F0} MB: {(difference <= selectedBytes * 1.1 ? "PASS" : "MISS")} |");
        Console.WriteLine(rows[^1]);
        if (quick) Console.WriteLine($"scale: --quick: a composition with budget 40 would take about {c20[0] / budget * 40 / 60:F0} min here");
        Console.WriteLine($"scale: load at the end {Load()}");
    }

    private static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static double[] Child(params string[] args)
    {
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") info.ArgumentList.Add(typeof(Scale).Assembly.Location);
        info.ArgumentList.Add(ChildVerb);
        foreach (var a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{ChildVerb} {string.Join(' ', args)} exited with {process.ExitCode}: {output}");
        return output.Trim().Split('\n')[^1].Split(' ').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray();
    }

    public static bool TryRunChild(string[] args)
    {
        if (args.Length < 2 || args[0] != ChildVerb) return false;
        zeros(1).Dispose(); // libtorch loaded before the baseline
        var result = args[1] switch
        {
            "load" => LoadChild(args[2]),
            "eval" => EvalChild(args[2], int.Parse(args[3], CultureInfo.InvariantCulture), args.Length > 4),
            "compose" => ComposeChild(args[2], int.Parse(args[3], CultureInfo.InvariantCulture)),
            _ => throw new ArgumentException(args[1]),
        };
        Console.WriteLine(string.Join(' ', result.Select(x => x.ToString("R", CultureInfo.InvariantCulture))));
        return true;
    }

    private static IAdaptableModel LoadModel(string kind) => kind switch
    {
        "t5" => ModelLoader.LoadSeq2Seq(ScaleWorld.T5Dir),
        "llama-bf16" => ModelLoader.LoadCausal(ScaleWorld.LlamaDir, ScalarType.BFloat16),
        "llama-f32" => ModelLoader.LoadCausal(ScaleWorld.LlamaDir, ScalarType.Float32),
        _ => throw new ArgumentException(kind),
    };

    /// <summary>Parameter bytes, seconds, peak growth.</summary>
    private static double[] LoadChild(string kind)
    {
        ResetPeak();
        var before = Status("VmRSS");
        var sw = Stopwatch.StartNew();
        using var model = LoadModel(kind);
        var seconds = sw.Elapsed.TotalSeconds;
        return [BenchWorld.ParameterBytes(model.Module), seconds, Status("VmHWM") - before];
    }

    /// <summary>Medians of base wall, base CPU, K=20 wall, K=20 CPU seconds (interleaved).</summary>
    private static double[] EvalChild(string kind, int rounds, bool baseOnly)
    {
        using var model = LoadModel(kind);
        Func<double[]> evaluate = model is ISeq2SeqModel s
            ? () => Seq2Seq.ExampleLosses(s, BenchWorld.RandomExamples(new Random(7)))
            : () => CausalLm.ExampleLosses((ICausalLanguageModel)model, BenchWorld.RandomCausalExamples(new Random(7)));
        // In seconds.
        static (double Wall, double Cpu) Time(Action action)
        {
            var (wall, cpu) = BenchWorld.Time(action);
            return (wall / 1000, cpu / 1000);
        }
        // Warm-up, except for a lone BF16 base evaluation: minutes long on a CPU without BF16 instructions, where one-time
        // costs do not matter.
        if (!baseOnly || kind != "llama-bf16") evaluate();
        if (baseOnly)
        {
            var times = Enumerable.Range(0, rounds).Select(_ => Time(() => evaluate())).ToList();
            return [BenchWorld.Median(times.Select(t => t.Wall).ToList()), BenchWorld.Median(times.Select(t => t.Cpu).ToList())];
        }
        var root = model is ISeq2SeqModel ? ScaleWorld.T5Hub : ScaleWorld.LlamaHub;
        var modules = ModuleRef.Scan(root).Take(K).Select(m => LoraModule.Load(m.Directory, m.Name)).ToList();
        using var composed = new ComposedModel(model, modules);
        var rng = new Random(7);
        var weights = Enumerable.Range(0, K).Select(_ => rng.NextDouble() * 3 - 1.5).ToArray();
        composed.SetWeights(weights);
        evaluate();
        var baseTimes = new List<(double Wall, double Cpu)>();
        var composedTimes = new List<(double Wall, double Cpu)>();
        for (var i = 0; i < rounds; i++)
        {
            composed.Clear();
            baseTimes.Add(Time(() => evaluate()));
            composedTimes.Add(Time(() => { composed.SetWeights(weights); evaluate(); }));
        }
        foreach (var m in modules) m.Dispose();
        double Med(List<(double Wall, double Cpu)> xs, bool wall) => BenchWorld.Median(xs.Select(x => wall ? x.Wall : x.Cpu).ToList());
        return [Med(baseTimes, true), Med(baseTimes, false), Med(composedTimes, true), Med(composedTimes, false)];
    }

    /// <summary>Composition seconds, peak growth during it, a base evaluation's seconds (median of 2, same examples).</summary>
    private static double[] ComposeChild(string pool, int budget)
    {
        using var model = ModelLoader.LoadSeq2Seq(ScaleWorld.T5Dir);
        var tokenizer = ModelLoader.LoadTokenizer(ScaleWorld.T5Dir);
        var rng = new Random(11);
        string Words(int count) => string.Join(' ', Enumerable.Range(0, count).Select(_ => $"w{rng.Next(1000)}"));
        // About 110 input tokens and 10 label tokens each with the real T5 tokenizer.
        var examples = Enumerable.Range(0, 5).Select(_ => new Example(Words(37), Words(3))).ToList();
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, tokenizer, examples, out _);
        var baseTimes = new List<double>();
        for (var i = 0; i < 3; i++)
        {
            var sw0 = Stopwatch.StartNew();
            Seq2Seq.ExampleLosses(model, tokenized);
            if (i > 0) baseTimes.Add(sw0.Elapsed.TotalSeconds);
        }
        GC.Collect();
        ResetPeak();
        var before = Status("VmRSS");
        var modules = ModuleRef.Scan(pool);
        var sw = Stopwatch.StartNew();
        using (new Composer(model, tokenizer).Compose(modules, examples, new CompositionSettings { Budget = budget, K = K, Seed = Seed }, "scale")) { }
        var seconds = sw.Elapsed.TotalSeconds;
        return [seconds, Status("VmHWM") - before, baseTimes.Average()];
    }

    private static void ResetPeak() => File.WriteAllText("/proc/self/clear_refs", "5");

    private static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
