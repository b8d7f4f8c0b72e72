using System.Diagnostics;
using System.Globalization;
using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Core.Runtime;

namespace LoraHub.Bench;

/// <summary>
/// contention: one composition (a small T5: d_model 256, 4 + 4 layers, 4 heads; 20 modules, K = 20, budget 40) in a
/// child process while one competing CPU-bound process spins on a core, ÷ the same composition without it; target at
/// most 2.5 on this 2-core machine. Three cases, interleaved: OMP_WAIT_POLICY=PASSIVE in the environment; the variable
/// unset and the child starting as the CLI and the Functions worker do (<see cref="TorchStartup.ConfigureThreads"/>);
/// the variable unset and no start-up settings (libgomp's default spinning, as before).
/// </summary>
public static class Contention
{
    private const string ChildVerb = "contention-child";
    private const string SpinVerb = "contention-spin";

    public static void Run(int rounds)
    {
        using var dir = new BenchWorld.TempFolder();
        var modelDir = Path.Combine(dir.Path, "model");
        using (var model = BenchWorld.RandomT5(modelDir, BenchWorld.T5Config(dModel: 256, layers: 4, heads: 4)))
        {
            var targets = BenchWorld.AttentionQv(model);
            foreach (var i in Enumerable.Range(0, 20)) BenchWorld.RandomModule(dir.Path, i, model, targets).Dispose();
        }
        Console.WriteLine($"contention: small T5 (d_model 256, 4 + 4 layers), 20 modules, K = 20, budget 40; {rounds} rounds; one child process per composition; load {Load()}");
        var cases = new (string Name, bool Variable, bool Startup)[]
        {
            ("OMP_WAIT_POLICY=PASSIVE", true, false),
            ("unset, TorchStartup", false, true),
            ("unset, no start-up settings", false, false),
        };
        var quiet = cases.ToDictionary(c => c.Name, _ => new List<double>());
        var busy = cases.ToDictionary(c => c.Name, _ => new List<double>());
        for (var round = 0; round < rounds; round++)
        {
            foreach (var c in cases)
            {
                quiet[c.Name].Add(Child(dir.Path, c.Variable, c.Startup, competitor: false));
                busy[c.Name].Add(Child(dir.Path, c.Variable, c.Startup, competitor: true));
                // Each result as it comes: without the policy a single composition can take many minutes.
                Console.WriteLine($"contention: round {round + 1}, {c.Name}: quiet {quiet[c.Name][^1]:F1} s, with a competitor {busy[c.Name][^1]:F1} s; load {Load()}");
            }
        }
        foreach (var c in cases)
        {
            var (q, b) = (BenchWorld.Median(quiet[c.Name]), BenchWorld.Median(busy[c.Name]));
            Console.WriteLine($"contention: {c.Name,-28} quiet {q:F1} s, with a competitor {b:F1} s (medians of {rounds}; busy runs {string.Join(", ", busy[c.Name].Select(x => x.ToString("F1", CultureInfo.InvariantCulture)))} s)");
            Console.WriteLine($"contention ratio ({c.Name}): {b / q:F2}  (target <= 2.5)");
        }
        Console.WriteLine($"contention: load at the end {Load()}");
    }

    private static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static ProcessStartInfo Self(params string[] args)
    {
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") info.ArgumentList.Add(typeof(Contention).Assembly.Location);
        foreach (var a in args) info.ArgumentList.Add(a);
        return info;
    }

    /// <summary>Seconds of one composition in a child process (model load excluded).</summary>
    private static double Child(string root, bool variable, bool startup, bool competitor)
    {
        var info = Self(ChildVerb, root, startup ? "startup" : "none");
        if (variable) info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        else info.Environment.Remove("OMP_WAIT_POLICY");
        using var spinner = competitor ? Process.Start(Self(SpinVerb)) : null;
        try
        {
            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0) throw new InvalidOperationException($"{ChildVerb} exited with {process.ExitCode}: {output}");
            return double.Parse(output.Trim().Split('\n')[^1], CultureInfo.InvariantCulture);
        }
        finally
        {
            if (spinner is not null)
            {
                spinner.Kill();
                spinner.WaitForExit();
            }
        }
    }

    /// <summary>The child processes: a composition (prints its seconds), or a CPU-bound spinner until killed.</summary>
    public static bool TryRunChild(string[] args)
    {
        if (args.Length == 1 && args[0] == SpinVerb)
        {
            var x = 0UL;
            while (true) x = x * 6364136223846793005UL + 1442695040888963407UL;
        }
        if (args.Length != 3 || args[0] != ChildVerb) return false;
        if (args[2] == "startup") TorchStartup.ConfigureThreads();
        var root = args[1];
        var modelDir = Path.Combine(root, "model");
        using var model = ModelLoader.LoadSeq2Seq(modelDir);
        var tokenizer = ModelLoader.LoadTokenizer(modelDir);
        var pool = ModuleRef.Scan(Path.Combine(root, "modules"));
        var rng = new Random(11);
        string Words(int n) => string.Join(' ', Enumerable.Range(0, n).Select(_ => $"w{rng.Next(1000)}"));
        var examples = Enumerable.Range(0, 5).Select(_ => new Example(Words(34), Words(3))).ToList();
        var sw = Stopwatch.StartNew();
        using (new Composer(model, tokenizer).Compose(pool, examples, new CompositionSettings { Budget = 40, K = 20 }, "bench")) { }
        Console.WriteLine(sw.Elapsed.TotalSeconds.ToString(CultureInfo.InvariantCulture));
        return true;
    }
}
