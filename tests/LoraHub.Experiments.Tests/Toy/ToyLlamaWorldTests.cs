using LoraHub.Core;
using System.Diagnostics;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Experiments.Toy;
using Xunit;

namespace LoraHub.Experiments.Tests.Toy;

/// <summary>A decoder-only toy world at toy scale (seconds), built once for the tests that only read it.</summary>
public sealed class TinyLlamaWorldFixture : IDisposable
{
    public static readonly ToyWorldOptions Tiny = TinyWorldFixture.Tiny with
    {
        Family = ToyWorld.Llama, Layers = 2, KeyValueHeads = 2, TieWordEmbeddings = true,
    };

    public Fixtures.TempDir Temp { get; } = new();
    public string Directory => Temp["world"];
    public List<string> Progress { get; } = [];
    public ToyWorld World { get; }

    public TinyLlamaWorldFixture() => World = ToyWorld.Build(Directory, 11, Tiny, new SyncProgress<string>(Progress.Add));

    public void Dispose() => Temp.Dispose();
}

public sealed class ToyLlamaWorldTests(TinyLlamaWorldFixture fx) : IClassFixture<TinyLlamaWorldFixture>
{
    [Fact]
    public void Build_writes_a_decoder_only_world_under_its_own_version()
    {
        var w = fx.World;
        Assert.Equal(ToyWorld.Llama, w.Family);
        Assert.False(w.FromCache);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(fx.Directory, ToyWorld.WorldFile)))!;
        Assert.Equal("toyhub-llama-2", json["version"]!.GetValue<string>());
        Assert.Equal(ToyWorld.LlamaVersion, ToyWorld.VersionOf(ToyWorld.Llama));
        Assert.Equal("llama", json["family"]!.GetValue<string>());
        Assert.Equal("=", json["input_suffix"]!.GetValue<string>());
        Assert.Equal(["q_proj", "v_proj"], json["modules"]!["targets"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal(ToyTasks.DecoderOnlyTokenizer.Tokens, json["vocabulary"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal(2, json["base"]!["layers"]!.GetValue<int>());
        Assert.Equal(["inc_digits", "mirror_letters", "shift_letters", "swap_digits"], w.Pool.Select(m => m.Name).Order());
        Assert.Equal(["retrieval_mirror_letters", "shift_letters_inc_digits", "mirror_letters_inc_digits"], w.HeldOut.Select(h => h.Name));
        Assert.Contains(fx.Progress, p => p.StartsWith("base: copy exact match", StringComparison.Ordinal));
        Assert.Equal(["world"], Directory.EnumerateDirectories(fx.Temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Every_input_ends_with_the_delimiter_and_outputs_are_the_t5_worlds()
    {
        foreach (var file in fx.World.Pool.SelectMany(m => new[] { m.TrainFile, m.TestFile }).Concat(fx.World.HeldOut.SelectMany(h => new[] { h.TrainFile, h.TestFile })))
        {
            var examples = ExampleFile.Load(file);
            Assert.All(examples, e =>
            {
                Assert.EndsWith(ToyTasks.InputEnd, e.Input);
                Assert.DoesNotContain(ToyTasks.InputEnd, e.Output);
                Assert.Equal(e.Input.Length - 1, e.Output.Length);
            });
        }
        // The same draws as the T5 world of this seed: only the delimiter differs.
        var task = ToyTasks.Combine("c", ToyTasks.PoolTask("shift_letters"), ToyTasks.PoolTask("inc_digits"));
        var held = ExampleFile.Load(fx.World.HeldOut[1].TrainFile);
        Assert.All(held, e => Assert.Equal(task.Apply(e.Input[..^1]), e.Output));
    }

    [Fact]
    public void The_base_loads_as_a_decoder_only_model_and_the_modules_are_causal_lm_on_q_proj_v_proj_with_one_frozen_A()
    {
        using var model = ModelLoader.Load(fx.World.BaseDirectory);
        var causal = Assert.IsType<LlamaForCausalLM>(model);
        Assert.True(ModelLoader.IsCausal(fx.World.BaseDirectory));
        Assert.Equal(2, causal.Config.NumHiddenLayers);
        Assert.Equal(2, causal.Config.NumKeyValueHeads);
        Assert.True(causal.Config.TieWordEmbeddings);
        Assert.Equal(3, causal.BosTokenId);
        Assert.Equal([1], causal.EosTokenIds);
        var tokenizer = Assert.IsType<CharTokenizer>(ModelLoader.LoadTokenizer(fx.World.BaseDirectory));
        Assert.Equal(ToyTasks.DecoderOnlyTokenizer.Tokens, tokenizer.Tokens);

        var modules = fx.World.Pool.Select(m => LoraModule.Load(m.ModuleDirectory)).ToList();
        try
        {
            foreach (var m in modules)
            {
                m.ValidateAgainst(model.Module);
                Assert.Equal(16, m.Rank);
                var config = JsonNode.Parse(File.ReadAllText(Path.Combine(fx.World.ModuleDirectory(m.Name), LoraModule.ConfigFile)))!;
                Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());
                Assert.Equal(["q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(x => x!.GetValue<string>()).Order());
            }
            Assert.Equal(4, modules[0].Layers.Count); // q_proj and v_proj of 2 layers
            Assert.All(modules[0].Layers.Keys, k => Assert.Matches(@"^model\.layers\.\d\.self_attn\.(q|v)_proj$", k));
            foreach (var path in modules[0].Layers.Keys)
                Assert.All(modules.Skip(1), m => Assert.True(m.Layers[path].A.Same(modules[0].Layers[path].A), $"{m.Name} {path}"));
        }
        finally
        {
            foreach (var m in modules) m.Dispose();
        }
    }

    [Fact]
    public void A_second_build_is_the_cache_and_the_same_seed_builds_the_same_world()
    {
        var again = ToyWorld.Build(fx.Directory, 11, TinyLlamaWorldFixture.Tiny);
        Assert.True(again.FromCache);
        Assert.Equal(ToyWorld.Llama, again.Family);

        using var other = new Fixtures.TempDir();
        var twin = ToyWorld.Build(other["w"], 11, TinyLlamaWorldFixture.Tiny);
        Assert.False(twin.FromCache);
        static byte[] Bytes(string dir, string file) => File.ReadAllBytes(Path.Combine(dir, file));
        Assert.Equal(Bytes(fx.World.BaseDirectory, "model.safetensors"), Bytes(twin.BaseDirectory, "model.safetensors"));
        Assert.Equal(Bytes(fx.World.BaseDirectory, "config.json"), Bytes(twin.BaseDirectory, "config.json"));
        foreach (var m in fx.World.Pool)
        {
            Assert.Equal(Bytes(m.ModuleDirectory, LoraModule.SafetensorsFile), Bytes(twin.ModuleDirectory(m.Name), LoraModule.SafetensorsFile));
            Assert.Equal(File.ReadAllText(m.TrainFile), File.ReadAllText(twin.Pool.Single(p => p.Name == m.Name).TrainFile));
        }
        Assert.Equal(fx.World.HeldOut.Select(h => h.OracleExactMatch), twin.HeldOut.Select(h => h.OracleExactMatch));
    }

    [Fact]
    public void The_demo_runs_end_to_end_on_the_decoder_only_world()
    {
        var report = ToyDemo.Run(fx.World, new ToyDemoSettings { Seeds = [1], Optimizers = ["cobyla-parallel"], Merges = ["lorahub", "linear"], Budget = 4 });
        // Per task: base, uniform, best single, two hand-set ceilings, LoraHub per merge.
        Assert.Equal(3 * 7, report.Rows.Count);
        Assert.All(report.Rows, r => Assert.InRange(r.MeanExactMatch, 0, 1));
        Assert.Equal(2 * 3, report.Rows.Count(r => r.MedianObjective is { } o && double.IsFinite(o)));
        Assert.Equal(ToyWorld.Llama, report.Family);
        Assert.True(ToyDemoChart.RenderPng(report).Length > 1000);
    }

    [Fact]
    public void A_world_of_one_family_is_never_replaced_by_the_other()
    {
        var e = Assert.Throws<IOException>(() => ToyWorld.Build(fx.Directory, 11, TinyWorldFixture.Tiny));
        Assert.Contains("llama", e.Message);
        Assert.True(ToyWorld.Build(fx.Directory, 11, TinyLlamaWorldFixture.Tiny).FromCache);
    }

    [Fact]
    public void The_demo_command_refuses_an_unknown_family_and_a_world_of_the_other_family()
    {
        var bad = CliProcess.Run("demo", "--family", "gpt", "--world", fx.Directory);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--family", bad.Stderr);
        var other = CliProcess.Run("demo", "--world", fx.Directory); // the default family (t5) on a llama world
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("refusing", other.Stderr);
        Assert.True(File.Exists(Path.Combine(fx.World.BaseDirectory, "model.safetensors")));
    }
}
