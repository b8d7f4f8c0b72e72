using LoraHub.Core.Optimization;
using LoraHub.Functions.Activities;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Telemetry;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;

namespace LoraHub.Functions.Orchestration;

/// <summary>
/// LoraHub as a Durable orchestration: select the modules, then ask the optimizer for candidates, score them with
/// EvaluateCandidates activities in parallel, tell the optimizer, repeat until the budget is spent; finally merge
/// the best weights into adapters/{task}/. The optimizer is pure and seeded and runs inline, so a replay asks
/// exactly the same points; this code does no I/O and reads no clock but the orchestration's own.
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
        var started = context.CurrentUtcDateTime;
        context.SetCustomStatus(new CompositionStatus("select", 0, request.Budget, null));

        // 1. Select the modules.
        var selected = await context.CallActivityAsync<SelectedModules>(nameof(SelectModules),
            new SelectModulesInput(request.BaseModel, request.Modules, request.K, request.Seed, request.Examples, request.MaxTokens), Retry);
        var searchStarted = context.CurrentUtcDateTime;

        // 2. Search the weights: ask, fan out, tell.
        var optimizer = Optimizers.Create(new OptimizerSettings(request.Optimizer, selected.Names.Count, request.Budget,
            request.Lower, request.Upper, request.InitialStep, request.Seed, request.Population));
        var history = new List<Evaluation>();
        double? best = null;
        context.SetCustomStatus(new CompositionStatus("search", 0, request.Budget, null));
        while (!optimizer.IsDone)
        {
            var batch = optimizer.Ask();
            if (batch.Count == 0) break;
            var chunks = batch.Chunk(Math.Max(1, request.ChunkSize)).Select(chunk =>
                context.CallActivityAsync<CandidateScores>(nameof(EvaluateCandidates),
                    new EvaluateCandidatesInput(request.BaseModel, selected.Names, request.Examples, chunk, request.L1, request.MaxTokens, request.Merge, selected.Versions), Retry));
            var scores = (await Task.WhenAll(chunks)).SelectMany(c => c.Scores).ToList();
            if (scores.Count != batch.Count)
                throw new InvalidOperationException($"EvaluateCandidates returned {scores.Count} scores for {batch.Count} candidates");
            optimizer.Tell(scores.Select(s => s.Objective).ToList());
            for (var i = 0; i < batch.Count; i++)
            {
                history.Add(new Evaluation(history.Count + 1, batch[i], scores[i].Loss, scores[i].L1, scores[i].Objective));
                if (scores[i].Loss is not null) best = Math.Min(best ?? double.MaxValue, scores[i].Objective);
            }
            context.SetCustomStatus(new CompositionStatus("search", history.Count, request.Budget, best, ObjectiveCurve.Of(history)));
            CompositionTelemetry.Round(context.CreateReplaySafeLogger(CompositionTelemetry.Category), context.InstanceId, history.Count, best, (context.CurrentUtcDateTime - started).TotalSeconds);
        }
        var winner = optimizer.Best ?? throw new InvalidOperationException("the optimizer evaluated nothing");
        if (best is null)
            throw new InvalidOperationException($"every one of the {history.Count} evaluations gave a non-finite loss");
        var searchSeconds = (context.CurrentUtcDateTime - searchStarted).TotalSeconds;

        // 3. Merge the best weights and publish the adapter.
        context.SetCustomStatus(new CompositionStatus("materialize", history.Count, request.Budget, best));
        var adapter = await context.CallActivityAsync<MaterializedAdapter>(nameof(MaterializeAdapter),
            new MaterializeAdapterInput(request with { Examples = [] }, selected.Names, winner.Point, history, selected.Warnings, request.Examples.Count,
                (searchStarted - started).TotalSeconds, searchSeconds, selected.Versions), Retry);
        var bestEvaluation = history.First(h => h.Weights.AsSpan().SequenceEqual(winner.Point));
        context.SetCustomStatus(new CompositionStatus("done", history.Count, request.Budget, best, ObjectiveCurve.Of(history)));
        CompositionTelemetry.Ended(context.CreateReplaySafeLogger(CompositionTelemetry.Category), context.InstanceId, "completed", history.Count, best, (context.CurrentUtcDateTime - started).TotalSeconds);
        return new CompositionOutcome(request.Task, request.BaseModel, selected.Names, winner.Point, winner.Value,
            bestEvaluation.Loss, history.Count, adapter.Path);
    }
}
