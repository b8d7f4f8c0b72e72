using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using Microsoft.Azure.Functions.Worker;

namespace LoraHub.Functions.Activities;

/// <summary>
/// Scores a chunk of candidate weight vectors with the few-shot objective (mean example loss + l1 * mean |w|): the
/// heavy work of a composition. Runs on the cached engine of this worker, or on the GPU evaluators when
/// LoraHub:EvaluatorUrl is set.
/// </summary>
public sealed class EvaluateCandidates(ICandidateEvaluator evaluator, IFaultInjector faults)
{
    [Function(nameof(EvaluateCandidates))]
    public Task<CandidateScores> Run([ActivityTrigger] EvaluateCandidatesInput input, CancellationToken ct) => RunAsync(input, ct);

    public Task<CandidateScores> RunAsync(EvaluateCandidatesInput input, CancellationToken ct = default)
    {
        faults.BeforeActivity(nameof(EvaluateCandidates));
        return evaluator.EvaluateAsync(input, ct);
    }
}
