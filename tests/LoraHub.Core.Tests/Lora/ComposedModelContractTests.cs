using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tests.Models;
using Xunit;

namespace LoraHub.Core.Tests.Lora;

/// <summary>
/// A composition attached to tiny-t5: what it checks when built and when given weights, which layers it wraps, and that
/// clearing it gives the base model's numbers back.
/// </summary>
[Collection("tiny-t5")]
public sealed class ComposedModelContractTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static List<TokenizedExample> Examples => Cases.Select(c => new TokenizedExample(
        c!["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
        c["labels"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray())).ToList();
    private static IReadOnlyList<string> Dirs => Enumerable.Range(0, 3).Select(Fixtures.Adapter).ToList();

    [Fact]
    public void Building_checks_the_module_list_and_names()
    {
        Assert.Contains("a composition needs at least one LoRA module", Assert.Throws<ArgumentException>(() => new ComposedModel(fx.Model, [])).Message);
        Assert.Contains("2 names for 3 module folders", Assert.Throws<ArgumentException>(() => ComposedModel.Load(fx.Model, Dirs, names: ["a", "b"])).Message);
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<LoraFormatException>(() => ComposedModel.Load(fx.Model, [Dirs[0], dir["missing"]]));
        Assert.Contains("missing", e.Message);

        using (var named = ComposedModel.Load(fx.Model, Dirs, MergeMode.Linear, ["x", "y", "z"]))
        {
            Assert.Equal(["x", "y", "z"], named.Modules.Select(m => m.Name));
            Assert.Equal((MergeMode.Linear, 12), (named.Mode, named.Rank));
        }
        using var byFolder = ComposedModel.Load(fx.Model, Dirs);
        Assert.Equal(["lora_0", "lora_1", "lora_2"], byFolder.Modules.Select(m => m.Name));
        Assert.Equal((MergeMode.LoraHub, 4), (byFolder.Mode, byFolder.Rank));
        Assert.Equal(fx.Modules.SelectMany(m => m.Layers.Keys).Distinct().Order(StringComparer.Ordinal), byFolder.TargetPaths);
    }

    [Fact]
    public void Weights_and_candidates_must_have_one_weight_per_module()
    {
        using var composed = new ComposedModel(fx.Model, fx.Modules);
        try
        {
            Assert.Equal("2 weights given for 3 modules", Assert.Throws<ArgumentException>(() => composed.SetWeights([1, 2])).Message);
            Assert.Equal("4 weights given for 3 modules", Assert.Throws<ArgumentException>(() => composed.Merge([1, 2, 3, 4])).Message);
            Assert.Equal("no candidates", Assert.Throws<ArgumentException>(() => composed.SetCandidates([])).Message);
            Assert.Throws<ArgumentException>(() => composed.SetCandidates([[1, 2, 3], [1, 2]]));
            Assert.Null(composed.Weights);
        }
        finally
        {
            composed.Clear();
        }
    }

    [Fact]
    public void Weights_are_recorded_candidates_are_not_and_clearing_gives_the_base_model_back()
    {
        fx.Use("base"); // the shared model may hold another test's adapter
        var baseLosses = Seq2Seq.ExampleLosses(fx.Model, Examples);
        using var composed = new ComposedModel(fx.Model, fx.Modules);
        try
        {
            composed.SetWeights([0.5, -0.3, 1.2]);
            Assert.Equal([0.5, -0.3, 1.2], composed.Weights);
            var adapted = Seq2Seq.ExampleLosses(fx.Model, Examples);
            Assert.True(Math.Abs(adapted[0] - baseLosses[0]) > 1e-3, "the adapter changes the model");
            Assert.Equal(Cases[0]!["loss"]!["lorahub"]!.GetValue<double>(), adapted[0], 1e-4);

            composed.SetCandidates([[1, 0, 0], [0, 1, 0]]);
            Assert.Null(composed.Weights);

            // All-zero weights compute like the base model, to rounding.
            composed.SetWeights([0, 0, 0]);
            var zero = Seq2Seq.ExampleLosses(fx.Model, Examples);
            for (var i = 0; i < zero.Length; i++) Assert.Equal(baseLosses[i], zero[i], 1e-5);

            composed.Clear();
            Assert.Null(composed.Weights);
            var cleared = Seq2Seq.ExampleLosses(fx.Model, Examples);
            Assert.Equal(baseLosses, cleared);
        }
        finally
        {
            composed.Clear();
        }
    }
}
