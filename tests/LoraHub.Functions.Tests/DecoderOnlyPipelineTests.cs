using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Triggers;
using LoraHub.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>A hub of a decoder-only base (tiny-llama) and its PEFT CAUSAL_LM modules, in its own Azurite.</summary>
public sealed class LlamaFunctionsHub : FunctionsHub
{
    public const string LlamaModel = "tiny-llama";
    public static readonly string[] LlamaModules = ["llama_lora_0", "llama_lora_1", "llama_lora_2"];
    public static string LlamaRoot => Path.Combine(AppContext.BaseDirectory, "fixtures", "llama");

    /// <summary>Five examples in the shape the adapters know (question, then "A:").</summary>
    public static readonly IReadOnlyList<Example> LlamaExamples =
    [
        new("Q: What is the capital of France?\nA:", "Paris"), new("Q: What is the capital of Italy?\nA:", "Rome"),
        new("Q: What is the capital of Spain?\nA:", "Madrid"), new("Q: What is the capital of Japan?\nA:", "Tokyo"),
        new("Q: What is the capital of Peru?\nA:", "Lima"),
    ];

    protected override async Task PublishHubAsync()
    {
        await Store.PublishFolderAsync(HubArea.Models, LlamaModel, Path.Combine(LlamaRoot, "tiny-llama"), "config.json");
        for (var i = 0; i < LlamaModules.Length; i++)
            await Store.PublishFolderAsync(HubArea.Modules, LlamaModules[i], Path.Combine(LlamaRoot, "adapters", $"lora_{i}"), "adapter_config.json");
    }
}

[CollectionDefinition(Name)]
public sealed class LlamaFunctionsCollection : ICollectionFixture<LlamaFunctionsHub>
{
    public const string Name = "functions-llama";
}

/// <summary>The Functions pipeline on a decoder-only base: the family comes from the hub model's config.json.</summary>
[Collection(LlamaFunctionsCollection.Name)]
public sealed class DecoderOnlyPipelineTests(LlamaFunctionsHub hub)
{
    [Fact]
    public async Task Composes_a_decoder_only_hub_end_to_end_into_a_causal_lm_adapter_that_scores_its_recorded_best()
    {
        var request = FunctionsHub.Request("llama-e2e", budget: 8, examples: LlamaFunctionsHub.LlamaExamples, modules: LlamaFunctionsHub.LlamaModules)
            with { BaseModel = LlamaFunctionsHub.LlamaModel };
        var instance = await hub.RunAsync(request, "llama-e2e-run");
        Assert.Equal(OrchestrationRuntimeStatus.Completed, instance.RuntimeStatus);
        var outcome = instance.ReadOutputAs<CompositionOutcome>()!;
        Assert.Equal(8, outcome.Evaluations);

        var adapter = await hub.Store.MaterializeAsync(HubArea.Adapters, "llama-e2e");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter.LocalPath, "adapter_config.json")))!;
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());
        Assert.Equal(["q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));
        var record = CompositionRecord.Load(Path.Combine(adapter.LocalPath, "lorahub.json"));
        Assert.Equal(LlamaFunctionsHub.LlamaModel, record.BaseModel);
        Assert.Equal(outcome.Weights, record.Weights);

        // Scored alone (weight 1) with the decoder-only convention, the adapter gives the recorded best loss.
        var baseFolder = Path.Combine(LlamaFunctionsHub.LlamaRoot, "tiny-llama");
        using var model = ModelLoader.Load(baseFolder);
        using var module = LoraModule.Load(adapter.LocalPath);
        using var composed = new ComposedModel(model, [module]);
        composed.SetWeights([1.0]);
        var tokenized = ExampleTokenizer.Tokenize(model.Format, ModelLoader.LoadTokenizer(baseFolder), LlamaFunctionsHub.LlamaExamples, out _);
        Assert.InRange(Math.Abs(model.ExampleLosses(tokenized).Average() - record.Best!.Loss), 0, 1e-4);

        // POST /api/adapters/{task}/generate continues after the prompt, as the adapter does here.
        var input = LlamaFunctionsHub.LlamaExamples[0].Input;
        var body = JsonSerializer.Serialize(new { inputs = new[] { input }, max_new_tokens = 4 });
        var api = hub.Services.GetRequiredService<HubApi>();
        var (status, generated) = HttpApiTests.Read(await api.Generate(HttpApiTests.Request("POST", "/api/adapters/llama-e2e/generate", body), "llama-e2e", default));
        Assert.Equal(200, status);
        var tokenizer = ModelLoader.LoadTokenizer(baseFolder);
        var expected = tokenizer.Decode(model.Greedy(model.Format.PromptIds(tokenizer, input), 4));
        Assert.Equal(expected, generated!["outputs"]![0]!.GetValue<string>());
    }
}
