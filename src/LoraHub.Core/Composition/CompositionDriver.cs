using LoraHub.Core.Optimization;

namespace LoraHub.Core.Composition;

/// <summary>Scores candidate weight vectors, one value per candidate in order (in process, or fanned out to workers).</summary>
public delegate Task<IReadOnlyList<ObjectiveValue>> CandidateEvaluator(IReadOnlyList<double[]> candidates);

/// <summary>The loss of each pool module alone (weight 1, no L1 term), in order; for loss selection.</summary>
public delegate Task<IReadOnlyList<double>> ModuleProbe(IReadOnlyList<ModuleRef> modules);

/// <summary>Progress of a running composition, for progress bars and orchestration status.</summary>
public sealed record CompositionProgress(string Phase, int Done, int Total, double? BestObjective);

/// <summary>
/// The search's outcome: every evaluation in order, the best weights, the evaluation that gave them and the number of
/// sequential rounds (optimizer batches): in a fan-out the wall time of a search is its rounds, not its evaluations.
/// </summary>
public sealed record SearchResult(IReadOnlyList<Trial> History, double[] Weights, Trial Best, int Rounds);

/// <summary>
/// The LoraHub algorithm, once, for every host: select K modules, then ask the optimizer for candidates, have them
/// evaluated, tell the values, until the budget is spent. Where and how candidates are evaluated is the caller's
/// (the CLI in process, the Durable orchestrator by fanning out activities), so this code is replay-safe: it reads
/// no clock, does no I/O, starts no threads and keeps the caller's synchronization context (no ConfigureAwait).
/// </summary>
public static class CompositionDriver
{
    /// <summary>
    /// The K modules to compose, in composition order. Random selection draws K with the seed from a pool larger than
    /// K and keeps a pool of exactly K in the order given (as the reference does); loss selection probes every pool
    /// module alone and keeps the K lowest losses.
    /// </summary>
    public static async Task<IReadOnlyList<ModuleRef>> SelectAsync(IReadOnlyList<ModuleRef> pool, CompositionSettings settings, ModuleProbe? probe,
        IProgress<CompositionProgress>? progress = null)
    {
        settings.Validate(pool.Count);
        var k = settings.ResolveK(pool.Count);
        if (settings.Selection == "random") return ModuleSelector.Random(pool, k, settings.Seed);
        if (probe is null) throw new ArgumentNullException(nameof(probe), "loss selection needs a module probe");
        progress?.Report(new CompositionProgress("select", 0, pool.Count, null));
        var losses = await probe(pool);
        if (losses.Count != pool.Count)
            throw new InvalidOperationException($"the module probe returned {losses.Count} losses for {pool.Count} modules");
        progress?.Report(new CompositionProgress("select", pool.Count, pool.Count, null));
        return ModuleSelector.ByLoss(pool, k, losses).Select(s => s.Module).ToList();
    }

    /// <summary>Searches the weights of k modules within the budget; each optimizer batch is one call of evaluate.</summary>
    public static async Task<SearchResult> SearchAsync(CompositionSettings settings, int k, CandidateEvaluator evaluate,
        IProgress<CompositionProgress>? progress = null)
    {
        settings.Validate();
        var optimizer = Optimizers.Create(settings.ForOptimizer(k));
        var history = new List<Trial>();
        double? best = null;
        var rounds = 0;
        progress?.Report(new CompositionProgress("search", 0, settings.Budget, null));
        while (!optimizer.IsDone)
        {
            var batch = optimizer.Ask();
            if (batch.Count == 0) break;
            var values = await evaluate(batch);
            if (values.Count != batch.Count)
                throw new InvalidOperationException($"the evaluator returned {values.Count} values for {batch.Count} candidates");
            // A diverged candidate is the worst value, never a NaN that poisons the optimizer.
            optimizer.Tell(values.Select(v => double.IsFinite(v.Value) ? v.Value : double.PositiveInfinity).ToList());
            rounds++;
            for (var i = 0; i < batch.Count; i++)
            {
                var v = values[i];
                var objective = double.IsFinite(v.Value) ? v.Value : double.PositiveInfinity;
                history.Add(new Trial(history.Count + 1, batch[i], v.Loss, v.L1, objective));
                if (double.IsFinite(objective)) best = Math.Min(best ?? double.PositiveInfinity, objective);
            }
            progress?.Report(new CompositionProgress("search", history.Count, settings.Budget, best));
        }
        var winner = optimizer.Best ?? throw new CompositionException("the optimizer evaluated nothing");
        if (best is null)
            throw new CompositionException($"every one of the {history.Count} evaluations gave a non-finite loss");
        var bestTrial = history.First(h => h.Weights.AsSpan().SequenceEqual(winner.Point));
        return new SearchResult(history, winner.Point, bestTrial, rounds);
    }
}
