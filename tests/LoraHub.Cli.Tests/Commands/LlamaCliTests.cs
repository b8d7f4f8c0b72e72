using System.Text.Json.Nodes;
using Xunit;

namespace LoraHub.Cli.Tests.CommandLine;

/// <summary>The same `lorahub` contract (score, generate, tokenize, compose, eval, train) on a decoder-only (Llama) model, chosen from config.json.</summary>
public sealed class LlamaCliTests
{
    private static string Llama => Path.Combine(Fixtures.Root, "llama");
    private static string Model => Path.Combine(Llama, "tiny-llama");
    private static string Adapter(int i) => Path.Combine(Llama, "adapters", $"lora_{i}");
    private static readonly JsonArray Cases = JsonNode.Parse(File.ReadAllText(Path.Combine(Llama, "golden-visible.json")))!["cases"]!.AsArray();

    private static string ExamplesFile(Fixtures.TempDir dir)
    {
        var path = dir["examples.jsonl"];
        File.WriteAllLines(path, Cases.Select(c => new JsonObject { ["input"] = c!["prompt"]!.GetValue<string>(), ["output"] = c["completion"]!.GetValue<string>() }.ToJsonString()));
        return path;
    }

    [Theory]
    [InlineData("base")]
    [InlineData("lorahub")]
    public void Score_matches_hugging_face_per_example(string mix)
    {
        using var dir = new Fixtures.TempDir();
        string[] modules = mix == "base" ? [] : ["--module", Adapter(0), "--module", Adapter(1), "--module", Adapter(2), "--weights", "0.5,-0.3,1.2"];
        var r = CliProcess.Run(["score", "--base", Model, "--examples", ExamplesFile(dir), .. modules, "--format", "json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var losses = r.Json["examples"]!.AsArray().Select(e => e!["loss"]!.GetValue<double>()).ToArray();
        var expected = Cases.Select(c => c!["loss"]![mix]!.GetValue<double>()).ToArray();
        Assert.Equal(expected.Length, losses.Length);
        for (var i = 0; i < losses.Length; i++) Assert.InRange(Math.Abs(losses[i] - expected[i]), 0, 1e-4);
    }

    [Fact]
    public void Generate_continues_after_the_prompt_with_hugging_face_greedy_tokens()
    {
        var c = Cases[0]!;
        var r = CliProcess.Run("generate", "--base", Model, "--module", Adapter(0), "--module", Adapter(1), "--module", Adapter(2),
            "--weights", "0.5,-0.3,1.2", "--input", c["prompt"]!.GetValue<string>(), "--max-new-tokens", "8", "--format", "json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var ids = r.Json["token_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        var expected = c["greedy_lorahub"]!["new_tokens"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        var cut = Array.IndexOf(expected, 2) is var e and >= 0 ? e + 1 : expected.Length;
        Assert.Equal(expected[..cut], ids);
    }

    [Fact]
    public void Tokenize_uses_the_models_sentencepiece_bpe()
    {
        var c = Cases[0]!;
        var r = CliProcess.Run("tokenize", "--model", Model, "--text", c["prompt"]!.GetValue<string>(), "--format", "json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var ids = r.Json["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        Assert.Equal(new[] { 1 }.Concat(c["prompt_ids"]!.AsArray().Select(x => x!.GetValue<int>())).ToArray(), ids);
    }

    [Fact]
    public void Compose_then_score_and_eval_the_composed_adapter()
    {
        using var dir = new Fixtures.TempDir();
        var examples = ExamplesFile(dir);
        var compose = CliProcess.Run("compose", "--base", Model, "--modules", Path.Combine(Llama, "adapters"), "--examples", examples,
            "--out", dir["composed"], "--budget", "8", "--seed", "4", "--format", "json");
        Assert.True(compose.ExitCode == 0, compose.Stderr);
        Assert.Equal(3, compose.Json["modules"]!.AsArray().Count);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["composed"], "adapter_config.json")))!;
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());

        // The saved adapter scores the recorded best loss.
        var score = CliProcess.Run("score", "--base", Model, "--examples", examples, "--module", dir["composed"], "--format", "json");
        Assert.True(score.ExitCode == 0, score.Stderr);
        Assert.InRange(Math.Abs(score.Json["loss"]!.GetValue<double>() - compose.Json["best"]!["loss"]!.GetValue<double>()), 0, 1e-4);

        // eval generates after the prompt with the adapter and writes one prediction per example.
        var eval = CliProcess.Run("eval", "--base", Model, "--adapter", dir["composed"], "--data", examples,
            "--predictions", dir["predictions.jsonl"], "--max-new-tokens", "4", "--format", "json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        Assert.Equal(Cases.Count, File.ReadAllLines(dir["predictions.jsonl"]).Length);
        Assert.Equal(Cases.Count, eval.Json["total"]!.GetValue<int>());
    }

    [Fact]
    public void Train_writes_a_causal_lm_module_on_q_proj_and_v_proj()
    {
        using var dir = new Fixtures.TempDir();
        var r = CliProcess.Run("train", "--base", Model, "--data", ExamplesFile(dir), "--out", dir["module"], "--rank", "2", "--steps", "5", "--batch-size", "3");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["module"], "adapter_config.json")))!;
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());
        Assert.Equal(["q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(2, config["r"]!.GetValue<int>());
        var score = CliProcess.Run("score", "--base", Model, "--examples", ExamplesFile(dir), "--module", dir["module"], "--format", "json");
        Assert.True(score.ExitCode == 0, score.Stderr);
    }

    [Fact]
    public void Bbh_runs_zero_shot_icl_and_lorahub_on_a_decoder_only_base()
    {
        using var dir = new Fixtures.TempDir();
        var r = CliProcess.Run("bbh", "--base", Model, "--modules", Path.Combine(Llama, "adapters"), "--out", dir["bbh"], "--tasks", "boolean_expressions",
            "--seeds", "1", "--select", "3", "--budget", "3", "--limit", "3", "--max-new-tokens", "3", "--format", "json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["bbh"], "results.json")))!;
        Assert.Equal("tiny-llama", results["protocol"]!["base_model"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(dir["bbh"], "results.png")));
    }

    [Fact]
    public void Encoder_decoder_modules_on_a_decoder_only_base_are_a_clear_error()
    {
        using var dir = new Fixtures.TempDir();
        var r = CliProcess.Run("compose", "--base", Model, "--modules", Path.Combine(Fixtures.T5, "adapters"), "--examples", ExamplesFile(dir),
            "--out", dir["composed"], "--budget", "3");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("does not fit the base model", r.Stderr);
        Assert.Contains("SelfAttention.q' does not exist", r.Stderr);
        Assert.False(Directory.Exists(dir["composed"]));
    }
}
