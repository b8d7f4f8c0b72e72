namespace LoraHub.Core;

/// <summary>
/// Reports on the calling thread, in order. System.Progress posts to the thread pool, which reorders reports and,
/// inside a Durable orchestrator, would break replay; every progress sink of the project uses this one instead.
/// </summary>
public sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
