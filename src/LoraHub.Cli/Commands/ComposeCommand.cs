using System.CommandLine;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Core.Optimization;
using Spectre.Console;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub compose`: LoraHub itself. Picks K modules from the pool, searches their weights on the examples
/// without gradients, and writes the composed adapter (PEFT files), lorahub.json and report.png to --out.
/// </summary>
internal static class ComposeCommand
{
    public static Command Create()
    {
        var baseDir = Common.Base();
        var pool = new Option<string[]>("--modules") { Description = "module pool: folders of modules, or module folders (several allowed)", Required = true, AllowMultipleArgumentsPerToken = true };
        var examples = new Option<string>("--examples") { Description = "few-shot examples (JSON lines or BBH json)", Required = true };
        var output = new Option<string>("--out") { Description = "folder for the composed adapter", Required = true };
        var defaults = new CompositionSettings();
        var budget = new Option<int>("--budget") { Description = "objective evaluations", DefaultValueFactory = _ => defaults.Budget };
        var optimizer = new Option<string>("--optimizer") { Description = "search method", DefaultValueFactory = _ => defaults.Optimizer }.AcceptOnlyFromAmong([.. Optimizers.Names]);
        var select = new Option<int?>("--select") { Description = $"K, modules to compose (default {CompositionSettings.DefaultK}, or the whole pool in its order when smaller)" };
        var selection = new Option<string>("--selection") { Description = "random (the reference's way) or loss (K best single modules)", DefaultValueFactory = _ => defaults.Selection }.AcceptOnlyFromAmong([.. ModuleSelector.Methods]);
        var seed = new Option<int>("--seed") { Description = "seed for module selection and the optimizer", DefaultValueFactory = _ => defaults.Seed };
        var l1 = new Option<double>("--l1") { Description = "L1 coefficient of the objective", DefaultValueFactory = _ => defaults.L1 };
        var population = new Option<int?>("--population") { Description = "CMA-ES lambda / random-search batch" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "truncate longer inputs/outputs (with a warning)", DefaultValueFactory = _ => defaults.MaxTokens };
        var merge = Common.Merge();
        var force = new Option<bool>("--force") { Description = "replace an existing composition in --out" };
        var format = Common.Format();
        var command = new Command("compose", "Compose LoRA modules for a new task from a few examples (LoraHub).")
        {
            baseDir, pool, examples, output, budget, optimizer, select, selection, seed, l1, population, maxTokens, merge, force, format,
        };
        command.SetAction(CliErrors.Guard(parse =>
        {
            var outDir = parse.GetValue(output)!;
            CompositionOutput.CheckTarget(outDir, parse.GetValue(force)); // refuse before spending any compute
            var modules = parse.GetValue(pool)!.SelectMany(ModuleRef.Scan).ToList();
            if (modules.Count == 0) throw new UsageException("--modules: no LoRA module folders (with adapter_config.json) found");
            var set = ExampleFile.Load(parse.GetValue(examples)!);
            var settings = new CompositionSettings
            {
                Budget = parse.GetValue(budget),
                Optimizer = parse.GetValue(optimizer)!,
                K = parse.GetValue(select),
                Selection = parse.GetValue(selection)!,
                Seed = parse.GetValue(seed),
                L1 = parse.GetValue(l1),
                Population = parse.GetValue(population),
                MaxTokens = parse.GetValue(maxTokens),
                Merge = parse.GetValue(merge)!,
            };
            OptionChecks.Compose(settings);
            settings.Validate(modules.Count);

            var dir = parse.GetValue(baseDir)!;
            using var model = ModelLoader.Load(dir);
            var tokenizer = ModelLoader.LoadTokenizer(dir);
            var result = Progress.Run("composing", settings.Budget, report =>
                new Composer(model, tokenizer).Compose(modules, set, settings, Path.GetFileName(Path.GetFullPath(dir)), report));
            using (result)
            {
                foreach (var w in result.Record.Warnings) Console.Error.WriteLine($"lorahub: warning: {w}");
                var png = Report.RenderPng(result.Record.History.Select(h => h.Objective).ToList(),
                    result.Record.Modules.Select(m => m.Name).ToList(), result.Record.Weights, Path.GetFileNameWithoutExtension(parse.GetValue(examples)!));
                CompositionOutput.Write(outDir, result, parse.GetValue(force), png, FaultHooks.PublishStep());
                if (parse.GetValue(format) == "json")
                {
                    Console.Out.WriteLine(JsonNode.Parse(result.Record.ToJson())!.ToJsonString(Common.Json));
                }
                else
                {
                    var table = new Table().AddColumns("module", "weight");
                    foreach (var m in result.Record.Modules) table.AddRow(Markup.Escape(m.Name), m.Weight.ToString("F4"));
                    AnsiConsole.Write(table);
                    var best = result.Record.Best!;
                    Console.WriteLine($"best objective {best.Objective:F6} (loss {best.Loss:F6} + l1 {best.L1:F6}) at evaluation {best.Evaluation} of {result.Record.History.Count}");
                    Console.WriteLine($"wrote {Path.GetFullPath(outDir)}");
                }
            }
            return 0;
        }));
        return command;
    }
}
