using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Training;
using Xunit;
using static LoraHub.Core.Tests.Llama.LlamaFiles;

namespace LoraHub.Core.Tests.Llama;

/// <summary>
/// The whole LoraHub pipeline on a decoder-only base (tiny-llama and its PEFT CAUSAL_LM adapters): objective,
/// composition, saved adapter, training and prediction, with the family chosen from config.json alone.
/// Each test loads its own model: the composition wraps the model's layers, which the golden fixture also does.
/// </summary>
public sealed class LlamaPipelineTests : IDisposable
{
    private readonly IAdaptableModel model = ModelLoader.Load(TinyLlama);
    private readonly LoraHub.Core.Tokenization.ITextTokenizer tokenizer = ModelLoader.LoadTokenizer(TinyLlama);
    private readonly string scratch = Directory.CreateTempSubdirectory("lorahub-llama-").FullName;

    private static readonly JsonArray Cases = Golden["cases"]!.AsArray();
    private static IReadOnlyList<Example> GoldenExamples =>
        Cases.Select(c => new Example(c!["prompt"]!.GetValue<string>(), c["completion"]!.GetValue<string>())).ToList();

    /// <summary>Five examples of a task none of the adapters was trained on.</summary>
    private static readonly IReadOnlyList<Example> FewShot =
    [
        new("Q: opposite of hot?\nA:", "cold"), new("Q: opposite of up?\nA:", "down"), new("Q: opposite of left?\nA:", "right"),
        new("Q: opposite of yes?\nA:", "no"), new("Q: opposite of black?\nA:", "white"),
    ];

    private static IReadOnlyList<ModuleRef> Pool => Enumerable.Range(0, 3).Select(i => new ModuleRef($"lora_{i}", Adapter(i))).ToList();

    public void Dispose()
    {
        model.Dispose();
        Directory.Delete(scratch, recursive: true);
    }

    [Fact]
    public void The_family_and_its_few_shot_format_come_from_config_json()
    {
        Assert.IsAssignableFrom<ICausalLanguageModel>(model);
        Assert.Same(FewShotFormat.DecoderOnly, model.Format);
        Assert.Same(FewShotFormat.DecoderOnly, ModelLoader.FormatOf(TinyLlama));
        Assert.Equal("CAUSAL_LM", model.PeftTaskType);
        Assert.Equal(["q_proj", "v_proj"], model.DefaultLoraTargets);
    }

    [Fact]
    public void The_objective_of_the_golden_mix_equals_hugging_face_losses()
    {
        var modules = Enumerable.Range(0, 3).Select(i => LoraModule.Load(Adapter(i))).ToList();
        using var composed = new ComposedModel(model, modules);
        var examples = ExampleTokenizer.Tokenize(model.Format, tokenizer, GoldenExamples, out var warnings);
        Assert.Empty(warnings);
        var objective = new FewShotObjective(composed, examples);
        double[] w = [0.5, -0.3, 1.2];
        var value = objective.Evaluate(w);
        var expected = Cases.Select(c => c!["loss"]!["lorahub"]!.GetValue<double>()).ToArray();
        for (var i = 0; i < expected.Length; i++) Assert.InRange(Math.Abs(value.ExampleLosses[i] - expected[i]), 0, 1e-4);
        Assert.Equal(0.05 * w.Average(Math.Abs), value.L1, 12);
        Assert.Equal(value.Loss + value.L1, value.Value, 12);

        // Candidates evaluated together (LoraLinear's grouped mode) score as they do one at a time.
        IReadOnlyList<IReadOnlyList<double>> candidates = [w, [1, 0, 0], [0, 0, 0], [-1.5, 1.5, 0.2]];
        var together = objective.EvaluateMany(candidates);
        for (var c = 0; c < candidates.Count; c++)
            Assert.InRange(Math.Abs(together[c].Loss - objective.Evaluate(candidates[c]).Loss), 0, 1e-5);
        var baseLoss = Cases.Select(c => c!["loss"]!["base"]!.GetValue<double>()).Average();
        Assert.InRange(Math.Abs(together[2].Loss - baseLoss), 0, 1e-4);
        foreach (var m in modules) m.Dispose();
    }

