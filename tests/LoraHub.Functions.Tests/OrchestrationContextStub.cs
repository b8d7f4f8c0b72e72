using Microsoft.DurableTask;
using Microsoft.DurableTask.Entities;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LoraHub.Functions.Tests;

/// <summary>
/// The parts of a TaskOrchestrationContext that ComposeOrchestrator never uses (timers, events, sub-orchestrations,
/// entities): they throw, so a test context only says how activities, the clock and the custom status behave.
/// </summary>
public abstract class OrchestrationContextStub : TaskOrchestrationContext
{
    public override TaskName Name => new("ComposeOrchestrator");
    public override ParentOrchestrationInstance? Parent => null;
    public override TaskOrchestrationEntityFeature Entities => throw new NotSupportedException();
    protected override ILoggerFactory LoggerFactory => NullLoggerFactory.Instance;

    public override T GetInput<T>() => throw new NotSupportedException();
    public override Task<TResult> CallSubOrchestratorAsync<TResult>(TaskName orchestratorName, object? input = null, TaskOptions? options = null) => throw new NotSupportedException();
    public override Task CreateTimer(DateTime fireAt, CancellationToken cancellationToken) => throw new NotSupportedException();
    public override Task<T> WaitForExternalEvent<T>(string eventName, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    public override void SendEvent(string instanceId, string eventName, object payload) => throw new NotSupportedException();
    public override void ContinueAsNew(object? newInput = null, bool preserveUnprocessedEvents = true) => throw new NotSupportedException();
    public override Guid NewGuid() => throw new NotSupportedException();
}
