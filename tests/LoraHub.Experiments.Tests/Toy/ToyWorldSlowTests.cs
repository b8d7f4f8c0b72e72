using LoraHub.Core;
using System.Diagnostics;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Experiments.Toy;
using Xunit;
using Xunit.Abstractions;

namespace LoraHub.Experiments.Tests.Toy;

/// <summary>
/// A fact that only runs when LORAHUB_SLOW_TESTS=1 (the full toy world takes minutes, too long for the default run):
/// LORAHUB_SLOW_TESTS=1 dotnet test tests/LoraHub.Core.Tests --filter Category=Slow
/// </summary>
public sealed class SlowFactAttribute : FactAttribute
{
    public SlowFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("LORAHUB_SLOW_TESTS") != "1")
            Skip = "slow: set LORAHUB_SLOW_TESTS=1 to run";
    }
}

public sealed class ToyWorldSlowTests(ITestOutputHelper output)
{
    /// <summary>Builds the demo's world (seed 1) and checks what the demo relies on. Set LORAHUB_TOY_DIR to keep it.</summary>
    [SlowFact]
    [Trait("Category", "Slow")]
    public void The_default_world_builds_in_minutes_and_has_the_promised_properties()
    {
        using var temp = new Fixtures.TempDir();
        var dir = Environment.GetEnvironmentVariable("LORAHUB_TOY_DIR") is { Length: > 0 } keep ? keep : temp["world"];
        var clock = Stopwatch.StartNew();
        var world = ToyWorld.Build(dir, 1, new SyncProgress<string>(line => output.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] {line}")));
        output.WriteLine($"build: {clock.Elapsed.TotalSeconds:F1} s (from cache: {world.FromCache})");
        var t = world.Timings;
        output.WriteLine($"timings: base train {t.BaseTrain:F1} s, base eval {t.BaseEvaluate:F1} s, modules {string.Join(", ", t.Modules.Select(kv => $"{kv.Key} {kv.Value:F1}"))} s, held-out {t.HeldOut:F1} s, total {t.Total:F1} s");
        output.WriteLine($"base copy exact match {world.BaseCopyExactMatch:F2}");
        foreach (var m in world.Pool) output.WriteLine($"module {m.Name}: exact match {m.ExactMatch:F2} (final loss {m.FinalLoss:F4})");
        foreach (var h in world.HeldOut) output.WriteLine($"held-out {h.Name} ({h.Kind}): base {h.BaseExactMatch:F2}, hand-set merge {h.OracleExactMatch:F2}");

        Assert.True(world.BaseCopyExactMatch >= 0.95, $"copy {world.BaseCopyExactMatch}");
        Assert.All(world.Pool, m => Assert.True(m.ExactMatch >= 0.9, $"{m.Name} {m.ExactMatch}"));
        Assert.All(world.HeldOut, h => Assert.True(h.BaseExactMatch <= 0.05, $"{h.Name} base {h.BaseExactMatch}"));
        Assert.True(world.HeldOut.Single(h => h.Kind == "retrieval").OracleExactMatch >= 0.9);

        // Every module alone fails the combination tasks (it does only half the job).
        using var model = ModelLoader.LoadSeq2Seq(world.BaseDirectory);
        foreach (var m in world.Pool)
        {
            using var module = LoraModule.Load(m.ModuleDirectory, m.Name);
            using var composed = new ComposedModel(model, [module]);
            composed.SetWeights([1.0]);
            foreach (var h in world.HeldOut.Where(h => h.Kind == "combination"))
            {
                var exact = ToyWorld.ExactMatchOf(model, ExampleFile.Load(h.TestFile));
                output.WriteLine($"  {m.Name} alone on {h.Name}: {exact:F2}");
                Assert.True(exact <= 0.1, $"{m.Name} on {h.Name}: {exact}");
            }
        }
    }

    /// <summary>
    /// Builds the demo's decoder-only world (seed 1) and checks the same promises, plus that the hand-set merge of two
    /// modules beats every single module on the combination tasks. Set LORAHUB_TOY_LLAMA_DIR to keep it.
    /// </summary>
    [SlowFact]
    [Trait("Category", "Slow")]
    public void The_default_decoder_only_world_builds_in_minutes_and_has_the_promised_properties()
    {
        using var temp = new Fixtures.TempDir();
        var dir = Environment.GetEnvironmentVariable("LORAHUB_TOY_LLAMA_DIR") is { Length: > 0 } keep ? keep : temp["world"];
        var clock = Stopwatch.StartNew();
        var world = ToyWorld.Build(dir, 1, ToyWorldOptions.DefaultLlama, new SyncProgress<string>(line => output.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] {line}")));
        output.WriteLine($"build: {clock.Elapsed.TotalSeconds:F1} s (from cache: {world.FromCache})");
        output.WriteLine($"base copy exact match {world.BaseCopyExactMatch:F2}");
        foreach (var m in world.Pool) output.WriteLine($"module {m.Name}: exact match {m.ExactMatch:F2} (final loss {m.FinalLoss:F4})");
        foreach (var h in world.HeldOut) output.WriteLine($"held-out {h.Name} ({h.Kind}): base {h.BaseExactMatch:F2}, hand-set merge {h.OracleExactMatch:F2}");

        Assert.Equal(ToyWorld.Llama, world.Family);
        Assert.True(world.BaseCopyExactMatch >= 0.95, $"copy {world.BaseCopyExactMatch}");
        Assert.All(world.Pool, m => Assert.True(m.ExactMatch >= 0.9, $"{m.Name} {m.ExactMatch}"));
        Assert.All(world.HeldOut, h => Assert.True(h.BaseExactMatch <= 0.05, $"{h.Name} base {h.BaseExactMatch}"));
        Assert.True(world.HeldOut.Single(h => h.Kind == "retrieval").OracleExactMatch >= 0.9);

        using var model = ModelLoader.Load(world.BaseDirectory);
        Assert.IsAssignableFrom<ICausalLanguageModel>(model);
        var best = new Dictionary<string, double>();
        foreach (var m in world.Pool)
        {
            using var module = LoraModule.Load(m.ModuleDirectory, m.Name);
            using var composed = new ComposedModel(model, [module]);
            composed.SetWeights([1.0]);
            foreach (var h in world.HeldOut.Where(h => h.Kind == "combination"))
            {
                var exact = world.ExactMatch(model, ExampleFile.Load(h.TestFile));
                output.WriteLine($"  {m.Name} alone on {h.Name}: {exact:F2}");
                Assert.True(exact <= 0.1, $"{m.Name} on {h.Name}: {exact}");
                best[h.Name] = Math.Max(best.GetValueOrDefault(h.Name), exact);
            }
        }
        Assert.All(world.HeldOut.Where(h => h.Kind == "combination"), h => Assert.True(h.OracleExactMatch > best[h.Name], $"{h.Name}: hand-set {h.OracleExactMatch} vs best single {best[h.Name]}"));
    }

}
