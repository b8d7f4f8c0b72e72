using System.Diagnostics;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Optimization;
using LoraHub.Core.Tokenization;

namespace LoraHub.Core.Composition;

/// <summary>How to compose: the reference's defaults (K = 20 random modules, COBYLA, 40 evaluations, L1 0.05).</summary>
public sealed record CompositionSettings
{
    public int Budget { get; init; } = 40;
    public string Optimizer { get; init; } = Optimizers.Default;
    /// <summary>K: how many pool modules to compose; null means the whole pool.</summary>
    public int? Select { get; init; } = 20;
    public string Selection { get; init; } = "random";
    /// <summary>"lorahub" (the paper's merge) or "linear" (exact Σ w_i ΔW_i, stored at rank Σ r_i).</summary>
    public string Merge { get; init; } = "lorahub";
    public int Seed { get; init; }
    public double L1 { get; init; } = 0.05;
    public double Lower { get; init; } = -1.5;
    public double Upper { get; init; } = 1.5;
    public double InitialStep { get; init; } = 0.5;
    public int? Population { get; init; }
    public int MaxTokens { get; init; } = ExampleTokenizer.DefaultMaxTokens;
    /// <summary>
    /// Evaluate an optimizer's batch of candidates in one grouped forward pass. Off by default: on this 2-core CPU
    /// it measured slower than one at a time (bench composition-overhead); on a GPU it is the way to fill the device.
    /// </summary>
    public bool BatchCandidates { get; init; }

    public void Validate(int poolSize)
    {
        if (Budget < 1) throw new CompositionException($"budget must be at least 1 evaluation (got {Budget})");
        if (Select is < 1) throw new CompositionException($"--select must be at least 1 (got {Select})");
        if (Select > poolSize) throw new CompositionException($"cannot select {Select} modules from a pool of {poolSize}");
        if (poolSize == 0) throw new CompositionException("the module pool is empty");
        if (!Optimizers.Names.Contains(Optimizer))
            throw new CompositionException($"unknown optimizer '{Optimizer}' (known: {string.Join(", ", Optimizers.Names)})");
        if (!ModuleSelector.Methods.Contains(Selection))
            throw new CompositionException($"unknown selection '{Selection}' (known: {string.Join(", ", ModuleSelector.Methods)})");
        if (!MergeModes.Names.Contains(Merge))
            throw new CompositionException($"unknown merge mode '{Merge}' (known: {string.Join(", ", MergeModes.Names)})");
        if (!(Lower < Upper)) throw new CompositionException($"weight bounds [{Lower}, {Upper}] are empty");
        if (!(L1 >= 0) || !double.IsFinite(L1)) throw new CompositionException($"the L1 coefficient must be a finite number >= 0 (got {L1})");
        if (!double.IsFinite(Lower) || !double.IsFinite(Upper)) throw new CompositionException($"weight bounds [{Lower}, {Upper}] must be finite");
        if (Population is < 1) throw new CompositionException($"the population must be at least 1 (got {Population})");
        if (MaxTokens < 2) throw new CompositionException($"max tokens must be at least 2 (got {MaxTokens})");
    }
}

/// <summary>Progress of a running composition, for progress bars and orchestration status.</summary>
public sealed record CompositionProgress(string Phase, int Done, int Total, double? BestObjective);

