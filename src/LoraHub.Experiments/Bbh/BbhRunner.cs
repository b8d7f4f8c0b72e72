using LoraHub.Core.Evaluation;
using LoraHub.Core;
using System.Diagnostics;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;

namespace LoraHub.Experiments.Bbh;

/// <summary>Where a run is: task <see cref="TaskNumber"/> of <see cref="TaskCount"/>, a stage, and its own progress.</summary>
/// <param name="Stage">skip, start, tokens, zero-shot, icl, compose (search steps), composed, lorahub (scoring a seed's composition), done.</param>
/// <param name="Seed">The LoraHub seed the stage belongs to, if any.</param>
/// <param name="Result">Exact match when a scoring stage ends.</param>
public sealed record BbhProgress(string Task, int TaskNumber, int TaskCount, string Stage, int Done, int Total, int? Seed = null,
    double? Result = null, string? Detail = null);

/// <summary>What a run will do: the tasks in order, and the ones already finished in OUT/tasks (reused, not redone).</summary>
public sealed record BbhPlan(string OutDirectory, BbhProtocol Protocol, IReadOnlyList<BbhSplit> Tasks, IReadOnlyDictionary<string, BbhTaskResult> Finished)
{
    public IEnumerable<BbhSplit> Pending => Tasks.Where(t => !Finished.ContainsKey(t.Task));
}

/// <summary>
/// The LoraHub paper's BIG-Bench Hard protocol. Per task: the first <c>shots</c> examples are the few-shot set and
/// the rest are scored (exact match); the base model zero-shot and, optionally, with the shots in its prompt (ICL) are
/// the baselines; LoraHub runs once per seed (the seed draws the K modules, as the reference's random selection,
/// and seeds the optimizer), each composition is attached in memory and scored; mean and best over the seeds.
/// Every finished task is written to OUT/tasks/{task}.json atomically and is skipped when the run is started again;
/// OUT/results.json, results.md and results.png are rewritten after every task.
/// </summary>
public sealed class BbhRunner(BbhSettings settings, IReadOnlyList<ModuleRef> pool, string baseModelName)
{
    public const string TasksFolder = "tasks";
    public const string ResultsJson = "results.json";
    public const string ResultsMarkdown = "results.md";
    public const string ResultsChart = "results.png";

    public BbhSettings Settings { get; } = settings;
    public BbhProtocol Protocol { get; } = BbhProtocol.From(settings, baseModelName, pool);

    public static string TaskFile(string outDirectory, string task) => Path.Combine(outDirectory, TasksFolder, task + ".json");

    /// <summary>
    /// Checks everything that can be checked before any work or any write: the settings against the pool, every
    /// task's split, and every finished task file in OUT against this run's protocol (a different protocol is an
    /// error: use another --out, or delete the task file to redo it).
    /// </summary>
    public BbhPlan Plan(IReadOnlyList<BbhSplit> tasks, string outDirectory)
    {
        Settings.Validate(pool.Count);
        if (tasks.Count == 0) throw new BbhException("no BBH tasks to run");
        foreach (var t in tasks)
        {
            if (t.Shots != Settings.Shots) throw new ArgumentException($"task {t.Task} was split with {t.Shots} shots, the settings say {Settings.Shots}");
            if (t.All.Count < t.Shots + 1)
                throw new ExampleFormatException($"{t.Path}: BBH task '{t.Task}' has {t.All.Count} example(s); --shots {t.Shots} needs at least {t.Shots + 1}");
        }
        outDirectory = Path.GetFullPath(outDirectory);
        if (File.Exists(outDirectory)) throw new BbhException($"--out {outDirectory} is a file, not a folder");
        var finished = new Dictionary<string, BbhTaskResult>(StringComparer.Ordinal);
        foreach (var t in tasks)
        {
            var path = TaskFile(outDirectory, t.Task);
            if (!File.Exists(path)) continue;
            var done = BbhJson.Load<BbhTaskResult>(path);
            var diffs = Protocol.Differences(done.Protocol);
            if (diffs.Count > 0)
                throw new BbhException($"{path} was made with other settings ({string.Join("; ", diffs)}); use another --out, or delete that file to redo the task");
            finished[t.Task] = done;
        }
        return new BbhPlan(outDirectory, Protocol, tasks, finished);
    }

