using LoraHub.Core;
using LoraHub.Core.Composition;
using LoraHub.Core.Optimization;
using LoraHub.Functions.Activities;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Telemetry;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;

namespace LoraHub.Functions.Orchestration;

/// <summary>
/// LoraHub as a Durable orchestration: Core's <see cref="CompositionDriver"/> (the same code `lorahub compose` runs)
/// with every evaluation fanned out to EvaluateCandidates activities; then the best weights are merged into
/// adapters/{task}/. The driver is pure and seeded and awaits only the activities, so a replay asks exactly the same
/// points; this code does no I/O and reads no clock but the orchestration's own.
/// </summary>
public static class ComposeOrchestrator
{
    /// <summary>
    /// Every activity gets 3 attempts, so a worker that dies or a storage hiccup does not end a composition; bad input
    /// (<see cref="CompositionInputException"/>) fails at once, since trying again cannot help.
    /// </summary>
    public static readonly TaskOptions Retry = TaskOptions.FromRetryPolicy(new RetryPolicy(
        maxNumberOfAttempts: 3, firstRetryInterval: TimeSpan.FromSeconds(1), backoffCoefficient: 2)
    {
        HandleFailure = failure => !failure.IsCausedBy<CompositionInputException>(),
    });

    [Function(nameof(ComposeOrchestrator))]
    public static Task<CompositionOutcome> Run([OrchestrationTrigger] TaskOrchestrationContext context) =>
        RunAsync(context, context.GetInput<CompositionRequest>()
            ?? throw new InvalidOperationException("ComposeOrchestrator needs a CompositionRequest input"));

    public static async Task<CompositionOutcome> RunAsync(TaskOrchestrationContext context, CompositionRequest request)
    {
        // A named list is composed whole, in its order.
        var settings = request.Modules is { } named ? request.Settings with { K = named.Count } : request.Settings;
        var started = context.CurrentUtcDateTime;
        // The objective per evaluation so far, for the watch page's curve; one log line per round for operators.
        var evaluated = new List<Evaluation>();
        var log = context.CreateReplaySafeLogger(CompositionTelemetry.Category);
        var status = new SyncProgress<CompositionProgress>(p =>
        {
            context.SetCustomStatus(new CompositionStatus(p.Phase, p.Done, p.Total, p.BestObjective, ObjectiveCurve.Of(evaluated)));
            if (p.Phase == "search" && p.Done > 0)
                CompositionTelemetry.Round(log, context.InstanceId, p.Done, p.BestObjective, (context.CurrentUtcDateTime - started).TotalSeconds);
        });
        status.Report(new CompositionProgress("select", 0, settings.Budget, null));

        // 1. Select the modules (Core), probing each pool module alone in parallel for loss selection.
        var pool = await context.CallActivityAsync<ModulePool>(nameof(ListPool), new ListPoolInput(request.Modules), Retry);
        var chosen = await CompositionDriver.SelectAsync(pool.Names.Select(n => new ModuleRef(n, n)).ToList(), settings,
            modules => ProbeAlone(context, request, modules), status);
        var selected = await context.CallActivityAsync<SelectedModules>(nameof(SelectModules),
            new SelectModulesInput(request.BaseModel, chosen.Select(m => m.Name).ToList(), request.Examples, settings.MaxTokens, settings.Merge), Retry);
        var searchStarted = context.CurrentUtcDateTime;

        // 2. Search the weights (Core): each optimizer batch fans out in chunks.
        var search = await CompositionDriver.SearchAsync(settings, selected.Names.Count, async batch =>
        {
            var values = await Evaluate(context, request, selected, batch);
            var done = evaluated.Count; // read once: AddRange grows the list while it enumerates
            evaluated.AddRange(values.Select((v, i) => new Evaluation(done + i + 1, [], null, v.L1,
                double.IsFinite(v.Value) ? v.Value : Optimizers.WorstValue)));
            return values;
        }, status);
        var searchSeconds = (context.CurrentUtcDateTime - searchStarted).TotalSeconds;

        // 3. Merge the best weights and publish the adapter.
        var best = search.Best.Objective;
        status.Report(new CompositionProgress("materialize", search.History.Count, settings.Budget, best));
        var history = search.History.Select(Evaluation.Of).ToList();
        var adapter = await context.CallActivityAsync<MaterializedAdapter>(nameof(MaterializeAdapter),
            new MaterializeAdapterInput(request with { Examples = [] }, selected.Names, search.Weights, history, selected.Warnings, request.Examples.Count,
                Math.Max(0, (searchStarted - started).TotalSeconds - selected.LoadSeconds), searchSeconds, selected.Versions, search.Rounds, selected.LoadSeconds), Retry);
        status.Report(new CompositionProgress("done", search.History.Count, settings.Budget, best));
        CompositionTelemetry.Ended(log, context.InstanceId, "completed", search.History.Count, best, (context.CurrentUtcDateTime - started).TotalSeconds);
        return new CompositionOutcome(request.Task, request.BaseModel, selected.Names, search.Weights, best,
            double.IsFinite(search.Best.Loss) ? search.Best.Loss : null, search.History.Count, adapter.Path);
    }

    /// <summary>Scores one optimizer batch: chunks of candidates in parallel activities, values back in order.</summary>
    private static async Task<IReadOnlyList<ObjectiveValue>> Evaluate(TaskOrchestrationContext context, CompositionRequest request,
        SelectedModules selected, IReadOnlyList<double[]> batch)
    {
        var settings = request.Settings;
        var chunks = batch.Chunk(Math.Max(1, request.ChunkSize)).Select(chunk =>
            context.CallActivityAsync<CandidateScores>(nameof(EvaluateCandidates),
                new EvaluateCandidatesInput(request.BaseModel, selected.Names, request.Examples, chunk, settings.L1, settings.MaxTokens, settings.Merge,
                    selected.Versions), Retry));
        return (await Task.WhenAll(chunks)).SelectMany(c => c.Scores).Select(s => s.ToObjectiveValue()).ToList();
    }

    /// <summary>Each module alone at weight 1 without the L1 term (what Core's loss selection ranks), all in parallel.</summary>
    private static async Task<IReadOnlyList<double>> ProbeAlone(TaskOrchestrationContext context, CompositionRequest request, IReadOnlyList<ModuleRef> modules)
    {
        var settings = request.Settings;
        var probes = modules.Select(m => context.CallActivityAsync<CandidateScores>(nameof(EvaluateCandidates),
            new EvaluateCandidatesInput(request.BaseModel, [m.Name], request.Examples, [[1.0]], 0, settings.MaxTokens, "lorahub"), Retry));
        return (await Task.WhenAll(probes)).Select(c => c.Scores.Single().Loss ?? double.NaN).ToList();
    }
}
