using System.Diagnostics;
using System.Globalization;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Bench;

/// <summary>
/// load-memory: peak resident memory added by loading a model whose weights are stored in BF16 (a random Llama of
/// ~490 MB in BF16: hidden 1024, 16 layers, 16 heads / 4 kv heads, MLP 2816, vocab 32000), computed in BF16 and in
/// F32, divided by the bytes of the loaded model's parameters. VmHWM is process-wide, so each load runs in a child
/// process that first loads a tiny model (JIT, allocator and libtorch warm-up), resets the peak (clear_refs 5) and
/// then loads the big one. The loader before streaming (whole state dict converted, model built in F32, copy, then
/// .to(dtype)) is reproduced as "old" for comparison.
/// </summary>
public static class LoadMemory
{
    private const string ChildVerb = "load-memory-child";

    public static void Run()
    {
        using var dir = new BenchWorld.TempFolder();
        var model = Path.Combine(dir.Path, "model");
        var warmUp = Path.Combine(dir.Path, "warm-up");
        BenchWorld.SaveRandomLlama(model, BenchWorld.LlamaConfig(hidden: 1024, layers: 16, heads: 16, kvHeads: 4, intermediate: 2816), ScalarType.BFloat16);
        BenchWorld.SaveRandomLlama(warmUp, BenchWorld.LlamaConfig(hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 1000), ScalarType.BFloat16);
        var fileBytes = new FileInfo(Path.Combine(model, "model.safetensors")).Length;
        Console.WriteLine($"load-memory: random Llama stored in BF16, model.safetensors {fileBytes / 1e6:F0} MB; one child process per load");

        var results = new Dictionary<(string Path, string Dtype), Measurement>();
        foreach (var path in new[] { "streamed", "old" })
        {
            foreach (var dtype in new[] { "bfloat16", "float32" })
            {
                var m = results[(path, dtype)] = Child(model, warmUp, dtype, path);
                Console.WriteLine($"load-memory: {path,-8} {dtype,-8} model {m.ModelBytes / 1e6,5:F0} MB, peak growth {m.PeakGrowth / 1e6,5:F0} MB, "
                    + $"after load {m.FinalGrowth / 1e6,5:F0} MB, {m.Seconds:F1} s (a random {dtype} initialisation alone: {m.BuildSeconds:F1} s)");
            }
        }
        foreach (var dtype in new[] { "bfloat16", "float32" })
        {
            var (now, old) = (results[("streamed", dtype)], results[("old", dtype)]);
            Console.WriteLine($"load-memory ratio ({dtype} compute, peak growth / model bytes): {now.PeakGrowth / (double)now.ModelBytes:F2} streamed, "
                + $"{old.PeakGrowth / (double)old.ModelBytes:F2} old  (target 1.0-1.2); old / streamed peak {old.PeakGrowth / (double)now.PeakGrowth:F2}");
        }
    }

    private sealed record Measurement(long ModelBytes, long PeakGrowth, long FinalGrowth, double Seconds, double BuildSeconds);

    private static Measurement Child(string model, string warmUp, string dtype, string path)
    {
        // dotnet run starts the apphost; under `dotnet LoraHub.Bench.dll` the host is dotnet itself and needs the dll.
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") info.ArgumentList.Add(typeof(LoadMemory).Assembly.Location);
        foreach (var a in new[] { ChildVerb, model, warmUp, dtype, path }) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{ChildVerb} {dtype} {path} exited with {process.ExitCode}: {output}");
        var v = output.Trim().Split(' ');
        return new Measurement(long.Parse(v[0], CultureInfo.InvariantCulture), long.Parse(v[1], CultureInfo.InvariantCulture),
            long.Parse(v[2], CultureInfo.InvariantCulture), double.Parse(v[3], CultureInfo.InvariantCulture), double.Parse(v[4], CultureInfo.InvariantCulture));
    }

    /// <summary>The child: warm up, reset the peak, load, and print model bytes, peak and final growth, seconds.</summary>
    public static bool TryRunChild(string[] args)
    {
        if (args.Length != 5 || args[0] != ChildVerb) return false;
        var (model, warmUp, dtype, path) = (args[1], args[2], args[3] == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32, args[4]);
        Load(warmUp, dtype, path).Dispose();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current VmRSS
        var before = Status("VmRSS");
        var sw = Stopwatch.StartNew();
        using var loaded = Load(model, dtype, path);
        var seconds = sw.Elapsed.TotalSeconds;
        var (peak, after) = (Status("VmHWM"), Status("VmRSS"));
        // What a random initialisation would cost on top (the loader leaves the parameters uninitialised).
        sw.Restart();
        new LlamaForCausalLM(LlamaConfig.FromJson(ModelLoader.ReadConfig(model), model), new ParameterFactory(dtype)).Dispose();
        var building = sw.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{BenchWorld.ParameterBytes(loaded.Module)} {peak - before} {after - before} {seconds} {building}"));
        return true;
    }

    private static IAdaptableModel Load(string dir, ScalarType dtype, string path) => path == "old" ? LoadAsBefore(dir, dtype) : ModelLoader.LoadCausal(dir, dtype);

    /// <summary>The loader before streaming: the whole state dict converted to dtype, an F32 model, copy, then .to(dtype).</summary>
    private static LlamaForCausalLM LoadAsBefore(string dir, ScalarType dtype)
    {
        var model = new LlamaForCausalLM(LlamaConfig.FromJson(ModelLoader.ReadConfig(dir), dir));
        var state = StateDict.LoadModelFolder(dir, dtype);
        using (no_grad())
        {
            foreach (var (name, parameter) in model.named_parameters()) parameter.copy_(state[name]);
        }
        foreach (var t in state.Values) t.Dispose();
        model.to(dtype);
        return model;
    }

    /// <summary>A /proc/self/status field in bytes (the file gives kB).</summary>
    private static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
