using LoraHub.Experiments.Bbh;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Cli.Tests.Bbh;

/// <summary>`lorahub bbh` as a user runs it: the protocol end to end on tiny-t5 with the 3-adapter pool, resume, bad input.</summary>
public sealed class BbhCliTests
{
    private static readonly string Pool = Path.Combine(Fixtures.T5, "adapters");
    private const string TaskA = "boolean_expressions";
    private const string TaskB = "sports_understanding";

    private static string[] Quick(string outDir, string tasks, int budget = 4) =>
    [
        "bbh", "--base", Fixtures.TinyT5, "--modules", Pool, "--tasks", tasks, "--limit", "3", "--seeds", "1,2", "--select", "2",
        "--budget", budget.ToString(System.Globalization.CultureInfo.InvariantCulture), "--max-new-tokens", "4", "--out", outDir,
    ];

    private static JsonObject Read(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();

    private static void AssertOneLineError(CliProcess.Result r, string expected)
    {
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, r.Stderr);
        Assert.StartsWith("lorahub: error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
    }

    [Fact]
    public void The_protocol_runs_end_to_end_and_a_finished_task_is_not_redone()
    {
        using var dir = new Fixtures.TempDir();
        var outDir = dir["out"];

        // Run 1: task A only.
        var first = CliProcess.Run(Quick(outDir, TaskA));
        Assert.True(first.ExitCode == 0, first.Stderr);
        var fileA = Path.Combine(outDir, "tasks", TaskA + ".json");
        var bytesA = File.ReadAllBytes(fileA);
        var writtenA = File.GetLastWriteTimeUtc(fileA);
        Assert.Contains($"[1/1] {TaskA}: seed 1 composed", first.Stderr);
        Assert.Contains($"[1/1] {TaskA}: seed 2 lorahub", first.Stderr);

        // Run 2: A and B; A is finished and must be skipped, not redone.
        var second = CliProcess.Run(Quick(outDir, $"{TaskA},{TaskB}"));
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Contains($"[1/2] {TaskA}: skipped", second.Stderr);
        Assert.DoesNotContain($"{TaskA}: zero-shot", second.Stderr);
        Assert.DoesNotContain($"{TaskA}: seed", second.Stderr);
        Assert.Contains($"[2/2] {TaskB}: seed 2 lorahub", second.Stderr);
        Assert.Equal(bytesA, File.ReadAllBytes(fileA));
        Assert.Equal(writtenA, File.GetLastWriteTimeUtc(fileA));

        // Each task file: the split, the baselines, the seeds with their module subsets, mean and best.
        var pool = ModuleRef.Scan(Pool);
        foreach (var task in new[] { TaskA, TaskB })
        {
            var t = Read(Path.Combine(outDir, "tasks", task + ".json"));
            var examples = JsonNode.Parse(File.ReadAllText(Path.Combine(Path.Combine(AppContext.BaseDirectory, BbhTasks.ShippedFolderName), task + ".json")))!["examples"]!.AsArray();
            Assert.Equal(examples.Count, t["examples"]!.GetValue<int>());
            Assert.Equal([0, 1, 2, 3, 4], t["few_shot_indices"]!.AsArray().Select(x => x!.GetValue<int>()));
            Assert.Equal(5, t["first_scored"]!.GetValue<int>());
            Assert.Equal(3, t["scored"]!.GetValue<int>());
            var scores = new List<JsonNode> { t["zero_shot"]!, t["icl"]! };
            var seeds = t["lorahub"]!["seeds"]!.AsArray();
            Assert.Equal([1, 2], seeds.Select(s => s!["seed"]!.GetValue<int>()));
            foreach (var s in seeds)
            {
                var expected = ModuleSelector.Random(pool, 2, s!["seed"]!.GetValue<int>()).Select(m => m.Name);
                Assert.Equal(expected, s["modules"]!.AsArray().Select(m => m!.GetValue<string>()));
                Assert.Equal(2, s["weights"]!.AsArray().Count);
                Assert.InRange(s["evaluations"]!.GetValue<int>(), 1, 4);
                scores.Add(s["score"]!);
            }
            Assert.NotEqual(
                seeds[0]!["modules"]!.AsArray().Select(m => m!.GetValue<string>()),
                seeds[1]!["modules"]!.AsArray().Select(m => m!.GetValue<string>())); // the seeds drew different subsets
            foreach (var score in scores)
            {
                // Only examples 5, 6, 7 are scored: never a shot.
                var predictions = score["predictions"]!.AsArray();
                Assert.Equal([5, 6, 7], predictions.Select(p => p!["index"]!.GetValue<int>()));
                foreach (var p in predictions)
                    Assert.Equal(examples[p!["index"]!.GetValue<int>()]!["target"]!.GetValue<string>(), p["target"]!.GetValue<string>());
                var correct = predictions.Count(p => p!["correct"]!.GetValue<bool>());
                Assert.Equal(correct, score["correct"]!.GetValue<int>());
                Assert.Equal(correct / 3.0, score["exact_match"]!.GetValue<double>(), 12);
            }
            var perSeed = seeds.Select(s => s!["score"]!["exact_match"]!.GetValue<double>()).ToList();
            Assert.Equal(perSeed.Average(), t["lorahub"]!["mean"]!.GetValue<double>(), 12);
            Assert.Equal(perSeed.Max(), t["lorahub"]!["best"]!.GetValue<double>());
            Assert.True(t["tokens"]!["icl"]!.GetValue<double>() > 5 * t["tokens"]!["lorahub"]!.GetValue<double>());
        }

        // results.json: a row per task in the order asked, the average row over them, the protocol.
        var results = Read(Path.Combine(outDir, "results.json"));
        Assert.True(results["complete"]!.GetValue<bool>());
        var rows = results["tasks"]!.AsArray();
        Assert.Equal([TaskA, TaskB], rows.Select(r => r!["task"]!.GetValue<string>()));
        foreach (var key in new[] { "zero_shot", "icl", "lorahub_mean", "lorahub_best", "tokens_lorahub", "tokens_icl" })
            Assert.Equal(rows.Average(r => r![key]!.GetValue<double>()), results["average"]![key]!.GetValue<double>(), 12);
        Assert.Equal([1, 2], results["protocol"]!["seeds"]!.AsArray().Select(x => x!.GetValue<int>()));
        Assert.Equal(3, results["protocol"]!["pool"]!.AsArray().Count);

        // results.md: the paper's table with a row per task and the average; results.png: a PNG.
        var md = File.ReadAllLines(Path.Combine(outDir, "results.md"));
        Assert.Contains("| Task | Zero-shot | ICL | LoraHub avg | LoraHub best | Scored | Tokens LoraHub | Tokens ICL |", md);
        Assert.Single(md, l => l.StartsWith($"| {TaskA} |", StringComparison.Ordinal));
        Assert.Single(md, l => l.StartsWith($"| {TaskB} |", StringComparison.Ordinal));
        Assert.Single(md, l => l.StartsWith("| **Average** |", StringComparison.Ordinal));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(outDir, "results.png")).Take(4));

