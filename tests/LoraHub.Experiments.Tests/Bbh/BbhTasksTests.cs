using LoraHub.Experiments.Bbh;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Experiments.Tests.Bbh;

/// <summary>The shipped BBH files, the split, the ICL prompt, the token counts and the mean/best arithmetic (no model).</summary>
public sealed class BbhTasksTests
{
    /// <summary>data/bbh as copied next to the lorahub program (and so next to the tests).</summary>
    public static string Shipped => Path.Combine(AppContext.BaseDirectory, BbhTasks.ShippedFolderName);

    private static T5Tokenizer Tokenizer => T5Tokenizer.Load(Path.Combine(Fixtures.T5, "spiece.model"));

    [Fact]
    public void All_27_tasks_ship_with_their_licence()
    {
        var found = BbhTasks.Discover(Shipped).Select(t => t.Name).ToList();
        Assert.Equal(BbhTasks.Names.Order(StringComparer.Ordinal), found);
        Assert.Equal(27, found.Count);
        Assert.Contains("MIT License", File.ReadAllText(Path.Combine(Shipped, "LICENSE.BIG-Bench-Hard")));
        foreach (var t in BbhTasks.Discover(Shipped)) Assert.True(BbhTasks.Load(t, 5).Scored().Count >= 100, t.Name);
    }

    [Fact]
    public void The_first_shots_are_composed_from_and_only_the_rest_is_scored()
    {
        var task = BbhTasks.Resolve(Shipped, "navigate").Single();
        var raw = JsonNode.Parse(File.ReadAllText(task.Path))!["examples"]!.AsArray();
        var split = BbhTasks.Load(task, 5);
        Assert.Equal(raw.Count, split.All.Count);
        Assert.Equal(raw.Take(5).Select(e => e!["input"]!.GetValue<string>()), split.FewShot.Select(e => e.Input));
        Assert.Equal(raw.Skip(5).Select(e => e!["input"]!.GetValue<string>()), split.Scored().Select(e => e.Input));
        Assert.Equal(raw.Skip(5).Take(3).Select(e => e!["target"]!.GetValue<string>()), split.Scored(3).Select(e => e.Output));
        Assert.Equal(5, split.FirstScored);
        Assert.Equal(raw.Count - 5, split.Scored(100_000).Count);
    }

    [Fact]
    public void Tasks_resolve_in_the_order_given_and_unknown_names_list_close_valid_ones()
    {
        Assert.Equal(["web_of_lies", "navigate"], BbhTasks.Resolve(Shipped, " web_of_lies , navigate.json").Select(t => t.Name));
        Assert.Equal(27, BbhTasks.Resolve(Shipped, "all").Count);
        var e = Assert.Throws<BbhException>(() => BbhTasks.Resolve(Shipped, "navigate,boolean_expresions"));
        Assert.Contains("unknown BBH task 'boolean_expresions'", e.Message);
        Assert.Contains("boolean_expressions", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Throws<BbhException>(() => BbhTasks.Resolve(Shipped, "navigate,navigate"));
        Assert.Throws<BbhException>(() => BbhTasks.Resolve(Path.Combine(Shipped, "nope"), "all"));
    }

    [Fact]
    public void A_file_without_examples_or_with_too_few_is_refused()
    {
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir["empty.json"], """{"canary": "x", "examples": []}""");
        File.WriteAllText(dir["none.json"], """{"canary": "x"}""");
        File.WriteAllText(dir["five.json"], new JsonObject
        {
            ["examples"] = new JsonArray(Enumerable.Range(0, 5).Select(i => (JsonNode)new JsonObject { ["input"] = $"q{i}", ["target"] = $"a{i}" }).ToArray()),
        }.ToJsonString());
        var tasks = BbhTasks.Discover(dir.Path).ToDictionary(t => t.Name);
        Assert.Contains("holds no examples", Assert.Throws<ExampleFormatException>(() => BbhTasks.Load(tasks["empty"], 5)).Message);
        Assert.Contains("not a BBH task file", Assert.Throws<ExampleFormatException>(() => BbhTasks.Load(tasks["none"], 5)).Message);
        Assert.Contains("needs at least 6", Assert.Throws<ExampleFormatException>(() => BbhTasks.Load(tasks["five"], 5)).Message);
        Assert.Single(BbhTasks.Load(tasks["five"], 4).Scored());
    }

    [Fact]
    public void The_icl_prompt_puts_each_shot_with_its_answer_before_the_input()
    {
        var prompt = BbhPrompt.FewShot([new Example("Q1?", "A1"), new Example("Q2?", "A2")], "Q3?");
        Assert.Equal("Q1?\nAnswer: A1\n\nQ2?\nAnswer: A2\n\nQ3?\nAnswer:", prompt);
    }

