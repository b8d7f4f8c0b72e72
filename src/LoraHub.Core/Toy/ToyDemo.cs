using System.Diagnostics;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;

namespace LoraHub.Core.Toy;

/// <summary>What the demo compares: LoraHub per merge mode and optimizer, over several 5-example sets (seeds).</summary>
public sealed record ToyDemoSettings
{
    public IReadOnlyList<int> Seeds { get; init; } = [1, 2, 3, 4, 5];
    public IReadOnlyList<string> Optimizers { get; init; } = ["cobyla-parallel", "cobyla", "cmaes", "random"];
    public IReadOnlyList<string> Merges { get; init; } = ["lorahub"];
    public int Budget { get; init; } = 40;
    /// <summary>K; null composes the whole pool (8 modules).</summary>
    public int? Select { get; init; }
}

/// <summary>One line of the results table: a method on a held-out task, exact match on its 100 test examples.</summary>
public sealed record ToyDemoRow(string Task, string Kind, string Method, double MeanExactMatch, double BestExactMatch,
    IReadOnlyList<double> PerSeed, double? MeanObjective, double? MedianObjective);

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
        var k = settings.Select ?? pool.Count;
        var rows = new List<ToyDemoRow>();
        var singles = SingleModuleScores(model, world, pool);

        foreach (var task in world.HeldOut)
        {
            progress?.Report($"{task.Name}: baselines");
            var test = ExampleFile.Load(task.TestFile);
            var toyTask = TaskOf(task);
            rows.Add(Row(task, "base (zero-shot)", [world.ExactMatch(model, test)]));
            rows.Add(Row(task, $"uniform 1/K (K={k})", [UniformScore(model, world, pool.Take(k).ToList(), test)]));
            var (bestModule, bestSingle) = singles[task.Name].MaxBy(s => s.Value);
            rows.Add(Row(task, $"best single module ({bestModule}, oracle)", [bestSingle]));
            rows.Add(Row(task, $"hand-set lorahub {string.Join("+", task.Modules)} (ceiling)", [task.OracleExactMatch]));
            if (settings.Merges.Contains("linear"))
                rows.Add(Row(task, $"hand-set linear {string.Join("+", task.Modules)} (ceiling)", [LinearCeiling(model, world, task, test)]));

            foreach (var merge in settings.Merges)
            foreach (var optimizer in settings.Optimizers)
            {
                var scores = new List<double>();
                var objectives = new List<double>();
                foreach (var seed in settings.Seeds)
                {
                    progress?.Report($"{task.Name}: lorahub {merge}/{optimizer} seed {seed}");
                    var fewShot = world.Formatted(ToyTasks.Sample(toyTask, 5, seed, "demo-few-shot"));
                    using var result = new Composer(model, tokenizer).Compose(pool, fewShot, new CompositionSettings
                    {
                        Budget = settings.Budget, Optimizer = optimizer, K = k, Seed = seed, Merge = merge,
                    }, "toy-base");
                    objectives.Add(result.Record.Best!.Objective);
                    scores.Add(ScoreComposition(model, world, result.Record, test));
                }
                var sorted = objectives.Order().ToList();
                rows.Add(new ToyDemoRow(task.Name, task.Kind, $"LoraHub {merge} / {optimizer}", scores.Average(), scores.Max(), scores,
                    objectives.Average(), sorted[sorted.Count / 2]));
            }
        }
        return new ToyDemoReport(rows, settings, clock.Elapsed.TotalSeconds, world.FromCache, world.Family);
    }

    private static ToyDemoRow Row(ToyHeldOutTask task, string method, IReadOnlyList<double> scores) =>
        new(task.Name, task.Kind, method, scores.Average(), scores.Max(), scores, null, null);

    /// <summary>The task's definition, to draw fresh few-shot sets: one pool map, or a letter map with a digit map.</summary>
    private static ToyTask TaskOf(ToyHeldOutTask task) => task.Modules.Count == 1
        ? ToyTasks.PoolTask(task.Modules[0])
        : ToyTasks.Combine(task.Name, ToyTasks.PoolTask(task.Modules[0]), ToyTasks.PoolTask(task.Modules[1]));

    /// <summary>Exact match of every pool module alone (weight 1) on every held-out task's test set.</summary>
    private static Dictionary<string, Dictionary<string, double>> SingleModuleScores(IAdaptableModel model, ToyWorld world, IReadOnlyList<ModuleRef> pool)
    {
        var tests = world.HeldOut.ToDictionary(t => t.Name, t => ExampleFile.Load(t.TestFile));
        var scores = world.HeldOut.ToDictionary(t => t.Name, _ => new Dictionary<string, double>());
        foreach (var m in pool)
        {
            using var module = LoraModule.Load(m.Directory, m.Name);
            using var composed = new ComposedModel(model, [module]);
            composed.SetWeights([1.0]);
            foreach (var (task, test) in tests) scores[task][m.Name] = world.ExactMatch(model, test);
        }
        return scores;
    }

    private static double UniformScore(IAdaptableModel model, ToyWorld world, IReadOnlyList<ModuleRef> modules, IReadOnlyList<Example> test)
    {
        var loaded = modules.Select(m => LoraModule.Load(m.Directory, m.Name)).ToList();
        try
        {
            using var composed = new ComposedModel(model, loaded);
            composed.SetWeights(Enumerable.Repeat(1.0 / loaded.Count, loaded.Count).ToList());
            return world.ExactMatch(model, test);
        }
        finally
        {
            foreach (var m in loaded) m.Dispose();
        }
    }

    /// <summary>The needed modules with weight 1 each under the linear merge: the plain sum of their deltas.</summary>
    private static double LinearCeiling(IAdaptableModel model, ToyWorld world, ToyHeldOutTask task, IReadOnlyList<Example> test)
    {
        var loaded = task.Modules.Select(m => LoraModule.Load(world.ModuleDirectory(m), m)).ToList();
        try
        {
            using var composed = new ComposedModel(model, loaded, MergeMode.Linear);
            composed.SetWeights(Enumerable.Repeat(1.0, loaded.Count).ToList());
            return world.ExactMatch(model, test);
        }
        finally
        {
            foreach (var m in loaded) m.Dispose();
        }
    }

    /// <summary>Attaches a composition's modules with its best weights and scores the test set.</summary>
    private static double ScoreComposition(IAdaptableModel model, ToyWorld world, CompositionRecord record, IReadOnlyList<Example> test)
    {
        var loaded = record.Modules.Select(m => LoraModule.Load(m.Path, m.Name)).ToList();
        try
        {
            using var composed = new ComposedModel(model, loaded, MergeModes.Parse(record.Merge));
            composed.SetWeights(record.Weights);
            return world.ExactMatch(model, test);
        }
        finally
        {
            foreach (var m in loaded) m.Dispose();
        }
    }
}
