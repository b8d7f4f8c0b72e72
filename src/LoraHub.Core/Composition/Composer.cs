using System.Diagnostics;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;

namespace LoraHub.Core.Composition;

/// <summary>
/// LoraHub in this process: the <see cref="CompositionDriver"/> with candidates evaluated on a model held in memory.
/// Selects K modules, searches their weights on the few-shot objective within the budget and merges the best
/// weights into one adapter.
/// </summary>
public sealed class Composer(IAdaptableModel model, ITextTokenizer tokenizer)
{
    /// <summary>Composes synchronously (every evaluation runs on the calling thread).</summary>
    public CompositionResult Compose(IReadOnlyList<ModuleRef> pool, IReadOnlyList<Example> examples, CompositionSettings settings,
        string baseModelName, IProgress<CompositionProgress>? progress = null) =>
        // The in-process evaluators complete synchronously, so this never blocks on another thread.
        ComposeAsync(pool, examples, settings, baseModelName, progress).GetAwaiter().GetResult();

    public async Task<CompositionResult> ComposeAsync(IReadOnlyList<ModuleRef> pool, IReadOnlyList<Example> examples, CompositionSettings settings,
        string baseModelName, IProgress<CompositionProgress>? progress = null)
    {
        settings.Validate(pool.Count);
        if (examples.Count == 0) throw new CompositionException("no examples to compose from");
        var clock = Stopwatch.StartNew();
        var tokenized = ExampleTokenizer.Tokenize(model.Format, tokenizer, examples, out var warnings, settings.MaxTokens);

        var chosen = await CompositionDriver.SelectAsync(pool, settings, modules => Task.FromResult(ProbeAlone(modules, tokenized, progress)), progress);
        var selectSeconds = clock.Elapsed.TotalSeconds;

        var merge = MergeModes.Parse(settings.Merge);
        using var composed = ComposedModel.Load(model, chosen.Select(m => m.Directory).ToList(), merge, chosen.Select(m => m.Name).ToList());
        if (merge == MergeMode.LoraHub) warnings = [.. warnings, .. ModuleProvenance.InitWarnings(chosen.Select(m => m.Directory))];
        var loadSeconds = clock.Elapsed.TotalSeconds - selectSeconds;

        var objective = new FewShotObjective(composed, tokenized, settings.L1);
        var search = await CompositionDriver.SearchAsync(settings, chosen.Count, batch => Task.FromResult(settings.BatchCandidates
            ? objective.EvaluateMany(batch)
            : (IReadOnlyList<ObjectiveValue>)batch.Select(objective.Evaluate).ToList()), progress);
        var searchSeconds = clock.Elapsed.TotalSeconds - selectSeconds - loadSeconds;

        var adapter = composed.Merge(search.Weights);
        var record = CompositionRecord.Create(settings, baseModelName, chosen.Select(m => (m.Name, m.Directory)).ToList(), search, composed.Rank,
            examples.Count, warnings, Timings.Of(selectSeconds, loadSeconds, searchSeconds, search.History.Count));
        return new CompositionResult(record, adapter);
    }

    /// <summary>The loss of each module alone (weight 1), loaded one at a time and released: pools can be large.</summary>
    private IReadOnlyList<double> ProbeAlone(IReadOnlyList<ModuleRef> modules, IReadOnlyList<TokenizedExample> examples, IProgress<CompositionProgress>? progress)
    {
        var losses = new List<double>(modules.Count);
        foreach (var m in modules)
        {
            losses.Add(SingleModuleLoss(model, m, examples));
            progress?.Report(new CompositionProgress("select", losses.Count, modules.Count, null));
        }
        return losses;
    }

    /// <summary>The loss of one module alone (weight 1, no L1 term): what loss selection ranks by, in every host.</summary>
    private static double SingleModuleLoss(IAdaptableModel model, ModuleRef module, IReadOnlyList<TokenizedExample> examples)
    {
        using var composed = ComposedModel.Load(model, [module.Directory], MergeMode.LoraHub, [module.Name]);
        return new FewShotObjective(composed, examples, 0).Evaluate([1.0]).Loss;
    }
}
