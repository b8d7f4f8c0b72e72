using LoraHub.Core;
using System.Diagnostics;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Experiments.Toy;
using Xunit;

namespace LoraHub.Experiments.Tests.Toy;

/// <summary>A toy world at toy scale (a few seconds), built once for the tests that only read it.</summary>
public sealed class TinyWorldFixture : IDisposable
{
    public static readonly ToyWorldOptions Tiny = new()
    {
        DModel = 32, Layers = 1, BaseSteps = 20, BaseBatchSize = 16, ModuleSteps = 5, ModuleBatchSize = 8, ModuleTrainExamples = 32,
        PoolTasks = ["shift_letters", "mirror_letters", "inc_digits", "swap_digits"], TestExamples = 10, Threads = 2,
    };

    public Fixtures.TempDir Temp { get; } = new();
    public string Directory => Temp["world"];
    public List<string> Progress { get; } = [];
    public ToyWorld World { get; }
    public TimeSpan BuildTime { get; }

    public TinyWorldFixture()
    {
        var clock = Stopwatch.StartNew();
        World = ToyWorld.Build(Directory, 11, Tiny, new SyncProgress<string>(Progress.Add));
        BuildTime = clock.Elapsed;
    }

    public void Dispose() => Temp.Dispose();

}

public sealed class ToyWorldTests(TinyWorldFixture fx) : IClassFixture<TinyWorldFixture>
{
    private static Dictionary<string, DateTime> Files(string root) => Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)
        .ToDictionary(f => f, f => File.GetLastWriteTimeUtc(f));

    [Fact]
    public void Build_writes_the_full_layout()
    {
        var w = fx.World;
        Assert.False(w.FromCache);
        Assert.Equal(11, w.Seed);
        foreach (var f in new[] { "config.json", "model.safetensors", "lorahub-vocab.json" })
            Assert.True(File.Exists(Path.Combine(fx.Directory, "base", f)), f);
        Assert.Equal(["inc_digits", "mirror_letters", "shift_letters", "swap_digits"], w.Pool.Select(m => m.Name).Order());
        foreach (var m in w.Pool)
        {
            Assert.Equal(Path.Combine(fx.Directory, "modules", m.Name), m.ModuleDirectory);
            foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors", "lorahub-train.json", "train.jsonl", "test.jsonl" })
                Assert.True(File.Exists(Path.Combine(m.ModuleDirectory, f)), $"{m.Name}/{f}");
            Assert.Equal(32, ExampleFile.Load(m.TrainFile).Count);
            Assert.Equal(10, ExampleFile.Load(m.TestFile).Count);
            Assert.InRange(m.ExactMatch, 0, 1);
        }
        Assert.Equal(["retrieval_mirror_letters", "shift_letters_inc_digits", "mirror_letters_inc_digits"], w.HeldOut.Select(h => h.Name));
        Assert.Equal(["retrieval", "combination", "combination"], w.HeldOut.Select(h => h.Kind));
        Assert.Equal(["shift_letters", "inc_digits"], w.HeldOut[1].Modules);
        foreach (var h in w.HeldOut)
        {
            Assert.Equal(Path.Combine(fx.Directory, "tasks", h.Name, "train.jsonl"), h.TrainFile);
            Assert.Equal(5, ExampleFile.Load(h.TrainFile).Count);
            Assert.Equal(10, ExampleFile.Load(h.TestFile).Count);
            Assert.All(ExampleFile.Load(h.TestFile), e => Assert.NotEqual(e.Input, e.Output));
        }
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(fx.Directory, "world.json")))!;
        Assert.Equal(ToyWorld.Version, json["version"]!.GetValue<string>());
        Assert.Equal(11, json["seed"]!.GetValue<int>());
        Assert.Equal(["mirror_letters", "inc_digits"], json["held_out"]![2]!["modules"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.True(json["timings"]!["total_s"]!.GetValue<double>() > 0);
        Assert.Contains(fx.Progress, p => p.StartsWith("base: copy exact match", StringComparison.Ordinal));
        Assert.Contains(fx.Progress, p => p.StartsWith("world built", StringComparison.Ordinal));
        // Only the world and the lock file next to it: no temp folders left behind.
        Assert.Equal(["world"], Directory.EnumerateDirectories(fx.Temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Base_loads_and_modules_share_one_frozen_A()
    {
        using var model = ModelLoader.LoadSeq2Seq(fx.World.BaseDirectory);
        var modules = fx.World.Pool.Select(m => LoraModule.Load(m.ModuleDirectory)).ToList();
        try
        {
            Assert.All(modules, m => { Assert.Equal(16, m.Rank); Assert.Equal(2.0, m.Config.Scale); m.ValidateAgainst(model.Module); });
            Assert.Equal(6, modules[0].Layers.Count);
            foreach (var path in modules[0].Layers.Keys)
            {
                var a = modules[0].Layers[path].A;
                Assert.All(modules.Skip(1), m => Assert.True(m.Layers[path].A.Same(a), $"{m.Name} {path}"));
            }
            var record = JsonNode.Parse(File.ReadAllText(Path.Combine(fx.World.Pool[0].ModuleDirectory, "lorahub-train.json")))!;
            Assert.True(record["freeze_a"]!.GetValue<bool>());
            Assert.Equal(fx.World.InitSeed, record["init_seed"]!.GetValue<int>());
            Assert.Equal("train.jsonl", record["data"]!.GetValue<string>());
        }
        finally
        {
            foreach (var m in modules) m.Dispose();
        }
    }

    [Fact]
    public void A_second_build_returns_the_cached_world_and_touches_nothing()
    {
        var before = Files(fx.Temp.Path);
        var clock = Stopwatch.StartNew();
        var again = ToyWorld.Build(fx.Directory, 11, TinyWorldFixture.Tiny);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"cached build took {clock.Elapsed}");
        Assert.True(again.FromCache);
        Assert.Equal(before, Files(fx.Temp.Path));
        Assert.Equal(fx.World.Pool.Select(m => m.ExactMatch), again.Pool.Select(m => m.ExactMatch));
        Assert.Equal(fx.World.HeldOut.Select(h => h.TrainFile), again.HeldOut.Select(h => h.TrainFile));
        Assert.Equal(fx.World.Timings.Total, ToyWorld.Load(fx.Directory).Timings.Total);
    }

    [Fact]
    public void The_same_seed_builds_the_same_data()
    {
        using var other = new Fixtures.TempDir();
        var options = TinyWorldFixture.Tiny with { BaseSteps = 2, ModuleSteps = 1, PoolTasks = ["shift_letters", "mirror_letters", "inc_digits"] };
        var w = ToyWorld.Build(other["w"], 11, options);
        foreach (var h in w.HeldOut)
        {
            var mine = fx.World.HeldOut.Single(x => x.Name == h.Name);
            Assert.Equal(File.ReadAllText(mine.TrainFile), File.ReadAllText(h.TrainFile));
            Assert.Equal(File.ReadAllText(mine.TestFile), File.ReadAllText(h.TestFile));
        }
        Assert.Equal(File.ReadAllText(fx.World.Pool.Single(m => m.Name == "inc_digits").TrainFile),
            File.ReadAllText(w.Pool.Single(m => m.Name == "inc_digits").TrainFile));
    }

    [Fact]
    public void Held_out_inputs_were_never_seen_in_module_training()
    {
        var seen = fx.World.Pool.SelectMany(m => ExampleFile.Load(m.TrainFile)).Select(e => e.Input).ToHashSet();
        foreach (var h in fx.World.HeldOut)
            Assert.All(ExampleFile.Load(h.TestFile).Concat(ExampleFile.Load(h.TrainFile)), e => Assert.DoesNotContain(e.Input, seen));
    }
}

public sealed class ToyWorldBuildTests
{
    private static readonly ToyWorldOptions Fast = TinyWorldFixture.Tiny with
    {
        BaseSteps = 2, ModuleSteps = 1, TestExamples = 4, PoolTasks = ["shift_letters", "mirror_letters", "inc_digits"],
    };

    private static List<string> Leftovers(string parent) => Directory.EnumerateDirectories(parent).Select(Path.GetFileName).ToList()!;

    [Fact]
    public void An_interrupted_build_leaves_no_world()
    {
        using var dir = new Fixtures.TempDir();
        var progress = new SyncProgress<string>(p =>
        {
            if (p.StartsWith("module mirror_letters: exact match", StringComparison.Ordinal)) throw new InvalidOperationException("stop");
        });
        Assert.Throws<InvalidOperationException>(() => ToyWorld.Build(dir["world"], 1, Fast, progress));
        Assert.Empty(Leftovers(dir.Path));

        using var cts = new CancellationTokenSource();
        var cancel = new SyncProgress<string>(p => { if (p.StartsWith("base: copy", StringComparison.Ordinal)) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => ToyWorld.Build(dir["world"], 1, Fast, cancel, cts.Token));
        Assert.Empty(Leftovers(dir.Path));
    }

    [Fact]
    public void A_killed_build_is_cleaned_up_and_another_seed_replaces_the_world()
    {
        using var dir = new Fixtures.TempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, ".world.build-0123", "base")); // what a killed process leaves
        var first = ToyWorld.Build(dir["world"], 1, Fast);
        Assert.Equal(["world"], Leftovers(dir.Path));
        Assert.Equal(1, first.Seed);

        var second = ToyWorld.Build(dir["world"], 2, Fast);
        Assert.False(second.FromCache);
        Assert.Equal(2, ToyWorld.Load(dir["world"]).Seed);
        Assert.Equal(["world"], Leftovers(dir.Path));
        Assert.True(ToyWorld.Build(dir["world"], 2, Fast).FromCache);
        Assert.False(ToyWorld.Build(dir["world"], 2, Fast with { TestExamples = 5 }).FromCache); // other options: rebuilt
    }

    [Fact]
    public void A_world_missing_a_file_is_rebuilt()
    {
        using var dir = new Fixtures.TempDir();
        var w = ToyWorld.Build(dir["world"], 1, Fast);
        File.Delete(w.HeldOut[0].TestFile);
        Assert.False(ToyWorld.Build(dir["world"], 1, Fast).FromCache);
        Assert.True(File.Exists(w.HeldOut[0].TestFile));
    }

    [Fact]
    public void A_folder_that_is_not_a_world_is_never_replaced()
    {
        using var dir = new Fixtures.TempDir();
        Directory.CreateDirectory(dir["mine"]);
        File.WriteAllText(Path.Combine(dir["mine"], "notes.txt"), "keep me");
        var e = Assert.Throws<IOException>(() => ToyWorld.Build(dir["mine"], 1, Fast));
        Assert.Contains("refusing", e.Message);
        Assert.Equal("keep me", File.ReadAllText(Path.Combine(dir["mine"], "notes.txt")));
    }

    [Fact]
    public void Options_must_keep_the_modules_the_held_out_tasks_need()
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<ArgumentException>(() => ToyWorld.Build(dir["w"], 1, Fast with { PoolTasks = ["shift_letters"] }));
        Assert.Contains("mirror_letters", e.Message);
    }
}
