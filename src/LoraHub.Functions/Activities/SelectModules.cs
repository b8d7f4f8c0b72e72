using System.Diagnostics;
using LoraHub.Core.Composition;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Storage;
using Microsoft.Azure.Functions.Worker;

namespace LoraHub.Functions.Activities;

/// <summary>
/// Takes the modules Core selected: fetches the base model and them into the local cache, reports warnings (over-long
/// examples, modules trained from different A initialisations) and returns their hub versions, which the
/// composition's later activities use (PinnedVersions).
/// </summary>
public sealed class SelectModules(IHubStore store, EngineCache engine, IFaultInjector faults)
{
    [Function(nameof(SelectModules))]
    public Task<SelectedModules> Run([ActivityTrigger] SelectModulesInput input, CancellationToken ct) => RunAsync(input, ct);

    public async Task<SelectedModules> RunAsync(SelectModulesInput input, CancellationToken ct = default)
    {
        faults.BeforeActivity(nameof(SelectModules));
        var clock = Stopwatch.StartNew();
        MaterializedItem model;
        try
        {
            model = await store.MaterializeAsync(HubArea.Models, input.BaseModel, ct);
        }
        catch (HubItemNotFoundException e)
        {
            throw new CompositionInputException(e.Message);
        }
        // All at once: on a cold worker with a blob hub each is a download of its own.
        MaterializedItem[] modules;
        try
        {
            modules = await Task.WhenAll(input.Modules.Select(name => store.MaterializeAsync(HubArea.Modules, name, ct)));
        }
        catch (HubItemNotFoundException e)
        {
            throw new CompositionInputException(e.Message);
        }
        var loadSeconds = clock.Elapsed.TotalSeconds;

        var (tokenizer, format) = engine.Tokenizer(model);
        IReadOnlyList<string> truncated;
        lock (tokenizer) ExampleTokenizer.Tokenize(format, tokenizer, input.Examples, out truncated, input.MaxTokens);
        var warnings = truncated.ToList();
        if (input.Merge == "lorahub") warnings.AddRange(ModuleProvenance.InitWarnings(modules.Select(m => m.LocalPath)));
        return new SelectedModules(input.Modules, warnings, new PinnedVersions(model.Version, modules.Select(m => m.Version).ToList()), loadSeconds);
    }
}
