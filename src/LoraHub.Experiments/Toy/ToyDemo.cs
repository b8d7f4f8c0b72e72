using System.Diagnostics;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Optimization;

namespace LoraHub.Experiments.Toy;

/// <summary>What the demo compares: LoraHub per merge mode and optimizer, over several 5-example sets (seeds).</summary>
public sealed record ToyDemoSettings
{
    public IReadOnlyList<int> Seeds { get; init; } = [1, 2, 3, 4, 5];
    public IReadOnlyList<string> Optimizers { get; init; } = new[] { LoraHub.Core.Optimization.Optimizers.Default, "cobyla", "cobyla-parallel", "cmaes" }.Distinct().ToList();
    public IReadOnlyList<string> Merges { get; init; } = ["lorahub"];
    public int Budget { get; init; } = 40;

    /// <summary>Budgets to compare (one row per optimizer and budget); null: <see cref="Budget"/> alone.</summary>
    public IReadOnlyList<int>? Budgets { get; init; }

    /// <summary>
    /// K, the paper's 20 by default (the whole pool when it is smaller; null: the whole pool). Every composition gets the
    /// modules its task needs plus K minus that many others drawn at random per seed, in a random order: the search
    /// has to find the few that matter among distractors (with a 24-module pool and K = 20, 17 to 19 of them).
    /// </summary>
    public int? Select { get; init; } = 20;

    public IReadOnlyList<int> BudgetList => Budgets ?? [Budget];
}

/// <summary>One line of the results table: a method on a held-out task, exact match on its 100 test examples.</summary>
/// <remarks>For a search: its budget, the mean number of evaluations and of rounds (batches asked: the sequential
/// steps of a fan-out), and every seed's best objective.</remarks>
public sealed record ToyDemoRow(string Task, string Kind, string Method, double MeanExactMatch, double BestExactMatch,
    IReadOnlyList<double> PerSeed, double? MeanObjective, double? MedianObjective,
    int? Budget = null, double? MeanEvaluations = null, double? MeanRounds = null, IReadOnlyList<double>? PerSeedObjective = null);

public sealed record ToyDemoReport(IReadOnlyList<ToyDemoRow> Rows, ToyDemoSettings Settings, double Seconds, bool WorldFromCache,
    string Family = ToyWorld.T5);

/// <summary>
/// The demo's experiment on a built toy world (either family: the model, its few-shot convention and the world's
/// tokenizer come from the world's folder). For each held-out task: the base model zero-shot, the uniform
/// average of the K modules (w = 1/K, the reference's merge), the best single pool module (an oracle: picked on
/// the test set), the hand-set ceiling of the needed modules, and LoraHub (each merge mode × optimizer) composed
/// from 5 examples drawn fresh for every seed.
/// </summary>
public static class ToyDemo
{
    public static ToyDemoReport Run(ToyWorld world, ToyDemoSettings settings, IProgress<string>? progress = null)
    {
        var clock = Stopwatch.StartNew();
        using var model = ModelLoader.Load(world.BaseDirectory);
        var tokenizer = ModelLoader.LoadTokenizer(world.BaseDirectory);
        var pool = ModuleRef.Scan(world.ModulesDirectory);
        var k = Math.Min(settings.Select ?? pool.Count, pool.Count);
        var rows = new List<ToyDemoRow>();
        var singles = SingleModuleScores(model, world, pool);

        foreach (var task in world.HeldOut)
        {
            progress?.Report($"{task.Name}: baselines");
            var test = ExampleFile.Load(task.TestFile);
            var toyTask = TaskOf(task);
            rows.Add(Row(task, "base (zero-shot)", [world.ExactMatch(model, test)]));
            rows.Add(Row(task, $"uniform 1/K (K={k})", [UniformScore(model, world, ModulesFor(pool, task, k, settings.Seeds[0]), test)]));
            var (bestModule, bestSingle) = singles[task.Name].MaxBy(s => s.Value);
            rows.Add(Row(task, $"best single module ({bestModule}, oracle)", [bestSingle]));
            rows.Add(Row(task, $"hand-set lorahub {string.Join("+", task.Modules)} (ceiling)", [task.OracleExactMatch]));
            if (settings.Merges.Contains("linear"))
                rows.Add(Row(task, $"hand-set linear {string.Join("+", task.Modules)} (ceiling)", [LinearCeiling(model, world, task, test)]));

            // One composition per seed at the largest budget; a smaller budget's run is its prefix (every optimizer asks
            // the same points whatever its budget, only stopping earlier: OptimizerContractTests), scored on its own best.
            var budgets = settings.BudgetList.Distinct().Order().ToList();
            foreach (var merge in settings.Merges)
            foreach (var optimizer in settings.Optimizers)
            {
                var runs = budgets.ToDictionary(b => b, _ => new List<(double Objective, double Exact, int Evaluations, int Rounds)>());
                foreach (var seed in settings.Seeds)
                {
                    var fewShot = world.Formatted(ToyTasks.Sample(toyTask, 5, seed, "demo-few-shot"));
                    var modules = ModulesFor(pool, task, k, seed);
                    var compose = new CompositionSettings { Budget = budgets[^1], Optimizer = optimizer, K = modules.Count, Seed = seed, Merge = merge };
                    using var result = new Composer(model, tokenizer).Compose(modules, fewShot, compose, "toy-base");
                    foreach (var budget in budgets)
                    {
                        var prefix = result.Record.History.Take(budget).ToList();
                        var best = prefix.MinBy(t => t.Objective)!;
                        var exact = ScoreWeights(model, world, result.Record, best.Weights, test);
                        var rounds = RoundsOf(prefix, compose with { Budget = budget }, result.Record.Weights.Length);
                        runs[budget].Add((best.Objective, exact, prefix.Count, rounds));
                        progress?.Report(FormattableString.Invariant(
                            $"{task.Name}: lorahub {merge}/{optimizer} budget {budget} seed {seed}: objective {best.Objective:F4}, exact match {exact:F2}, {prefix.Count} evaluations in {rounds} rounds"));
                    }
                }
                foreach (var budget in budgets)
                {
                    var r = runs[budget];
                    var scores = r.Select(x => x.Exact).ToList();
                    var objectives = r.Select(x => x.Objective).ToList();
                    rows.Add(new ToyDemoRow(task.Name, task.Kind, $"LoraHub {merge} / {optimizer}" + (budgets.Count > 1 ? $" @{budget}" : ""),
                        scores.Average(), scores.Max(), scores, objectives.Average(), Median(objectives), budget,
                        r.Average(x => x.Evaluations), r.Average(x => x.Rounds), objectives));
                }
            }
        }
        return new ToyDemoReport(rows, settings, clock.Elapsed.TotalSeconds, world.FromCache, world.Family);
    }