        // Run 3: everything finished: nothing is redone and the model is not even needed.
        var third = CliProcess.Run(Quick(outDir, $"{TaskA},{TaskB}"));
        Assert.True(third.ExitCode == 0, third.Stderr);
        Assert.Contains($"[2/2] {TaskB}: skipped", third.Stderr);
        Assert.Equal(bytesA, File.ReadAllBytes(fileA));

        // Other settings on the same --out are refused, and nothing changes.
        var other = CliProcess.Run(Quick(outDir, TaskA, budget: 5));
        AssertOneLineError(other, "was made with other settings (budget: 4 -> 5)");
        Assert.Equal(writtenA, File.GetLastWriteTimeUtc(fileA));
    }

    [Fact]
    public void Tokens_only_prints_the_tokens_per_example_of_every_task_and_the_average()
    {
        var r = CliProcess.Run("bbh", "--tokens-only", "--base", Fixtures.TinyT5, "--format", "json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var tasks = r.Json["tasks"]!.AsArray();
        Assert.Equal(27, tasks.Count);
        Assert.Equal(tasks.Average(t => t!["lorahub"]!.GetValue<double>()), r.Json["average"]!["lorahub"]!.GetValue<double>(), 2);
        var sports = tasks.Single(t => t!["task"]!.GetValue<string>() == TaskB)!;
        var split = BbhTasks.Load(BbhTasks.Resolve(Path.Combine(AppContext.BaseDirectory, BbhTasks.ShippedFolderName), TaskB)[0], 5);
        var count = BbhTokenCounter.Count(T5Tokenizer.Load(Path.Combine(Fixtures.T5, "spiece.model")), split);
        Assert.Equal(count.LoraHub, sports["lorahub"]!.GetValue<double>(), 3);
        Assert.Equal(count.Icl, sports["icl"]!.GetValue<double>(), 3);

        var text = CliProcess.Run("bbh", "--tokens-only", "--tokenizer", Path.Combine(Fixtures.T5, "spiece.model"), "--tasks", $"{TaskA},{TaskB}");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains(text.Stdout.Split('\n'), l => l.StartsWith("average", StringComparison.Ordinal));
    }

    public static TheoryData<string, string[], string> BadInputs() => new()
    {
        { "unknown task", ["--tasks", "navigate,boolean_expresions"], "unknown BBH task 'boolean_expresions'" },
        { "pool smaller than select", ["--tasks", "navigate", "--select", "4"], "--select 4 is larger than the module pool" },
        { "bad seeds", ["--tasks", "navigate", "--seeds", "1,x"], "--seeds: 'x' is not an integer" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_one_clear_line_and_writes_nothing(string name, string[] args, string expected)
    {
        using var dir = new Fixtures.TempDir();
        var r = CliProcess.Run(["bbh", "--base", Fixtures.TinyT5, "--modules", Pool, "--out", dir["out"], .. args]);
        AssertOneLineError(r, expected);
        Assert.False(Directory.Exists(dir["out"]), name);
        if (name == "unknown task") Assert.Contains("boolean_expressions", r.Stderr); // the error names valid tasks
    }

    [Fact]
    public void A_task_file_without_examples_or_too_few_for_the_shots_is_refused_before_anything_is_written()
    {
        using var dir = new Fixtures.TempDir();
        Directory.CreateDirectory(dir["bbh"]);
        File.WriteAllText(Path.Combine(dir["bbh"], "empty_task.json"), """{"canary": "x", "examples": []}""");
        File.WriteAllText(Path.Combine(dir["bbh"], "tiny_task.json"), """{"examples": [{"input": "1", "target": "a"}, {"input": "2", "target": "b"}]}""");
        string[] common = ["bbh", "--base", Fixtures.TinyT5, "--modules", Pool, "--select", "2", "--bbh-dir", dir["bbh"], "--out", dir["out"]];

        var empty = CliProcess.Run([.. common, "--tasks", "empty_task"]);
        AssertOneLineError(empty, "the BBH task file holds no examples");
        var tiny = CliProcess.Run([.. common, "--tasks", "tiny_task"]);
        AssertOneLineError(tiny, "has 2 example(s); --shots 5 needs at least 6");
        Assert.False(Directory.Exists(dir["out"]));
    }
}
