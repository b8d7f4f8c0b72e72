using LoraHub.Core;
using System.CommandLine;
using System.Globalization;
using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Core.Training;
using Spectre.Console;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub train`: trains a new LoRA module on an examples file (base model frozen, autograd on A and B only) and
/// writes it as a PEFT folder plus lorahub-train.json. All modules of one hub should be trained with the same
/// --init-seed (and the same rank and targets) so their A matrices start equal; with --freeze-a they stay equal,
/// which is what lets the LoraHub merge (A and B summed separately) combine modules.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var defaults = new LoraTrainingOptions();
        var baseDir = Common.Base();
        var data = new Option<string>("--data") { Description = "training examples: JSON lines {\"input\",\"output\"} or a BBH task file", Required = true };
        var output = new Option<string>("--out") { Description = "folder to write the PEFT module into (adapter_config.json, adapter_model.safetensors, lorahub-train.json)", Required = true };
        var rank = new Option<int>("--rank") { Description = "LoRA rank r", DefaultValueFactory = _ => defaults.Rank };
        var alpha = new Option<double>("--alpha") { Description = "lora_alpha (the update is scaled by alpha / r)", DefaultValueFactory = _ => defaults.Alpha };
        var targets = new Option<string>("--targets") { Description = "last name part of the Linear layers to adapt, comma separated (default: the model's q and v projections, q,v for T5 and q_proj,v_proj for Llama)", DefaultValueFactory = _ => "" };
        var steps = new Option<int>("--steps") { Description = "optimisation steps", DefaultValueFactory = _ => defaults.Steps };
        var lr = new Option<double>("--lr") { Description = "peak learning rate (linear warm-up, then linear decay)", DefaultValueFactory = _ => defaults.LearningRate };
        var aLr = new Option<double?>("--a-lr") { Description = "separate learning rate for A (default: --lr; ignored with --freeze-a)" };
        var batch = new Option<int>("--batch-size") { Description = "examples per step", DefaultValueFactory = _ => defaults.BatchSize };
        var seed = new Option<int>("--seed") { Description = "seed of the batch order", DefaultValueFactory = _ => defaults.Seed };
        var initSeed = new Option<int>("--init-seed") { Description = "hub-wide seed of the A initialisation: use one value for every module of a hub", DefaultValueFactory = _ => defaults.InitSeed };
        var freezeA = new Option<bool>("--freeze-a") { Description = "train B only; A keeps its seeded start (shared by every module with the same --init-seed)" };
        var maxTokens = new Option<int>("--max-input-tokens") { Description = "truncate inputs longer than this (keeping EOS)", DefaultValueFactory = _ => ExampleTokenizer.DefaultMaxTokens };
        var force = new Option<bool>("--force") { Description = "replace a module (or other files) already in --out" };
        var command = new Command("train", "Train a new LoRA module on examples (base model frozen).")
        {
            baseDir, data, output, rank, alpha, targets, steps, lr, aLr, batch, seed, initSeed, freezeA, maxTokens, force,
        };
        command.SetAction(CliErrors.Guard(parse =>
        {
            var options = new LoraTrainingOptions
            {
                Rank = parse.GetValue(rank),
                Alpha = parse.GetValue(alpha),
                Targets = string.IsNullOrWhiteSpace(parse.GetValue(targets)) ? null
                    : parse.GetValue(targets)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                Steps = parse.GetValue(steps),
                LearningRate = parse.GetValue(lr),
                ALearningRate = parse.GetValue(aLr),
                BatchSize = parse.GetValue(batch),
                Seed = parse.GetValue(seed),
                InitSeed = parse.GetValue(initSeed),
                FreezeA = parse.GetValue(freezeA),
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            OptionChecks.Range("--max-input-tokens", parse.GetValue(maxTokens), 2, OptionChecks.MaxTokens);
            OptionChecks.Range("--rank", options.Rank, 1, LoraHub.Core.Lora.LoraConfig.MaxRank);
            OptionChecks.Range("--batch-size", options.BatchSize, 1, OptionChecks.MaxBatch);
            var dataPath = Path.GetFullPath(parse.GetValue(data)!);
            var outDir = Path.GetFullPath(parse.GetValue(output)!);
            ModuleOutput.CheckTarget(outDir, parse.GetValue(force)); // refuse before training
            var examples = ExampleFile.Load(dataPath);
            var dir = parse.GetValue(baseDir)!;
            using var model = ModelLoader.Load(dir);
            var tokenizer = ModelLoader.LoadTokenizer(dir);
            var tokenized = examples.Select(e => new TokenizedExample(
                ExampleTokenizer.Truncate(model.Format.PromptIds(tokenizer, e.Input), parse.GetValue(maxTokens), tokenizer.EosId, out _),
                model.Format.TargetIds(tokenizer, e.Output))).ToList();
            LoraTrainingResult result;
            try
            {
                result = WithProgress($"training {Path.GetFileName(outDir)}", options.Steps,
                    progress => LoraTrainer.Train(model, tokenized, options, progress));
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message); // e.g. no Linear layer named like --targets
            }
            using (result)
            {
                ModuleOutput.Write(outDir, result, Path.GetFullPath(dir), dataPath, parse.GetValue(force));
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"trained {result.Adapter.Layers.Count} layers, {options.Steps} steps in {result.Elapsed.TotalSeconds:F1} s: loss {result.Losses[0]:F4} -> {result.FinalLoss:F4}; wrote {outDir}"));
            return 0;
        }));
        return command;
    }

    /// <summary>A progress bar with the running loss on stderr; a line every 10% when stderr is not a terminal.</summary>
    private static T WithProgress<T>(string title, int steps, Func<IProgress<TrainingProgress>, T> work)
    {
        if (Console.IsErrorRedirected)
        {
            var every = Math.Max(1, steps / 10);
            return work(new SyncProgress<TrainingProgress>(p =>
            {
                if (p.Step % every == 0 || p.Step == p.Steps)
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"lorahub: step {p.Step}/{p.Steps} loss {p.Loss:F4}"));
            }));
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress().AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: steps);
                result = work(new SyncProgress<TrainingProgress>(p =>
                {
                    task.Value = p.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{title} (loss {p.Loss:F4})"));
                }));
            });
        return result;
    }
}
