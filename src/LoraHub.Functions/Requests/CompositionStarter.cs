using LoraHub.Functions.Contracts;
using LoraHub.Functions.Orchestration;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;

namespace LoraHub.Functions.Requests;

/// <summary>What became of a start request: the instance id, and whether this call started it or found it there.</summary>
public sealed record StartOutcome(string InstanceId, bool Started, OrchestrationRuntimeStatus? ExistingStatus);

/// <summary>
/// Starts ComposeOrchestrator under a content-derived instance id, once: an instance that exists (pending, running
/// or completed) is left alone. A failed or terminated one is purged and started again, so uploading the same file
/// after a failure retries it.
/// </summary>
public sealed class CompositionStarter(ILogger<CompositionStarter> log)
{
    public async Task<StartOutcome> StartAsync(DurableTaskClient client, CompositionRequest request, string instanceId, CancellationToken ct = default)
    {
        var existing = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: false, ct);
        if (existing is not null)
        {
            if (existing.RuntimeStatus is not (OrchestrationRuntimeStatus.Failed or OrchestrationRuntimeStatus.Terminated))
            {
                log.LogInformation("composition {Id} already exists ({Status}); not starting it again", instanceId, existing.RuntimeStatus);
                return new StartOutcome(instanceId, false, existing.RuntimeStatus);
            }
            log.LogInformation("composition {Id} ended {Status}; starting it again", instanceId, existing.RuntimeStatus);
            await client.PurgeInstanceAsync(instanceId, ct);
        }
        try
        {
            await client.ScheduleNewOrchestrationInstanceAsync(nameof(ComposeOrchestrator), request, new StartOrchestrationOptions(instanceId), ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Two triggers raced for the same id: the other one started it, which is what we wanted.
            var now = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: false, ct);
            if (now is null) throw;
            log.LogInformation("composition {Id} was started concurrently ({Status})", instanceId, now.RuntimeStatus);
            return new StartOutcome(instanceId, false, now.RuntimeStatus);
        }
        log.LogInformation("started composition {Id} of task {Task} ({Budget} evaluations, base {Base})", instanceId, request.Task, request.Settings.Budget, request.BaseModel);
        return new StartOutcome(instanceId, true, null);
    }
}