    [Fact]
    public void A_composition_is_deterministic_and_its_saved_adapter_reproduces_the_best_loss()
    {
        var settings = new CompositionSettings { Budget = 12, K = null, Seed = 3 };
        var first = new Composer(model, tokenizer).Compose(Pool, FewShot, settings, TinyLlama);
        var second = new Composer(model, tokenizer).Compose(Pool, FewShot, settings, TinyLlama);
        using (second.Adapter) Assert.Equal(first.Record.Weights, second.Record.Weights);
        Assert.Equal(12, first.Record.History.Count);
        Assert.True(first.Record.Best!.Objective <= first.Record.History[0].Objective);

        var folder = Path.Combine(scratch, "composed");
        using (first.Adapter) first.Adapter.Save(folder, TinyLlama);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "adapter_config.json")))!;
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());
        Assert.Equal(["q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));

        // The merged adapter alone (weight 1) gives the best candidate's few-shot loss.
        using var composedAdapter = LoraModule.Load(folder);
        using var alone = new ComposedModel(model, [composedAdapter]);
        var tokenized = ExampleTokenizer.Tokenize(model.Format, tokenizer, FewShot, out _);
        var loss = new FewShotObjective(alone, tokenized).Evaluate([1.0]).Loss;
        Assert.InRange(Math.Abs(loss - first.Record.Best.Loss), 0, 1e-4);
    }

    [Fact]
    public void The_linear_merge_composes_a_decoder_only_model_too()
    {
        var settings = new CompositionSettings { Budget = 6, K = 2, Seed = 1, Merge = "linear" };
        var result = new Composer(model, tokenizer).Compose(Pool, FewShot, settings, TinyLlama);
        using (result.Adapter)
        {
            Assert.Equal(8, result.Record.Rank); // two rank-4 modules side by side
            var folder = Path.Combine(scratch, "linear");
            result.Adapter.Save(folder, TinyLlama);
            using var saved = LoraModule.Load(folder);
            using var alone = new ComposedModel(model, [saved]);
            var loss = new FewShotObjective(alone, ExampleTokenizer.Tokenize(model.Format, tokenizer, FewShot, out _)).Evaluate([1.0]).Loss;
            Assert.InRange(Math.Abs(loss - result.Record.Best!.Loss), 0, 1e-4);
        }
    }

    [Fact]
    public void Training_adapts_q_proj_and_v_proj_by_default_and_lowers_the_loss()
    {
        var examples = TrainingSupport.Tokenize(model, tokenizer, FewShot);
        var options = new LoraTrainingOptions { Rank = 4, Alpha = 8, Steps = 30, BatchSize = 5, LearningRate = 1e-2, Seed = 2 };
        using var result = LoraTrainer.Train(model, examples, options);
        Assert.Equal(["q_proj", "v_proj"], result.Options.Targets);
        Assert.Equal(4, result.Adapter.Layers.Count); // 2 layers x (q_proj, v_proj)
        Assert.Equal("CAUSAL_LM", result.Adapter.TaskType);
        var before = model.ExampleLosses(examples).Average();
        Assert.True(result.FinalLoss < before * 0.8, $"loss {before:F4} -> {result.FinalLoss:F4}");
        // The base model is left clean.
        Assert.InRange(Math.Abs(model.ExampleLosses(examples).Average() - before), 0, 1e-6);
    }

    [Fact]
    public void Predictions_continue_after_the_prompt_and_equal_greedy_one_by_one()
    {
        var predictions = Predictor.Predict(model, tokenizer, GoldenExamples, maxNewTokens: 5, batchSize: 3);
        var causal = (ICausalLanguageModel)model;
        for (var i = 0; i < GoldenExamples.Count; i++)
        {
            var ids = CausalLm.Greedy(causal, CausalExample.Prompt(tokenizer, GoldenExamples[i].Input), 5);
            Assert.Equal(tokenizer.Decode(ids), predictions[i].Output);
        }
        // Hugging Face's greedy tokens for the first case (no eos among its first 5).
        var expected = Ids(Cases[0]!["greedy_base"]!["new_tokens"]!).Take(5);
        Assert.Equal(tokenizer.Decode(expected), predictions[0].Output);
    }
}
