using System.Text.Json.Nodes;
using Xunit;

namespace LoraHub.Cli.Tests.CommandLine;

/// <summary>The `lorahub` command's contract: verbs, flags, JSON shapes, exit codes, one-line errors.</summary>
public sealed class CliContractTests
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    private static readonly string[] ThreeModules = ["--module", Fixtures.Adapter(0), "--module", Fixtures.Adapter(1), "--module", Fixtures.Adapter(2)];

    private static string ExamplesFile(Fixtures.TempDir dir, string outputKey = "output")
    {
        var lines = Cases.Select(c => new JsonObject { ["input"] = c!["input_text"]!.GetValue<string>(), [outputKey] = c["target_text"]!.GetValue<string>() }.ToJsonString());
        var path = dir["examples.jsonl"];
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void Score_of_the_lorahub_mix_matches_hugging_face_per_example_and_adds_the_l1_term()
    {
        using var dir = new Fixtures.TempDir();
        var r = CliProcess.Run(["score", "--base", Fixtures.TinyT5, "--examples", ExamplesFile(dir, "target"), .. ThreeModules, "--weights", "0.5,-0.3,1.2", "--format", "json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = r.Json;
        var losses = json["examples"]!.AsArray().Select(e => e!["loss"]!.GetValue<double>()).ToArray();
        var expected = Cases.Select(c => c!["loss"]!["lorahub"]!.GetValue<double>()).ToArray();
        Assert.Equal(expected.Length, losses.Length);
        for (var i = 0; i < losses.Length; i++) Assert.InRange(Math.Abs(losses[i] - expected[i]), 0, 1e-4);
        Assert.InRange(Math.Abs(json["loss"]!.GetValue<double>() - expected.Average()), 0, 1e-4);
        var l1 = 0.05 * (0.5 + 0.3 + 1.2) / 3;
        Assert.InRange(Math.Abs(json["l1"]!.GetValue<double>() - l1), 0, 1e-12);
        Assert.InRange(Math.Abs(json["objective"]!.GetValue<double>() - (json["loss"]!.GetValue<double>() + l1)), 0, 1e-9);
    }

    [Fact]
    public void Score_of_the_base_model_has_no_l1_and_one_module_means_weight_one()
    {
        using var dir = new Fixtures.TempDir();
        var examples = ExamplesFile(dir);
        var baseRun = CliProcess.Run("score", "--base", Fixtures.TinyT5, "--examples", examples, "--format", "json");
        Assert.True(baseRun.ExitCode == 0, baseRun.Stderr);
        Assert.Equal(0.0, baseRun.Json["l1"]!.GetValue<double>());
        Assert.InRange(Math.Abs(baseRun.Json["loss"]!.GetValue<double>() - Cases.Average(c => c!["loss"]!["base"]!.GetValue<double>())), 0, 1e-4);

        var one = CliProcess.Run("score", "--base", Fixtures.TinyT5, "--examples", examples, "--module", Fixtures.Adapter(1), "--format", "json");
        Assert.True(one.ExitCode == 0, one.Stderr);
        Assert.InRange(Math.Abs(one.Json["loss"]!.GetValue<double>() - Cases.Average(c => c!["loss"]!["lora_1"]!.GetValue<double>())), 0, 1e-4);
        Assert.InRange(Math.Abs(one.Json["l1"]!.GetValue<double>() - 0.05), 0, 1e-12);
    }

    [Fact]
    public void Score_accepts_the_reference_files_context_and_completion_keys()
    {
        using var dir = new Fixtures.TempDir();
        var path = dir["ref.jsonl"];
        File.WriteAllLines(path, Cases.Select(c => new JsonObject { ["context"] = c!["input_text"]!.GetValue<string>(), ["completion"] = c["target_text"]!.GetValue<string>() }.ToJsonString()));
        var r = CliProcess.Run("score", "--base", Fixtures.TinyT5, "--examples", path, "--format", "json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.InRange(Math.Abs(r.Json["loss"]!.GetValue<double>() - Cases.Average(c => c!["loss"]!["base"]!.GetValue<double>())), 0, 1e-4);
    }

    [Fact]
    public void Tokenize_prints_ids_ending_with_eos_and_pieces()
    {
        var r = CliProcess.Run("tokenize", "--model", Fixtures.TinyT5, "--text", Cases[0]!["input_text"]!.GetValue<string>(), "--format", "json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var ids = r.Json["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        Assert.Equal(Cases[0]!["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(), ids);
        Assert.Equal(ids.Length, r.Json["pieces"]!.AsArray().Count);
        Assert.Equal("</s>", r.Json["pieces"]!.AsArray()[^1]!.GetValue<string>());
    }

    [Fact]
    public void Generate_gives_hugging_face_greedy_tokens_for_the_lorahub_mix()
    {
        var c = Cases[1]!;
        var r = CliProcess.Run(["generate", "--base", Fixtures.TinyT5, .. ThreeModules, "--weights", "0.5,-0.3,1.2",
            "--input", c["input_text"]!.GetValue<string>(), "--max-new-tokens", "8", "--format", "json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var ids = r.Json["token_ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        var expected = c["greedy_lorahub"]!["new_tokens"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        // HF's 8 steps never stop at EOS; ours stops after EOS, so compare up to and including the first EOS.
        var cut = Array.IndexOf(expected, 1) is var e and >= 0 ? e + 1 : expected.Length;
        Assert.Equal(expected[..cut], ids);
        Assert.False(string.IsNullOrEmpty(r.Json["text"]!.GetValue<string>()));
    }

    [Fact]
    public void A_linear_composition_on_disk_scores_its_recorded_loss_and_has_the_cat_layout()
    {
        using var dir = new Fixtures.TempDir();
        var examples = ExamplesFile(dir);
        var compose = CliProcess.Run("compose", "--base", Fixtures.TinyT5, "--modules", Path.Combine(Fixtures.T5, "adapters"), "--examples", examples,
            "--out", dir["linear"], "--merge", "linear", "--budget", "6", "--format", "json");
        Assert.True(compose.ExitCode == 0, compose.Stderr);
        Assert.Equal("linear", compose.Json["merge"]!.GetValue<string>());
        var best = compose.Json["best"]!;
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["linear"], "adapter_config.json")))!;
        Assert.Equal(12, config["r"]!.GetValue<int>()); // rank Σ r_i = 3 × 4
        var score = CliProcess.Run("score", "--base", Fixtures.TinyT5, "--examples", examples, "--module", dir["linear"], "--format", "json");
        Assert.True(score.ExitCode == 0, score.Stderr);
        Assert.InRange(Math.Abs(score.Json["loss"]!.GetValue<double>() - best["loss"]!.GetValue<double>()), 0, 1e-5);
        // The objective differs only by the L1 term: 0.05 · mean|w| in lorahub.json, 0.05 · 1 for the single saved adapter.
        Assert.InRange(Math.Abs(score.Json["objective"]!.GetValue<double>() - 0.05 - (best["objective"]!.GetValue<double>() - best["l1"]!.GetValue<double>())), 0, 1e-5);
    }

    public static TheoryData<string, string[]> BadInvocations() => new()
    {
        { "examples file does not exist", ["score", "--base", Fixtures.TinyT5, "--examples", "/nonexistent/x.jsonl"] },
        { "3 values for 1 modules", ["score", "--base", Fixtures.TinyT5, "--examples", "EXAMPLES", "--module", Fixtures.Adapter(0), "--weights", "1,2,3"] },
        { "'abc' is not a number", ["score", "--base", Fixtures.TinyT5, "--examples", "EXAMPLES", "--module", Fixtures.Adapter(0), "--weights", "abc"] },
        { "--weights w1,...,w2", ["score", "--base", Fixtures.TinyT5, "--examples", "EXAMPLES", "--module", Fixtures.Adapter(0), "--module", Fixtures.Adapter(1)] },
        { "no config.json", ["generate", "--base", "/tmp", "--input", "x"] },
        { "--max-new-tokens must be at least 1", ["generate", "--base", Fixtures.TinyT5, "--input", "x", "--max-new-tokens", "0"] },
        { "--base", ["score", "--examples", "EXAMPLES"] },
    };

    [Theory]
    [MemberData(nameof(BadInvocations))]
    public void Bad_invocations_fail_with_one_clear_line_on_stderr(string expectedFragment, string[] args)
    {
        using var dir = new Fixtures.TempDir();
        var examples = ExamplesFile(dir);
        var r = CliProcess.Run(args.Select(a => a == "EXAMPLES" ? examples : a).ToArray());
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("lorahub: error: ", lines[0]);
        Assert.Contains(expectedFragment, lines[0]);
        Assert.Equal("", r.Stdout.Trim());
    }
}
