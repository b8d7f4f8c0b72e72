using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LoraHub.Core.Models;
using LoraHub.Core.Runtime;
using TorchSharp;

namespace LoraHub.Bench;

/// <summary>
/// pytorch-t5: our base objective evaluation (Seq2Seq.ExampleLosses on the lora-overhead T5 geometry, 5 examples of
/// 101 input and 11 label tokens) ÷ the same losses computed by a plain-PyTorch T5 forward (bench/pytorch/t5_loss.py,
/// Debian's python3-torch, set up by bench/pytorch/setup.sh) on the same weights and inputs, interleaved; both sides
/// time only the computation. The losses must agree (the PyTorch side is an independent check of our T5). Target ≤ 1.0.
/// </summary>
public static class PytorchT5
{
    public static int Run(int rounds)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "pytorch", "t5_loss.py");
        using var dir = new BenchWorld.TempFolder();
        using var model = BenchWorld.RandomT5(dir.Path);
        var examples = BenchWorld.RandomExamples(new Random(7));
        var examplesPath = Path.Combine(dir.Path, "examples.json");
        File.WriteAllText(examplesPath, JsonSerializer.Serialize(new { inputs = examples.Select(e => e.InputIds), labels = examples.Select(e => e.Labels) }));
        var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { script, dir.Path, examplesPath }) info.ArgumentList.Add(a);
        Process python;
        try
        {
            python = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine("pytorch-t5: Debian's /usr/bin/python3 not found; run bench/pytorch/setup.sh");
            return 1;
        }
        using var _ = python;
        var ready = python.StandardOutput.ReadLine();
        if (ready is null || !ready.StartsWith("ready", StringComparison.Ordinal))
        {
            Console.Error.WriteLine("pytorch-t5: the PyTorch side did not start (is python3-torch installed? bench/pytorch/setup.sh)");
            return 1;
        }
        Console.WriteLine($"pytorch-t5: T5 d_model 512, 8 + 8 layers (lora-overhead geometry); ours: torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset)"}; PyTorch side: {ready[6..]}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        double[] Theirs()
        {
            python.StandardInput.WriteLine("eval");
            python.StandardInput.Flush();
            return python.StandardOutput.ReadLine()!.Split(' ').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        }
        // Ours with the examples split into ForwardParts (the default) and as one batch on libtorch's own threads.
        var parts = ForwardParts.Count;
        (double Seconds, double[] Losses) Ours(int split)
        {
            ForwardParts.Count = split;
            var sw = Stopwatch.StartNew();
            var losses = Seq2Seq.ExampleLosses(model, examples);
            return (sw.Elapsed.TotalSeconds, losses);
        }
        for (var i = 0; i < 2; i++) { Ours(parts); Ours(1); Theirs(); }
        var ours = new List<double>();
        var whole = new List<double>();
        var theirs = new List<double>();
        var maxDiff = 0.0;
        for (var i = 0; i < rounds; i++)
        {
            var (s, ourLosses) = Ours(parts);
            var (w, wholeLosses) = Ours(1);
            var t = Theirs();
            ours.Add(s);
            whole.Add(w);
            theirs.Add(t[0]);
            maxDiff = Math.Max(maxDiff, ourLosses.Concat(wholeLosses).Zip(t.Skip(1).Concat(t.Skip(1)), (a, b) => Math.Abs(a - b)).Max());
            Console.WriteLine($"pytorch-t5: round {i + 1}: ours {s * 1000:F0} ms ({parts} parts), ours one batch {w * 1000:F0} ms, PyTorch {t[0] * 1000:F0} ms");
        }
        ForwardParts.Count = parts;
        python.StandardInput.WriteLine("quit");
        python.WaitForExit();
        var (o, wb, p) = (BenchWorld.Median(ours), BenchWorld.Median(whole), BenchWorld.Median(theirs));
        Console.WriteLine($"pytorch-t5: ours {o * 1000:F1} ms ({parts} parts, {ForwardParts.ThreadsPerPart} thread(s) each), one batch {wb * 1000:F1} ms, PyTorch {p * 1000:F1} ms (medians of {rounds}); losses agree within {maxDiff:E1}; split runs computed again after a collection: {ForwardParts.Recomputed}");
        Console.WriteLine($"pytorch-t5 ratio (ours / PyTorch): {o / p:F3}  (target <= 1.0); one batch / PyTorch {wb / p:F3}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        return maxDiff < 1e-3 ? 0 : 1;
    }
}