    /// <summary>
    /// results.md: one line per search (optimizer and budget), one column per held-out task, each cell "median objective /
    /// mean exact match (best) / mean rounds"; then the baselines.
    /// </summary>
    public static string Markdown(ToyDemoReport report)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var tasks = report.Rows.Select(r => r.Task).Distinct().ToList();
        var text = new System.Text.StringBuilder();
        text.AppendLine(inv, $"Toy world ({report.Family}), {report.Settings.Seeds.Count} few-shot sets (seeds {string.Join(",", report.Settings.Seeds)}), K = {report.Settings.Select?.ToString(inv) ?? "all"}.");
        text.AppendLine("Each cell: median objective / mean exact match (best) / mean rounds.");
        text.AppendLine();
        text.AppendLine("| search | budget | " + string.Join(" | ", tasks) + " |");
        text.AppendLine("|---|---|" + string.Concat(tasks.Select(_ => "---|")));
        foreach (var method in report.Rows.Where(r => r.Budget is not null).Select(r => (r.Method, r.Budget)).Distinct())
        {
            var cells = tasks.Select(t => report.Rows.FirstOrDefault(r => r.Task == t && r.Method == method.Method && r.Budget == method.Budget) is { } r
                ? string.Create(inv, $"{r.MedianObjective:F3} / {r.MeanExactMatch:F2} ({r.BestExactMatch:F2}) / {r.MeanRounds:F1}")
                : "");
            var name = method.Method.Split(" @")[0].Replace("LoraHub ", "", StringComparison.Ordinal);
            text.AppendLine(inv, $"| {name} | {method.Budget} | {string.Join(" | ", cells)} |");
        }
        text.AppendLine();
        text.AppendLine("| baseline | " + string.Join(" | ", tasks) + " |");
        text.AppendLine("|---|" + string.Concat(tasks.Select(_ => "---|")));
        // "best single module (mirror_letters, oracle)" and the hand-set rows name each task's own modules: one line each.
        static string Baseline(string method) => method.StartsWith("best single", StringComparison.Ordinal) ? "best single module (oracle)"
            : method.StartsWith("hand-set", StringComparison.Ordinal) ? string.Join(' ', method.Split(' ').Take(2)) + " needed modules (ceiling)"
            : method.StartsWith("uniform", StringComparison.Ordinal) ? "uniform 1/K" : method;
        foreach (var method in report.Rows.Where(r => r.Budget is null).Select(r => Baseline(r.Method)).Distinct())
        {
            var cells = tasks.Select(t => report.Rows.FirstOrDefault(r => r.Task == t && r.Budget is null && Baseline(r.Method) == method) is { } r
                ? r.MeanExactMatch.ToString("F2", inv) : "");
            text.AppendLine(inv, $"| {method} | {string.Join(" | ", cells)} |");
        }
        return text.ToString();
    }

    /// <summary>The median (the mean of the two middle values for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>
    /// The K modules one composition gets: the task's own modules plus others drawn at random, all in a random order
    /// (seeded by the few-shot seed and the task), so that the search must find the few that matter.
    /// </summary>
    public static List<ModuleRef> ModulesFor(IReadOnlyList<ModuleRef> pool, ToyHeldOutTask task, int k, int seed)
    {
        var random = new ToyRandom(seed, $"demo-modules/{task.Name}");
        var needed = pool.Where(m => task.Modules.Contains(m.Name)).ToList();
        var others = pool.Where(m => !task.Modules.Contains(m.Name)).ToList();
        Shuffle(others, random);
        var chosen = needed.Concat(others).Take(Math.Max(k, needed.Count)).ToList();
        Shuffle(chosen, random);
        return chosen;
    }

    private static void Shuffle<T>(List<T> items, ToyRandom random)
    {
        for (var i = items.Count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>
    /// How many rounds (batches asked) a composition took: its optimizer re-created from the record's settings and
    /// replayed on the recorded history, counting the asks. A fan-out evaluates one round at a time.
    /// </summary>
    public static int RoundsOf(IReadOnlyList<Trial> history, CompositionSettings settings, int dimension)
    {
        var optimizer = Optimizers.Create(new OptimizerSettings(settings.Optimizer, dimension, settings.Budget, settings.Lower, settings.Upper,
            settings.InitialStep, settings.Seed, settings.Population));
        int done = 0, rounds = 0;
        while (done < history.Count && !optimizer.IsDone)
        {
            var batch = optimizer.Ask();
            if (batch.Count == 0) break;
            optimizer.Tell(history.Skip(done).Take(batch.Count).Select(t => t.Objective).ToList());
            done += batch.Count;
            rounds++;
        }
        return rounds;
    }

    private static ToyDemoRow Row(ToyHeldOutTask task, string method, IReadOnlyList<double> scores) =>
        new(task.Name, task.Kind, method, scores.Average(), scores.Max(), scores, null, null);

    /// <summary>The task's definition, to draw fresh few-shot sets: one pool map, or its modules' maps together.</summary>
    private static ToyTask TaskOf(ToyHeldOutTask task) => task.Modules.Count == 1
        ? ToyTasks.PoolTask(task.Modules[0])
        : new ToyWorld.HeldOutDefinition(task.Name, task.Kind, task.Modules).Task();

    /// <summary>Exact match of every pool module alone (weight 1) on every held-out task's test set.</summary>
    private static Dictionary<string, Dictionary<string, double>> SingleModuleScores(IAdaptableModel model, ToyWorld world, IReadOnlyList<ModuleRef> pool)
    {
        var tests = world.HeldOut.ToDictionary(t => t.Name, t => ExampleFile.Load(t.TestFile));
        var scores = world.HeldOut.ToDictionary(t => t.Name, _ => new Dictionary<string, double>());
        foreach (var m in pool)
        {
            using var composed = ComposedModel.Load(model, [m.Directory], MergeMode.LoraHub, [m.Name]);
            composed.SetWeights([1.0]);
            foreach (var (task, test) in tests) scores[task][m.Name] = world.ExactMatch(model, test);
        }
        return scores;
    }

    private static double UniformScore(IAdaptableModel model, ToyWorld world, IReadOnlyList<ModuleRef> modules, IReadOnlyList<Example> test) =>
        ScoreWith(model, world, modules.Select(m => (m.Directory, m.Name)).ToList(), MergeMode.LoraHub,
            Enumerable.Repeat(1.0 / modules.Count, modules.Count).ToList(), test);

    /// <summary>The needed modules with weight 1 each under the linear merge: the plain sum of their deltas.</summary>
    private static double LinearCeiling(IAdaptableModel model, ToyWorld world, ToyHeldOutTask task, IReadOnlyList<Example> test) =>
        ScoreWith(model, world, task.Modules.Select(m => (world.ModuleDirectory(m), m)).ToList(), MergeMode.Linear,
            Enumerable.Repeat(1.0, task.Modules.Count).ToList(), test);

    /// <summary>Attaches a composition's modules with the given weights and scores the test set.</summary>
    private static double ScoreWeights(IAdaptableModel model, ToyWorld world, CompositionRecord record, IReadOnlyList<double> weights, IReadOnlyList<Example> test) =>
        ScoreWith(model, world, record.Modules.Select(m => (m.Path, m.Name)).ToList(), MergeModes.Parse(record.Merge), weights, test);

    private static double ScoreWith(IAdaptableModel model, ToyWorld world, IReadOnlyList<(string Directory, string Name)> modules, MergeMode mode,
        IReadOnlyList<double> weights, IReadOnlyList<Example> test)
    {
        using var composed = ComposedModel.Load(model, modules.Select(m => m.Directory).ToList(), mode, modules.Select(m => m.Name).ToList());
        composed.SetWeights(weights);
        return world.ExactMatch(model, test);
    }
}
