using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>lorahub.json as written and read: snake_case fields, defaults, non-finite numbers, and bad files named.</summary>
public sealed class CompositionRecordTests
{
    private static CompositionRecord Sample() => new()
    {
        BaseModel = "google/flan-t5-large",
        Merge = "linear",
        Modules = [new ModuleWeight("m1", "/pool/m1", 0.25), new ModuleWeight("m2", "/pool/m2", -1.5)],
        Weights = [0.25, -1.5],
        Rank = 16,
        Seed = 42,
        Selection = "loss",
        Optimizer = "cmaes",
        Budget = 40,
        L1Coefficient = 0.05,
        Bounds = [-1.5, 1.5],
        InitialStep = 0.5,
        Examples = 5,
        Best = new BestValue(7, 1.25, 0.04375, 1.29375),
        History = [new Trial(0, [0, 0], 2.0, 0, 2.0), new Trial(1, [1e20, 0], double.NaN, 2.5e18, double.PositiveInfinity)],
        Warnings = ["example 3: input has 3000 tokens, truncated to 2048"],
        Timings = new Timings(1.5, 2.5, 30.0, 1.25),
    };

    [Fact]
    public void A_new_record_has_the_format_tag_and_the_reference_defaults()
    {
        var r = new CompositionRecord();
        Assert.Equal("lorahub.net/composition@1", r.Format);
        Assert.Equal("lorahub", r.Merge);
        Assert.Equal("random", r.Selection);
        Assert.Equal(LoraHub.Core.Optimization.Optimizers.Default, r.Optimizer);
        Assert.Equal("", r.BaseModel);
        Assert.Empty(r.Modules);
        Assert.Empty(r.History);
        Assert.Null(r.Best);
    }

    [Fact]
    public void The_json_uses_snake_case_names_and_named_non_finite_numbers()
    {
        var json = JsonNode.Parse(Sample().ToJson())!.AsObject();
        Assert.Equal("lorahub.net/composition@1", json["format"]!.GetValue<string>());
        Assert.Equal("google/flan-t5-large", json["base_model"]!.GetValue<string>());
        Assert.Equal(0.05, json["l1_coefficient"]!.GetValue<double>());
        Assert.Equal(0.5, json["initial_step"]!.GetValue<double>());
        Assert.Equal(-1.5, json["modules"]![1]!["weight"]!.GetValue<double>());
        Assert.Equal(7, json["best"]!["evaluation"]!.GetValue<int>());
        Assert.Equal(30.0, json["timings"]!["search_seconds"]!.GetValue<double>());
        Assert.Equal(1.25, json["timings"]!["evaluations_per_second"]!.GetValue<double>());
        Assert.Equal("NaN", json["history"]![1]!["loss"]!.GetValue<string>());
        Assert.Equal("Infinity", json["history"]![1]!["objective"]!.GetValue<string>());
        Assert.Contains('\n', Sample().ToJson());
    }

    [Fact]
    public void A_written_record_loads_back_equal()
    {
        using var dir = new Fixtures.TempDir();
        var path = dir["lorahub.json"];
        var original = Sample();
        File.WriteAllText(path, original.ToJson());
        var loaded = CompositionRecord.Load(path);
        Assert.Equal(original.ToJson(), loaded.ToJson());
        Assert.Equal(original.Modules, loaded.Modules);
        Assert.Equal(original.Best, loaded.Best);
        Assert.True(double.IsNaN(loaded.History[1].Loss));
        Assert.Equal(double.PositiveInfinity, loaded.History[1].Objective);
        Assert.Equal([1e20, 0], loaded.History[1].Weights);
    }

    [Theory]
    [InlineData("{ not json", "not a composition record")]
    [InlineData("null", "empty composition record")]
    [InlineData("{\"rank\": \"sixteen\"}", "not a composition record")]
    public void A_bad_record_file_is_a_composition_error_naming_the_file(string text, string problem)
    {
        using var dir = new Fixtures.TempDir();
        var path = dir["lorahub.json"];
        File.WriteAllText(path, text);
        var e = Assert.Throws<CompositionException>(() => CompositionRecord.Load(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void Disposing_a_result_disposes_its_adapter()
    {
        var a = TorchSharp.torch.zeros(1, 2);
        var b = TorchSharp.torch.zeros(2, 1);
        var adapter = new LoraHub.Core.Lora.MergedAdapter(1, 1, false, new Dictionary<string, (TorchSharp.torch.Tensor, TorchSharp.torch.Tensor)> { ["x.q"] = (a, b) });
        new CompositionResult(Sample(), adapter).Dispose();
        Assert.True(a.IsInvalid);
        Assert.True(b.IsInvalid);
    }
}
