using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Storage;
using Microsoft.Azure.Functions.Worker;

namespace LoraHub.Functions.Activities;

/// <summary>
/// Picks the K modules of a composition: the explicit list, or K drawn at random with the seed from the hub's pool
/// sorted by name (ModuleSelector.Random, as the CLI does). Also fetches the base model and the chosen modules into
/// the local cache, reports warnings (over-long examples, modules trained from different A initialisations) and
/// returns their hub versions, which the composition's later activities use (PinnedVersions).
/// </summary>
public sealed class SelectModules(IHubStore store, EngineCache engine, IFaultInjector faults)
{
    public const int DefaultK = 20;

    [Function(nameof(SelectModules))]
    public Task<SelectedModules> Run([ActivityTrigger] SelectModulesInput input, CancellationToken ct) => RunAsync(input, ct);

    public async Task<SelectedModules> RunAsync(SelectModulesInput input, CancellationToken ct = default)
    {
        faults.BeforeActivity(nameof(SelectModules));
        var pool = (await store.ListAsync(HubArea.Modules, ct)).Select(m => m.Name).Order(StringComparer.Ordinal).ToList();
        IReadOnlyList<string> chosen;
        if (input.Modules is { Count: > 0 } named)
        {
            var missing = named.Where(n => !pool.Contains(n, StringComparer.Ordinal)).ToList();
            if (missing.Count > 0)
                throw new CompositionInputException($"modules not in the hub: {string.Join(", ", missing)}");
            chosen = named;
        }
        else
        {
            if (pool.Count == 0) throw new CompositionInputException("the hub's module pool (modules/) is empty");
            var k = input.K ?? Math.Min(DefaultK, pool.Count);
            if (k < 1 || k > pool.Count) throw new CompositionInputException($"cannot select {k} modules from a pool of {pool.Count}");
            chosen = ModuleSelector.Random(pool.Select(n => new ModuleRef(n, n)).ToList(), k, input.Seed).Select(m => m.Name).ToList();
        }

        var warnings = new List<string>();
        MaterializedItem model;
        try
        {
            model = await store.MaterializeAsync(HubArea.Models, input.BaseModel, ct);
        }
        catch (HubItemNotFoundException e)
        {
            throw new CompositionInputException(e.Message);
        }
        var (tokenizer, format) = engine.Tokenizer(model);
        IReadOnlyList<string> truncated;
        lock (tokenizer) ExampleTokenizer.Tokenize(format, tokenizer, input.Examples, out truncated, input.MaxTokens);
        warnings.AddRange(truncated);

        // All at once: on a cold worker with a blob hub each is a download of its own.
        var modules = await Task.WhenAll(chosen.Select(name => store.MaterializeAsync(HubArea.Modules, name, ct)));
        var seeds = modules.Select(m => InitSeed(m.LocalPath)).OfType<string>().ToList();
        if (seeds.Distinct().Count() > 1)
            warnings.Add($"modules were trained from different A initialisations (init seeds {string.Join(", ", seeds.Distinct())}): the lorahub merge may not combine them well");
        return new SelectedModules(chosen, warnings, new PinnedVersions(model.Version, modules.Select(m => m.Version).ToList()));
    }

    private static string? InitSeed(string directory)
    {
        var path = Path.Combine(directory, "lorahub-train.json");
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path))?["init_seed"]?.ToJsonString();
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
