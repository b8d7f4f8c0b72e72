using System.Text.Json.Nodes;
using Xunit;

namespace LoraHub.Core.Tests.CommandLine;

/// <summary>The same `lorahub` score / generate / tokenize contract on a decoder-only (Llama) model, chosen from config.json.</summary>
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
}
