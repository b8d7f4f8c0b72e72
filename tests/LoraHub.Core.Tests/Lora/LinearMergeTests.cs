using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tests.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Lora;

/// <summary>The linear merge: exactly Σ w_i s_i B_i A_i, stored as PEFT's "cat" layout of rank Σ r_i.</summary>
[Collection("tiny-t5")]
public sealed class LinearMergeTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static readonly double[] W = [0.5, -0.3, 1.2];
    private static List<TokenizedExample> Examples => Cases.Select(c => new TokenizedExample(
        c!["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
        c["labels"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray())).ToList();

    /// <summary>The reference: a second copy of the model whose Linear weights get the dense delta added.</summary>
    private double[] DenseReferenceLosses()
    {
        using var model = ModelLoader.LoadSeq2Seq(Fixtures.TinyT5);
        using (no_grad())
        {
            var parameters = model.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var path in fx.Modules.SelectMany(m => m.Layers.Keys).Distinct())
            {
                var weight = parameters[path + ".weight"];
                for (var i = 0; i < fx.Modules.Count; i++)
                {
                    var (a, b) = fx.Modules[i].Layers[path];
                    weight.add_(matmul(b, a) * (W[i] * fx.Modules[i].Config.Scale));
                }
            }
        }
        return Seq2Seq.ExampleLosses(model, Examples);
    }

    [Fact]
    public void The_linear_merge_equals_the_weighted_sum_of_dense_deltas()
    {
        var expected = DenseReferenceLosses();
        using var composed = new ComposedModel(fx.Model, fx.Modules, MergeMode.Linear);
        composed.SetWeights(W);
        var losses = Seq2Seq.ExampleLosses(fx.Model, Examples);
        composed.Clear();
        for (var i = 0; i < losses.Length; i++) Assert.InRange(Math.Abs(losses[i] - expected[i]), 0, 1e-4);
        // And it is not the paper's merge, whose cross terms give other numbers.
        Assert.True(Math.Abs(losses[0] - Cases[0]!["loss"]!["lorahub"]!.GetValue<double>()) > 1e-3);
    }

    [Fact]
    public void A_linear_adapter_on_disk_has_the_cat_layout_and_scores_the_same()
    {
        using var dir = new Fixtures.TempDir();
        using var composed = new ComposedModel(fx.Model, fx.Modules, MergeMode.Linear);
        Assert.Equal(12, composed.Rank);
        composed.SetWeights(W);
        var inMemory = Seq2Seq.ExampleLosses(fx.Model, Examples);
        using (var merged = composed.Merge(W)) merged.Save(dir["linear"], "tiny-t5");
        composed.Clear();

        var header = SafeTensors.ReadHeader(Path.Combine(dir["linear"], "adapter_model.safetensors"));
        Assert.Equal(new long[] { 12, 64 }, header["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"].Shape);
        Assert.Equal(new long[] { 64, 12 }, header["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight"].Shape);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["linear"], "adapter_config.json")))!;
        Assert.Equal(12, config["r"]!.GetValue<int>());
        Assert.Equal(12, config["lora_alpha"]!.GetValue<int>());
        // Rows 4..7 of the cat A are module 1's A times its weight.
        var a = SafeTensors.Load(Path.Combine(dir["linear"], "adapter_model.safetensors"))["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"];
        var expectedRows = fx.Modules[1].Layers["encoder.block.0.layer.0.SelfAttention.q"].A * W[1];
        Assert.True(a[4..8].allclose(expectedRows, rtol: 1e-6, atol: 1e-7));

        using var saved = LoraModule.Load(dir["linear"]);
        using var again = new ComposedModel(fx.Model, [saved]);
        again.SetWeights([1.0]);
        var reloaded = Seq2Seq.ExampleLosses(fx.Model, Examples);
        again.Clear();
        for (var i = 0; i < reloaded.Length; i++) Assert.InRange(Math.Abs(reloaded[i] - inMemory[i]), 0, 1e-5);
    }

    [Fact]
    public void Batched_linear_candidates_match_one_at_a_time()
    {
        using var composed = new ComposedModel(fx.Model, fx.Modules, MergeMode.Linear);
        var objective = new LoraHub.Core.Composition.FewShotObjective(composed, Examples);
        double[][] candidates = [W, [1, 0, 0], [0.2, 0.9, -1.1]];
        var batched = objective.EvaluateMany(candidates);
        for (var i = 0; i < candidates.Length; i++)
            Assert.InRange(Math.Abs(batched[i].Value - objective.Evaluate(candidates[i]).Value), 0, 1e-5);
        composed.Clear();
    }
}
