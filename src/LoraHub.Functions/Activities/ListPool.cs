using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Storage;
using Microsoft.Azure.Functions.Worker;

namespace LoraHub.Functions.Activities;

/// <summary>
/// The pool a composition selects from: the modules the request names, in its order (each checked to be in the hub),
/// or every module of the hub sorted by name. Selection itself is Core's and runs in the orchestrator.
/// </summary>
public sealed class ListPool(IHubStore store, IFaultInjector faults)
{
    [Function(nameof(ListPool))]
    public Task<ModulePool> Run([ActivityTrigger] ListPoolInput input, CancellationToken ct) => RunAsync(input, ct);

    public async Task<ModulePool> RunAsync(ListPoolInput input, CancellationToken ct = default)
    {
        faults.BeforeActivity(nameof(ListPool));
        var pool = (await store.ListAsync(HubArea.Modules, ct)).Select(m => m.Name).Order(StringComparer.Ordinal).ToList();
        if (input.Modules is { Count: > 0 } named)
        {
            var missing = named.Where(n => !pool.Contains(n, StringComparer.Ordinal)).ToList();
            if (missing.Count > 0)
                throw new CompositionInputException($"modules not in the hub: {string.Join(", ", missing)}");
            return new ModulePool(named);
        }
        if (pool.Count == 0) throw new CompositionInputException("the hub's module pool (modules/) is empty");
        return new ModulePool(pool);
    }
}
