using LoraHub.Core.Lora;
using LoraHub.Testing;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Lora;

/// <summary>
/// Modules that target different layers: where a module has no LoRA pair its share of the merge is zero, in both merges,
/// and every layer gets its own slice of the laid-out modules (a layer only one module targets is that module's alone).
/// </summary>
[Collection("tiny-t5")]
public sealed class ComposedModelTargetsTests(TinyT5Fixture fx)
{
    private static readonly double[] W = [0.7, -1.3];

    /// <summary>Module 1 of the fixture with only its q layers, saved and loaded as a PEFT folder.</summary>
    private static LoraModule QOnly(LoraModule full, string dir)
    {
        var layers = full.Layers.Where(kv => kv.Key.EndsWith(".q", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.NotEmpty(layers);
        Assert.True(layers.Count < full.Layers.Count);
        new MergedAdapter(full.Rank, full.Config.LoraAlpha, full.Config.UseRslora, layers).Save(dir, "tiny-t5");
        return LoraModule.Load(dir, "q-only");
    }

    [Fact]
    public void The_lorahub_merge_adds_only_the_modules_that_target_a_layer()
    {
        using var dir = new Fixtures.TempDir();
        using var qOnly = QOnly(fx.Modules[1], dir["q-only"]);
        var modules = new[] { fx.Modules[0], qOnly };
        Assert.Equal(fx.Modules[0].Config.Scale, qOnly.Config.Scale);
        using var composed = new ComposedModel(fx.Model, modules);
        try
        {
            using var merged = composed.Merge(W);
            Assert.Equal(fx.Modules[0].Layers.Keys.Order(StringComparer.Ordinal), merged.Layers.Keys.Order(StringComparer.Ordinal));
            foreach (var (path, (a, b)) in merged.Layers)
            {
                var (a0, b0) = fx.Modules[0].Layers[path];
                var expectedA = a0 * W[0];
                var expectedB = b0 * W[0];
                if (qOnly.Layers.TryGetValue(path, out var ab1))
                {
                    expectedA += ab1.A * W[1];
                    expectedB += ab1.B * W[1];
                }
                Assert.True(allclose(a, expectedA, 1e-6, 1e-7), path);
                Assert.True(allclose(b, expectedB, 1e-6, 1e-7), path);
            }
        }
        finally
        {
            composed.Clear();
        }
    }

    [Fact]
    public void The_linear_merge_gives_zero_rows_to_a_module_without_the_layer()
    {
        using var dir = new Fixtures.TempDir();
        using var qOnly = QOnly(fx.Modules[1], dir["q-only"]);
        using var composed = new ComposedModel(fx.Model, [fx.Modules[0], qOnly], MergeMode.Linear);
        try
        {
            using var merged = composed.Merge(W);
            var r = fx.Modules[0].Rank;
            foreach (var (path, (a, b)) in merged.Layers)
            {
                // Exactly Σ w_i s_i B_i A_i over the modules that have the layer.
                var (a0, b0) = fx.Modules[0].Layers[path];
                var expected = matmul(b0, a0) * (W[0] * fx.Modules[0].Config.Scale);
                if (qOnly.Layers.TryGetValue(path, out var ab1))
                    expected += matmul(ab1.B, ab1.A) * (W[1] * qOnly.Config.Scale);
                else
                    Assert.Equal(0, a[r..].abs().sum().item<float>() + b[.., r..].abs().sum().item<float>());
                Assert.True(allclose(matmul(b, a) * (merged.LoraAlpha / merged.Rank), expected, 1e-5, 1e-6), path);
            }
        }
        finally
        {
            composed.Clear();
        }
    }

    [Fact]
    public void Every_candidate_needs_one_weight_per_module()
    {
        using var composed = new ComposedModel(fx.Model, fx.Modules);
        var e = Assert.Throws<ArgumentException>(() => composed.SetCandidates([[1.0, 0.0, 0.5], [1.0, 0.0]]));
        Assert.Equal("2 weights given for 3 modules", e.Message);
        Assert.Throws<ArgumentException>(() => composed.SetCandidates([]));
    }
}