    public BbhResults Run(IAdaptableModel model, ITextTokenizer tokenizer, BbhPlan plan, IProgress<BbhProgress>? progress = null)
    {
        Directory.CreateDirectory(Path.Combine(plan.OutDirectory, TasksFolder));
        var results = new Dictionary<string, BbhTaskResult>(plan.Finished, StringComparer.Ordinal);
        for (var i = 0; i < plan.Tasks.Count; i++)
        {
            var split = plan.Tasks[i];
            var at = new Where(split.Task, i + 1, plan.Tasks.Count, progress);
            if (results.ContainsKey(split.Task))
            {
                at.Report("skip", 1, 1, detail: $"finished earlier ({TaskFile(plan.OutDirectory, split.Task)})");
                continue;
            }
            var result = RunTask(model, tokenizer, split, at);
            BbhJson.WriteAtomic(TaskFile(plan.OutDirectory, split.Task), BbhJson.Serialize(result));
            results[split.Task] = result;
            WriteResults(plan, results);
            at.Report("done", 1, 1, result: result.LoraHub.Mean, detail: $"{result.Seconds:F1}s");
        }
        return WriteResults(plan, results);
    }

    /// <summary>Rewrites results.json, results.md and results.png from the finished tasks alone (nothing left to run).</summary>
    public BbhResults Summarize(BbhPlan plan, IProgress<BbhProgress>? progress = null)
    {
        if (plan.Pending.Any()) throw new InvalidOperationException("tasks are still to run: call Run");
        for (var i = 0; i < plan.Tasks.Count; i++)
            new Where(plan.Tasks[i].Task, i + 1, plan.Tasks.Count, progress).Report("skip", 1, 1, detail: $"finished earlier ({TaskFile(plan.OutDirectory, plan.Tasks[i].Task)})");
        return WriteResults(plan, plan.Finished);
    }

    private BbhResults WriteResults(BbhPlan plan, IReadOnlyDictionary<string, BbhTaskResult> results)
    {
        var done = plan.Tasks.Where(t => results.ContainsKey(t.Task)).Select(t => results[t.Task]).ToList();
        var pending = plan.Tasks.Where(t => !results.ContainsKey(t.Task)).Select(t => t.Task).ToList();
        var summary = BbhResults.Of(Protocol, done, pending);
        BbhReport.Write(plan.OutDirectory, summary);
        return summary;
    }

    private BbhTaskResult RunTask(IAdaptableModel model, ITextTokenizer tokenizer, BbhSplit split, Where at)
    {
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var shots = split.FewShot;
        var scored = split.Scored(Settings.Limit);
        at.Report("start", 0, 1, detail: $"{split.All.Count} examples: {shots.Count} to compose from, {scored.Count} scored");

        var tokens = BbhTokenCounter.Count(tokenizer, split);
        at.Report("tokens", 1, 1, detail: $"tokens per example: lorahub {tokens.LoraHub:F1}, icl {tokens.Icl:F1}");

        var zeroShot = Score(model, tokenizer, split, scored, "zero-shot", null, at);
        var icl = Settings.Icl ? Score(model, tokenizer, split, BbhPrompt.WithShots(shots, scored), "icl", null, at) : null;

        var seeds = new List<BbhSeedResult>();
        foreach (var seed in Settings.Seeds)
            seeds.Add(RunSeed(model, tokenizer, split, shots, scored, seed, at));

        return new BbhTaskResult
        {
            Task = split.Task,
            Protocol = Protocol,
            Examples = split.All.Count,
            FewShotIndices = Enumerable.Range(0, split.Shots).ToArray(),
            FirstScored = split.FirstScored,
            Scored = scored.Count,
            Tokens = BbhTokens.Of(tokens),
            ZeroShot = zeroShot,
            Icl = icl,
            LoraHub = BbhLoraHubResult.Of(seeds),
            StartedAt = started,
            FinishedAt = DateTimeOffset.UtcNow,
            Seconds = clock.Elapsed.TotalSeconds,
        };
    }