    [Fact]
    public void Token_counts_of_a_task_match_an_independent_count_with_the_real_t5_tokenizer()
    {
        // Independent of BbhTasks and BbhPrompt: the file read as raw JSON, the prompt written out by hand.
        var path = Path.Combine(Shipped, "sports_understanding.json");
        var raw = JsonNode.Parse(File.ReadAllText(path))!["examples"]!.AsArray().Select(e => (In: e!["input"]!.GetValue<string>(), Out: e["target"]!.GetValue<string>())).ToList();
        var tokenizer = Tokenizer;
        var shotText = "";
        for (var i = 0; i < 5; i++) shotText += raw[i].In + "\nAnswer: " + raw[i].Out + "\n\n";
        double plain = 0, icl = 0;
        foreach (var (input, _) in raw.Skip(5))
        {
            plain += tokenizer.Encode(input).Ids.Count;
            icl += tokenizer.Encode(shotText + input + "\nAnswer:").Ids.Count;
        }
        plain /= raw.Count - 5;
        icl /= raw.Count - 5;

        var count = BbhTokenCounter.Count(tokenizer, BbhTasks.Load(BbhTasks.Resolve(Shipped, "sports_understanding")[0], 5));
        Assert.Equal(raw.Count - 5, count.Examples);
        Assert.Equal(plain, count.LoraHub, 9);
        Assert.Equal(icl, count.Icl, 9);

        // The first scored input, checked piece by piece: T5's tokenizer with the EOS the model reads.
        var first = tokenizer.Encode(raw[5].In);
        Assert.Equal("</s>", first.Pieces[^1]);
        Assert.Equal(raw[5].In.Replace(" ", "", StringComparison.Ordinal), string.Concat(first.Pieces.SkipLast(1)).Replace("\u2581", "", StringComparison.Ordinal));
    }

    [Fact]
    public void The_default_generation_limit_covers_every_target()
    {
        var tokenizer = Tokenizer;
        var defaults = new BbhSettings();
        foreach (var task in BbhTasks.Discover(Shipped))
        {
            var longestTarget = BbhTasks.Load(task, defaults.Shots).All.Max(e => tokenizer.Encode(e.Output).Ids.Count);
            Assert.True(longestTarget <= defaults.MaxNewTokens, $"{task.Name}: a target of {longestTarget} tokens");
        }
    }

    [Fact]
    public void Mean_and_best_come_from_the_per_seed_scores_and_the_average_row_from_the_tasks()
    {
        static BbhSeedResult Seed(int seed, int correct) => new() { Seed = seed, Score = new BbhScore { Correct = correct, Total = 4, ExactMatch = correct / 4.0 } };
        var lorahub = BbhLoraHubResult.Of([Seed(1, 1), Seed(2, 3), Seed(3, 2)]);
        Assert.Equal(0.5, lorahub.Mean, 12);
        Assert.Equal(0.75, lorahub.Best);
        Assert.Equal(2, lorahub.BestSeed);

        var rows = new[]
        {
            new BbhRow { Task = "a", ZeroShot = 0.2, Icl = 0.4, LoraHubMean = 0.3, LoraHubBest = 0.5, TokensLoraHub = 10, TokensIcl = 60 },
            new BbhRow { Task = "b", ZeroShot = 0.4, Icl = 0.2, LoraHubMean = 0.5, LoraHubBest = 0.7, TokensLoraHub = 30, TokensIcl = 100 },
        };
        var avg = BbhRow.Average(rows);
        Assert.Equal(0.3, avg.ZeroShot, 12);
        Assert.Equal(0.3, avg.Icl!.Value, 12);
        Assert.Equal(0.4, avg.LoraHubMean, 12);
        Assert.Equal(0.6, avg.LoraHubBest, 12);
        Assert.Equal(80, avg.TokensIcl, 12);
        Assert.Null(BbhRow.Average([rows[0] with { Icl = null }, rows[1]]).Icl);
    }

    [Fact]
    public void Settings_refuse_a_pool_smaller_than_select_and_bad_seeds()
    {
        var e = Assert.Throws<CompositionException>(() => new BbhSettings { Select = 20 }.Validate(3));
        Assert.Contains("--select 20 is larger than the module pool (3 modules)", e.Message);
        Assert.Throws<BbhException>(() => new BbhSettings { Seeds = [] }.Validate(30));
        Assert.Throws<BbhException>(() => new BbhSettings { Seeds = [1, 1] }.Validate(30));
        Assert.Throws<BbhException>(() => new BbhSettings { Limit = 0 }.Validate(30));
        new BbhSettings().Validate(20);
    }
}
