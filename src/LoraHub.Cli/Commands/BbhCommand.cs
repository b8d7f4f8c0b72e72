using LoraHub.Experiments.Bbh;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Models;
using LoraHub.Core.Optimization;
using LoraHub.Core.Tokenization;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub bbh`: the LoraHub paper's BIG-Bench Hard protocol in one command (zero-shot, ICL, LoraHub per seed,
/// mean and best over seeds; resumable; results.json, results.md, results.png), and with --tokens-only the
/// tokens-per-example figures of LoraHub and ICL. The 27 task files ship next to the program (folder bbh/).
/// </summary>
internal static class BbhCommand
{
    public static Command Create()
    {
        var baseDir = new Option<string?>("--base") { Description = "Hugging Face model folder (config.json, weights, spiece.model)" };
        var pool = new Option<string[]>("--modules") { Description = "module pool: folders of LoRA modules (several allowed)", AllowMultipleArgumentsPerToken = true };
        var output = new Option<string?>("--out") { Description = "results folder (resumable: finished tasks in OUT/tasks are skipped)" };
        var tasks = new Option<string>("--tasks") { Description = "'all' or task names separated by commas", DefaultValueFactory = _ => "all" };
        var seeds = new Option<string>("--seeds") { Description = "LoraHub seeds (each picks a module subset), comma separated", DefaultValueFactory = _ => "1,2,3,4,5" };
        var shots = new Option<int>("--shots") { Description = "the first N examples of a task are composed from (and are the ICL shots); the rest are scored", DefaultValueFactory = _ => 5 };
        var select = new Option<int>("--select") { Description = "K, modules per composition (the pool must hold at least K)", DefaultValueFactory = _ => 20 };
        var budget = new Option<int>("--budget") { Description = "objective evaluations per composition", DefaultValueFactory = _ => 40 };
        var optimizer = new Option<string>("--optimizer") { Description = "search method", DefaultValueFactory = _ => "cobyla" }.AcceptOnlyFromAmong([.. Optimizers.Names]);
        var limit = new Option<int?>("--limit") { Description = "score only the first N scored examples of each task (quick runs)" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "generation limit per example", DefaultValueFactory = _ => new BbhSettings().MaxNewTokens };
        var batch = new Option<int>("--batch-size") { Description = "examples generated together", DefaultValueFactory = _ => new BbhSettings().BatchSize };
        var icl = new Option<bool>("--icl") { Description = "run the in-context-learning baseline (the default): the shots before the input, each as \"{input}\\nAnswer: {target}\", then \"{input}\\nAnswer:\"" };
        var noIcl = new Option<bool>("--no-icl") { Description = "skip the in-context-learning baseline" };
        var bbhDir = new Option<string>("--bbh-dir") { Description = "folder of BBH task files", DefaultValueFactory = _ => ShippedTasks };
        var tokensOnly = new Option<bool>("--tokens-only") { Description = "only print the tokens per example of LoraHub and ICL (needs --base or --tokenizer)" };
        var tokenizerPath = new Option<string?>("--tokenizer") { Description = "with --tokens-only: a spiece.model file or a folder holding one (instead of --base)" };
        var format = Common.Format();
        var command = new Command("bbh", "BIG-Bench Hard as in the LoraHub paper: zero-shot, ICL and LoraHub (mean and best over seeds) per task.")
        {
            baseDir, pool, output, tasks, seeds, shots, select, budget, optimizer, limit, maxNew, batch, icl, noIcl, bbhDir, tokensOnly, tokenizerPath, format,
        };
        command.SetAction(CliErrors.Guard(parse =>
        {
            try
            {
                if (parse.GetValue(icl) && parse.GetValue(noIcl)) throw new UsageException("--icl and --no-icl contradict each other");
                var taskList = BbhTasks.Resolve(parse.GetValue(bbhDir)!, parse.GetValue(tasks)!);
                var shotCount = parse.GetValue(shots);
                if (shotCount < 1) throw new UsageException($"--shots must be at least 1 (got {shotCount})");
                var splits = taskList.Select(t => BbhTasks.Load(t, shotCount)).ToList();
                var json = parse.GetValue(format) == "json";
                if (parse.GetValue(tokensOnly))
                    return Tokens(parse.GetValue(baseDir), parse.GetValue(tokenizerPath), parse.GetValue(output), splits, json);
                if (parse.GetValue(tokenizerPath) is not null) throw new UsageException("--tokenizer only goes with --tokens-only (the protocol uses --base's tokenizer)");

                var baseFolder = parse.GetValue(baseDir) ?? throw new UsageException("--base is required (the base model folder)");
                var poolDirs = parse.GetValue(pool) ?? [];
                if (poolDirs.Length == 0) throw new UsageException("--modules is required (the folder of LoRA modules)");
                var outDir = parse.GetValue(output) ?? throw new UsageException("--out is required (the results folder)");
                var settings = new BbhSettings
                {
                    Shots = shotCount,
                    Seeds = ParseSeeds(parse.GetValue(seeds)!),
                    Select = parse.GetValue(select),
                    Budget = parse.GetValue(budget),
                    Optimizer = parse.GetValue(optimizer)!,
                    Limit = parse.GetValue(limit),
                    MaxNewTokens = parse.GetValue(maxNew),
                    BatchSize = parse.GetValue(batch),
                    Icl = !parse.GetValue(noIcl),
                };
                var modules = poolDirs.SelectMany(ModuleRef.Scan).ToList();
                settings.Validate(modules.Count, $"the module pool ({string.Join(", ", poolDirs)})");
                var baseName = Path.GetFileName(Path.GetFullPath(baseFolder));
                var runner = new BbhRunner(settings, modules, baseName);
                var plan = runner.Plan(splits, outDir); // everything checked before the model loads or anything is written

                var progress = new StderrProgress();
                BbhResults results;
                if (plan.Pending.Any())
                {
                    using var model = ModelLoader.Load(baseFolder);
                    var tokenizer = ModelLoader.LoadTokenizer(baseFolder);
                    results = runner.Run(model, tokenizer, plan, progress);
                }
                else
                {
                    results = runner.Summarize(plan, progress); // every task finished earlier: no model needed
                }
                if (json)
                {
                    Console.Out.WriteLine(JsonNode.Parse(BbhJson.Serialize(results))!.ToJsonString(Common.Json));
                }
                else
                {
                    Console.Out.Write(BbhReport.Markdown(results));
                    Console.Out.WriteLine($"wrote {Path.Combine(plan.OutDirectory, BbhRunner.ResultsJson)}, {BbhRunner.ResultsMarkdown}, {BbhRunner.ResultsChart} and {BbhRunner.TasksFolder}/");
                }
                return 0;
            }
            catch (BbhException e)
            {
                throw new UsageException(e.Message);
            }
        }));
        return command;
    }

    /// <summary>The task files shipped with the program (data/bbh, copied to bbh/ next to lorahub.dll).</summary>
    private static string ShippedTasks => Path.Combine(AppContext.BaseDirectory, BbhTasks.ShippedFolderName);

    private static IReadOnlyList<int> ParseSeeds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--seeds is empty: give seeds separated by commas, e.g. 1,2,3,4,5");
        var seeds = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s)) throw new UsageException($"--seeds: '{p}' is not an integer");
            seeds.Add(s);
        }
        return seeds;
    }

    /// <summary>--tokens-only: mean tokens per scored example, per task and on average, for LoraHub (input) and ICL (prompt).</summary>
    private static int Tokens(string? baseFolder, string? tokenizerPath, string? outDir, IReadOnlyList<BbhSplit> splits, bool json)
    {
        if (baseFolder is not null && tokenizerPath is not null) throw new UsageException("give --base or --tokenizer, not both");
        ITextTokenizer tokenizer = tokenizerPath is not null ? T5Tokenizer.Load(tokenizerPath)
            : baseFolder is not null ? ModelLoader.LoadTokenizer(baseFolder)
            : throw new UsageException("--tokens-only needs --base (a model folder) or --tokenizer (a spiece.model)");
        var counts = splits.Select(s => BbhTokenCounter.Count(tokenizer, s)).ToList();
        var average = BbhTokenCounter.Average(counts);
        var node = new JsonObject
        {
            ["shots"] = splits[0].Shots,
            ["prompt"] = BbhPrompt.Description,
            ["tasks"] = new JsonArray(counts.Select(Row).ToArray()),
            ["average"] = Row(average),
        };
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            BbhJson.WriteAtomic(Path.Combine(outDir, "tokens.json"), node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        if (json)
        {
            Common.WriteJson(node);
            return 0;
        }
        var width = Math.Max(7, counts.Max(c => c.Task.Length));
        Console.WriteLine($"{"task".PadRight(width)}  {"scored",6}  {"LoraHub",8}  {"ICL",8}  {"ICL/LoraHub",11}");
        foreach (var c in counts.Append(average))
            Console.WriteLine($"{c.Task.PadRight(width)}  {c.Examples,6}  {c.LoraHub,8:F1}  {c.Icl,8:F1}  {c.Ratio,11:F2}");
        Console.WriteLine($"tokens per scored example (with EOS); LoraHub reads the input alone; {BbhPrompt.Description.Replace("ICL prompt: ", "ICL reads ", StringComparison.Ordinal)}");
        return 0;

        static JsonNode Row(BbhTokenCount c) => new JsonObject
        {
            ["task"] = c.Task, ["examples"] = c.Examples, ["lorahub"] = Math.Round(c.LoraHub, 3), ["icl"] = Math.Round(c.Icl, 3),
        };
    }

    /// <summary>
    /// Progress on stderr, one line per finished stage (task start, zero-shot, ICL, each seed's composition and score,
    /// task done or skipped); on a terminal the running stage is also shown on a line that updates in place.
    /// </summary>
    private sealed class StderrProgress : IProgress<BbhProgress>
    {
        private readonly bool live = !Console.IsErrorRedirected;

        public void Report(BbhProgress p)
        {
            var head = $"lorahub: bbh [{p.TaskNumber}/{p.TaskCount}] {p.Task}:";
            var seed = p.Seed is { } s ? $" seed {s}" : "";
            string? line = p.Stage switch
            {
                "start" or "tokens" => $"{head} {p.Detail}",
                "skip" => $"{head} skipped, {p.Detail}",
                "done" => $"{head} done in {p.Detail}",
                _ when p.Done == p.Total && p.Result is { } r => $"{head}{seed} {p.Stage} {100 * r:F1}% ({p.Detail})",
                "composed" => $"{head}{seed} composed: {p.Detail}",
                _ => null,
            };
            if (line is not null)
            {
                Console.Error.WriteLine(live ? $"\r\u001b[K{line}" : line);
            }
            else if (live)
            {
                Console.Error.Write($"\r\u001b[K{head}{seed} {p.Stage} {p.Done}/{p.Total}{(p.Detail is null ? "" : " " + p.Detail)}");
            }
        }
    }
}
