using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using Xunit;

namespace LoraHub.Core.Tests.Lora;

/// <summary>
/// ComposedModel.Load owns its modules and keeps only their laid-out copy: the modules' own tensors are released as
/// each layer is laid out (one copy in memory, not two), and the composition computes exactly as one built from
/// modules the caller keeps.
/// </summary>
[Collection("tiny-t5")]
public sealed class ComposedModelLoadTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static List<TokenizedExample> Examples => Cases.Select(c => new TokenizedExample(
        c!["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
        c["labels"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray())).ToList();

    [Theory]
    [InlineData(MergeMode.LoraHub)]
    [InlineData(MergeMode.Linear)]
    public void A_loaded_composition_releases_the_module_tensors_and_scores_like_one_over_kept_modules(MergeMode mode)
    {
        using var model = ModelLoader.LoadSeq2Seq(Fixtures.TinyT5);
        using var loaded = ComposedModel.Load(model, Enumerable.Range(0, 3).Select(Fixtures.Adapter).ToList(), mode, ["x", "y", "z"]);
        Assert.All(loaded.Modules, m => Assert.Empty(m.Layers));
        Assert.Equal(["x", "y", "z"], loaded.Modules.Select(m => m.Name));
        Assert.Equal(fx.Modules.SelectMany(m => m.Layers.Keys).Distinct().Order(StringComparer.Ordinal), loaded.TargetPaths);

        using var kept = new ComposedModel(fx.Model, fx.Modules, mode);
        try
        {
            foreach (var weights in new[] { new[] { 0.5, -0.3, 1.2 }, new[] { 0.0, 1.0, 0.0 } })
            {
                loaded.SetWeights(weights);
                kept.SetWeights(weights);
                Assert.Equal(Seq2Seq.ExampleLosses(fx.Model, Examples), Seq2Seq.ExampleLosses(model, Examples));
                using var fromLoaded = loaded.Merge(weights);
                using var fromKept = kept.Merge(weights);
                foreach (var (path, (a, b)) in fromKept.Layers)
                {
                    Assert.True(a.Same(fromLoaded.Layers[path].A), path);
                    Assert.True(b.Same(fromLoaded.Layers[path].B), path);
                }
            }
            // The modules the caller passed in still hold their tensors.
            Assert.All(fx.Modules, m => Assert.NotEmpty(m.Layers));
        }
        finally
        {
            kept.Clear();
        }
    }
}