    private BbhSeedResult RunSeed(IAdaptableModel model, ITextTokenizer tokenizer, BbhSplit split, IReadOnlyList<Example> shots,
        IReadOnlyList<Example> scored, int seed, Where at)
    {
        var composition = new CompositionSettings
        {
            Budget = Settings.Budget,
            Optimizer = Settings.Optimizer,
            K = Settings.Select,
            Selection = "random",
            Seed = seed,
        };
        var clock = Stopwatch.StartNew();
        at.Report("compose", 0, Settings.Budget, seed);
        CompositionRecord record;
        using (var result = new Composer(model, tokenizer).Compose(pool, shots, composition, Protocol.BaseModel,
                   new SyncProgress<CompositionProgress>(p => at.Report("compose", p.Done, p.Total, seed, detail: p.BestObjective is { } b ? $"best objective {b:F4}" : null))))
        {
            record = result.Record; // the merged adapter itself is not needed: the modules are attached with the best weights below
        }
        var composeSeconds = clock.Elapsed.TotalSeconds;
        at.Report("composed", record.History.Count, record.History.Count, seed,
            detail: $"{record.History.Count} evaluations, best objective {record.Best?.Objective:F4}, modules {string.Join(", ", record.Modules.Select(m => m.Name))}");

        // Attach the composition in memory: the selected modules with the winning weights (the same delta W as the merged adapter).
        BbhScore score;
        using (var composed = ComposedModel.Load(model, record.Modules.Select(m => m.Path).ToList(), MergeMode.LoraHub, record.Modules.Select(m => m.Name).ToList()))
        {
            composed.SetWeights(record.Weights);
            score = Score(model, tokenizer, split, scored, "lorahub", seed, at);
        }
        return new BbhSeedResult
        {
            Seed = seed,
            Modules = record.Modules.Select(m => m.Name).ToList(),
            Weights = record.Weights,
            BestObjective = record.Best?.Objective ?? double.NaN,
            BestLoss = record.Best?.Loss ?? double.NaN,
            Evaluations = record.History.Count,
            ComposeSeconds = composeSeconds,
            Warnings = record.Warnings,
            Score = score,
        };
    }

    private BbhScore Score(IAdaptableModel model, ITextTokenizer tokenizer, BbhSplit split, IReadOnlyList<Example> examples, string stage, int? seed, Where at)
    {
        var clock = Stopwatch.StartNew();
        at.Report(stage, 0, examples.Count, seed);
        // No truncation: the longest ICL prompts (causal_judgement) pass 2048 tokens, and cutting them would drop the question.
        var predictions = Predictor.Predict(model, tokenizer, examples, Settings.MaxNewTokens, Settings.BatchSize, maxInputTokens: int.MaxValue,
            progress: new SyncProgress<int>(n => { if (n < examples.Count) at.Report(stage, n, examples.Count, seed); }));
        var items = predictions.Select((p, i) => new BbhPrediction(split.FirstScored + i, p.Truth, p.Output, p.Correct)).ToList();
        var correct = items.Count(p => p.Correct);
        var score = new BbhScore
        {
            ExactMatch = items.Count == 0 ? 0 : correct / (double)items.Count,
            Correct = correct,
            Total = items.Count,
            Seconds = clock.Elapsed.TotalSeconds,
            Predictions = items,
        };
        at.Report(stage, examples.Count, examples.Count, seed, score.ExactMatch, $"{correct}/{items.Count}");
        return score;
    }

    private sealed record Where(string Task, int Number, int Count, IProgress<BbhProgress>? Progress)
    {
        public void Report(string stage, int done, int total, int? seed = null, double? result = null, string? detail = null) =>
            Progress?.Report(new BbhProgress(Task, Number, Count, stage, done, total, seed, result, detail));
    }
}
