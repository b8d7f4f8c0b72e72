using LoraHub.Core;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Optimization;
using LoraHub.Experiments.Toy;
using Spectre.Console;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub demo`: builds (once, cached) the toy world — a tiny T5 (or, with --family llama, a tiny decoder-only
/// Llama) that only copies, a hub of 24 LoRA modules on per-token maps, held-out tasks — then composes each held-out
/// task from 5 examples with K = 20 modules and prints the table.
/// </summary>
internal static class DemoCommand
{
    public static string DefaultWorld => DefaultWorldOf(ToyWorld.T5);

    /// <summary>~/.cache/lorahub/{version}: each family has its own folder, so both worlds stay cached side by side.</summary>
    public static string DefaultWorldOf(string family) =>
        (family == ToyWorld.T5 ? Environment.GetEnvironmentVariable("LORAHUB_DEMO_WORLD") : null) // names the T5 world only
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "lorahub", ToyWorld.VersionOf(family));

    public static Command Create()
    {
        var family = new Option<string>("--family") { Description = "the base model's family: t5 (encoder-decoder) or llama (decoder-only)", DefaultValueFactory = _ => ToyWorld.T5 };
        var world = new Option<string?>("--world") { Description = "where the toy world is built and cached (default: ~/.cache/lorahub/<version of the family>)" };
        var worldSeed = new Option<int>("--world-seed") { Description = "seed of the toy world", DefaultValueFactory = _ => 0 };
        var seeds = new Option<string>("--seeds") { Description = "few-shot sets (and module orders) to compose from: 1,2,3 or 1..10", DefaultValueFactory = _ => "1,2,3,4,5" };
        var optimizers = new Option<string>("--optimizers") { Description = "optimizers to compare", DefaultValueFactory = _ => string.Join(",", new ToyDemoSettings().Optimizers) };
        var merges = new Option<string>("--merges") { Description = "merge modes to compare (lorahub, linear)", DefaultValueFactory = _ => "lorahub" };
        var budget = new Option<int>("--budget") { Description = "objective evaluations per composition", DefaultValueFactory = _ => 40 };
        var budgets = new Option<string?>("--budgets") { Description = "several budgets to compare, e.g. 10,20,40 (overrides --budget)" };
        var select = new Option<int?>("--select") { Description = "K modules per composition: the task's own plus random others (default 20, at most the pool)" };
        var output = new Option<string?>("--out") { Description = "folder for results.json and demo.png (default: WORLD/demo)" };
        var format = Common.Format();
        var command = new Command("demo", "Build the toy LoraHub world (cached) and show LoraHub composing held-out tasks from 5 examples.")
        {
            family, world, worldSeed, seeds, optimizers, merges, budget, budgets, select, output, format,
        };
        command.SetAction(CliErrors.Guard(parse =>
        {
            var settings = new ToyDemoSettings
            {
                Seeds = ParseSeeds(parse.GetValue(seeds)!),
                Optimizers = ParseList(parse.GetValue(optimizers)!, "--optimizers", s => Optimizers.Names.Contains(s) ? s : throw new UsageException($"--optimizers: unknown '{s}' (known: {string.Join(", ", Optimizers.Names)})")),
                Merges = ParseList(parse.GetValue(merges)!, "--merges", s => MergeModes.Names.Contains(s) ? s : throw new UsageException($"--merges: unknown '{s}' (known: {string.Join(", ", MergeModes.Names)})")),
                Budget = parse.GetValue(budget) is >= 1 and var b ? b : throw new UsageException("--budget must be at least 1"),
                Budgets = parse.GetValue(budgets) is { } list
                    ? ParseList(list, "--budgets", s => int.Parse(s, CultureInfo.InvariantCulture) is >= 1 and var v ? v : throw new UsageException("--budgets: every budget must be at least 1"))
                    : null,
                Select = parse.GetValue(select) is { } k ? (k >= 1 ? k : throw new UsageException("--select must be at least 1")) : 20,
            };
            var familyName = parse.GetValue(family)!;
            if (!ToyWorld.Families.Contains(familyName))
                throw new UsageException($"--family: unknown '{familyName}' (known: {string.Join(", ", ToyWorld.Families)})");
            var dir = parse.GetValue(world) ?? DefaultWorldOf(familyName);
            var log = new SyncProgress<string>(line => Console.Error.WriteLine($"lorahub: {line}"));
            var toy = ToyWorld.Build(dir, parse.GetValue(worldSeed), ToyWorldOptions.DefaultFor(familyName), log);
            Console.Error.WriteLine(toy.FromCache
                ? $"lorahub: toy world from cache: {toy.Directory}"
                : $"lorahub: built the toy world in {toy.Timings.Total:F0} s: {toy.Directory}");
            var report = ToyDemo.Run(toy, settings, log);

            var outDir = parse.GetValue(output) ?? Path.Combine(toy.Directory, "demo");
            Directory.CreateDirectory(outDir);
            var json = JsonSerializer.Serialize(report, CompositionRecord.Json);
            File.WriteAllText(Path.Combine(outDir, "results.json"), json);
            File.WriteAllBytes(Path.Combine(outDir, "demo.png"), ToyDemoChart.RenderPng(report));
            File.WriteAllText(Path.Combine(outDir, "results.md"), ToyDemo.Markdown(report));

            if (parse.GetValue(format) == "json")
            {
                Console.Out.WriteLine(json);
                return 0;
            }
            var label = toy.Family == ToyWorld.T5 ? "" : $" ({toy.Family}, decoder-only)";
            Console.WriteLine($"Toy world{label}: base copies {toy.BaseCopyExactMatch:P0} of strings; {toy.Pool.Count} modules: "
                + string.Join(", ", toy.Pool.Select(p => $"{p.Name} {p.ExactMatch:P0}")));
            foreach (var group in report.Rows.GroupBy(r => r.Task))
            {
                var first = group.First();
                var table = new Table().Title($"[bold]{Markup.Escape(group.Key)}[/] ({first.Kind}, exact match on 100 test examples)")
                    .AddColumns("method", $"mean over {settings.Seeds.Count} seeds", "best", "median objective", "rounds");
                foreach (var r in group)
                {
                    var isSearch = r.MedianObjective is not null;
                    table.AddRow(Markup.Escape(r.Method), r.MeanExactMatch.ToString("F2", CultureInfo.InvariantCulture),
                        isSearch ? r.BestExactMatch.ToString("F2", CultureInfo.InvariantCulture) : "",
                        r.MedianObjective?.ToString("F4", CultureInfo.InvariantCulture) ?? "",
                        r.MeanRounds?.ToString("F1", CultureInfo.InvariantCulture) ?? "");
                }
                AnsiConsole.Write(table);
            }
            Console.WriteLine($"demo finished in {report.Seconds:F0} s; results in {Path.GetFullPath(outDir)} (results.json, results.md, demo.png)");
            return 0;
        }));
        return command;
    }

    /// <summary>"1,2,3" or a range "1..10".</summary>
    private static List<int> ParseSeeds(string text)
    {
        var range = text.Split("..", StringSplitOptions.TrimEntries);
        if (range.Length == 2 && int.TryParse(range[0], CultureInfo.InvariantCulture, out var first) && int.TryParse(range[1], CultureInfo.InvariantCulture, out var last))
            return last >= first && last - first < 10_000 ? Enumerable.Range(first, last - first + 1).ToList() : throw new UsageException($"--seeds: '{text}' is not a range first..last");
        return ParseList(text, "--seeds", s => int.Parse(s, CultureInfo.InvariantCulture));
    }

    private static List<T> ParseList<T>(string text, string option, Func<string, T> parse)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new UsageException($"{option} is empty");
        try
        {
            return parts.Select(parse).ToList();
        }
        catch (FormatException)
        {
            throw new UsageException($"{option}: '{text}' is not a comma-separated list of numbers");
        }
    }
}