/// <summary>
/// The LoraHub loop: select K modules, search their weights with a gradient-free optimizer on the few-shot
/// objective within the budget, merge the best weights into one adapter.
/// </summary>
public sealed class Composer(IAdaptableModel model, ITextTokenizer tokenizer)
{
    public CompositionResult Compose(IReadOnlyList<ModuleRef> pool, IReadOnlyList<Example> examples, CompositionSettings settings,
        string baseModelName, IProgress<CompositionProgress>? progress = null)
    {
        settings.Validate(pool.Count);
        if (examples.Count == 0) throw new CompositionException("no examples to compose from");
        var clock = Stopwatch.StartNew();
        var tokenized = ExampleTokenizer.Tokenize(model.Format, tokenizer, examples, out var warnings, settings.MaxTokens);
        var k = settings.Select ?? pool.Count;

        // 1. Select the modules.
        IReadOnlyList<ModuleRef> chosen;
        if (settings.Selection == "loss")
        {
            progress?.Report(new CompositionProgress("select", 0, pool.Count, null));
            chosen = ModuleSelector.ByLoss(pool, k, m => SingleModuleLoss(m, tokenized),
                new Progress<int>(n => progress?.Report(new CompositionProgress("select", n, pool.Count, null)))).Select(s => s.Module).ToList();
        }
        else
        {
            chosen = ModuleSelector.Random(pool, k, settings.Seed);
        }
        var selectSeconds = clock.Elapsed.TotalSeconds;

        var modules = new List<LoraModule>();
        try
        {
            foreach (var m in chosen) modules.Add(LoraModule.Load(m.Directory, m.Name));
            using var composed = new ComposedModel(model, modules, MergeModes.Parse(settings.Merge));
            if (composed.Mode == MergeMode.LoraHub) warnings = warnings.Concat(InitWarnings(modules)).ToList();
            var loadSeconds = clock.Elapsed.TotalSeconds - selectSeconds;

            // 2. Search the weights.
            var objective = new FewShotObjective(composed, tokenized, settings.L1);
            var optimizer = Optimizers.Create(new OptimizerSettings(settings.Optimizer, k, settings.Budget, settings.Lower, settings.Upper,
                settings.InitialStep, settings.Seed, settings.Population));
            var history = new List<Trial>();
            var best = double.PositiveInfinity;
            progress?.Report(new CompositionProgress("search", 0, settings.Budget, null));
            var searchStart = clock.Elapsed.TotalSeconds;
            while (!optimizer.IsDone)
            {
                var batch = optimizer.Ask();
                if (batch.Count == 0) break;
                var values = settings.BatchCandidates
                    ? objective.EvaluateMany(batch)
                    : batch.Select(objective.Evaluate).ToList();
                optimizer.Tell(values.Select(v => v.Value).ToList());
                for (var i = 0; i < batch.Count; i++)
                {
                    history.Add(new Trial(history.Count + 1, batch[i].ToArray(), values[i].Loss, values[i].L1, values[i].Value));
                    best = Math.Min(best, values[i].Value);
                }
                progress?.Report(new CompositionProgress("search", history.Count, settings.Budget, best));
            }
            var searchSeconds = clock.Elapsed.TotalSeconds - searchStart;
            var winner = optimizer.Best ?? throw new CompositionException("the optimizer evaluated nothing");
            if (!history.Any(h => double.IsFinite(h.Objective)))
                throw new CompositionException($"every one of the {history.Count} evaluations gave a non-finite loss");
            var bestEval = history.First(h => h.Weights.SequenceEqual(winner.Point));

            // 3. Merge the best weights into one adapter.
            var adapter = composed.Merge(winner.Point);
            var record = new CompositionRecord
            {
                BaseModel = baseModelName,
                Merge = settings.Merge,
                Modules = chosen.Select((m, i) => new ModuleWeight(m.Name, m.Directory, winner.Point[i])).ToList(),
                Weights = winner.Point,
                Seed = settings.Seed,
                Selection = settings.Selection,
                Optimizer = settings.Optimizer,
                Budget = settings.Budget,
                L1Coefficient = settings.L1,
                Bounds = [settings.Lower, settings.Upper],
                InitialStep = settings.InitialStep,
                Examples = examples.Count,
                Best = new BestValue(bestEval.Index, bestEval.Loss, bestEval.L1, bestEval.Objective),
                History = history,
                Warnings = warnings.ToList(),
                Rank = composed.Rank,
                Timings = new Timings(selectSeconds, loadSeconds, searchSeconds, history.Count / Math.Max(searchSeconds, 1e-9)),
            };
            return new CompositionResult(record, adapter);
        }
        finally
        {
            foreach (var m in modules) m.Dispose();
        }
    }

    /// <summary>The loss of one pool module alone (weight 1), for ranking; the module is released afterwards.</summary>
    private double SingleModuleLoss(ModuleRef module, IReadOnlyList<Models.TokenizedExample> examples)
    {
        using var loaded = LoraModule.Load(module.Directory, module.Name);
        using var composed = new ComposedModel(model, [loaded]);
        return new FewShotObjective(composed, examples, 0).Evaluate([1.0]).Loss;
    }

    /// <summary>
    /// The paper's merge sums A matrices, which only combines modules that started from the same A
    /// (TOYHUB.md): warn when the modules record different init seeds.
    /// </summary>
    private static IEnumerable<string> InitWarnings(IReadOnlyList<LoraModule> modules)
    {
        var seeds = modules.Select(m => (m.Name, Seed: TrainingInitSeed(m.Directory))).ToList();
        var known = seeds.Where(s => s.Seed is not null).Select(s => s.Seed).Distinct().ToList();
        if (known.Count > 1)
            yield return $"modules were trained from different A initialisations (init seeds {string.Join(", ", known)}): the lorahub merge may not combine them well";
    }

    private static string? TrainingInitSeed(string directory)
    {
        var path = Path.Combine(directory, "lorahub-train.json");
        if (!File.Exists(path)) return null;
        try
        {
            var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path));
            return node?["init_seed"]?.ToJsonString();
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
