using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TorchSharp;

namespace LoraHub.Functions.Engine;

/// <summary>
/// The loaded base models of this worker process, each with a few module compositions, keyed by hub name and
/// version (blob ETags: a changed model or module is loaded again, an unchanged one never). Bounded: the least
/// recently used model is disposed once nobody holds it. A loaded model is not thread-safe while adapters are
/// swapped in and out, so every use goes through a <see cref="ModelLease"/> that holds the model's lock.
/// </summary>
public sealed class EngineCache(IHubStore store, IOptions<LoraHubOptions> options, ILogger<EngineCache> log) : IDisposable
{
    private readonly object gate = new();
    private readonly List<ModelEntry> models = []; // least recently used first
    private readonly LoraHubOptions settings = options.Value;

    /// <summary>Number of models loaded now (for tests and logs).</summary>
    public int LoadedModels
    {
        get { lock (gate) return models.Count(m => m.IsLoaded); }
    }

    /// <summary>How many times a base model was loaded from disk since start (cache misses).</summary>
    public int ModelLoads => Volatile.Read(ref modelLoads);
    private int modelLoads;

    private readonly Dictionary<string, Lazy<(ITextTokenizer, FewShotFormat)>> tokenizers = [];

    /// <summary>
    /// The tokenizer of a base model already fetched from the hub, without its weights, cached by model version.
    /// Encoding is guarded by a lock on the returned tokenizer: callers lock it while they tokenize. The format comes
    /// from config.json alone.
    /// </summary>
    public (ITextTokenizer Tokenizer, FewShotFormat Format) Tokenizer(MaterializedItem item)
    {
        Lazy<(ITextTokenizer, FewShotFormat)> lazy;
        lock (tokenizers)
        {
            var key = ModelKey(item.Name, item.Version);
            if (!tokenizers.TryGetValue(key, out lazy!))
            {
                foreach (var stale in tokenizers.Keys.Where(k => k.StartsWith(item.Name + "@", StringComparison.Ordinal)).ToList()) tokenizers.Remove(stale);
                tokenizers[key] = lazy = new Lazy<(ITextTokenizer, FewShotFormat)>(
                    () => (ModelLoader.LoadTokenizer(item.LocalPath), ModelLoader.FormatOf(item.LocalPath)), LazyThreadSafetyMode.PublicationOnly);
            }
        }
        return lazy.Value;
    }

    /// <summary>Waits for exclusive use of the base model (loading it on first use) and returns the lease.</summary>
    public Task<ModelLease> AcquireAsync(string baseModel, CancellationToken ct = default) => AcquireAsync(baseModel, HubArea.Modules, [], ct);

    /// <summary>
    /// Waits for exclusive use of the base model composed with these hub items (modules, or one composed adapter), in
    /// this order. Everything is fetched from the hub before the model is locked; the composition's stacked weights
    /// are cached per model by names and versions.
    /// </summary>
    public async Task<ModelLease> AcquireAsync(string baseModel, HubArea area, IReadOnlyList<string> names, CancellationToken ct = default, MergeMode merge = MergeMode.LoraHub)
    {
        var item = await store.MaterializeAsync(HubArea.Models, baseModel, ct);
        var parts = await Task.WhenAll(names.Select(n => store.MaterializeAsync(area, n, ct)));
        while (true)
        {
            var entry = Entry(item);
            await entry.Gate.WaitAsync(ct);
            if (entry.Evicted)
            {
                entry.Gate.Release();
                continue; // evicted while we waited: take the current entry
            }
            try
            {
                if (!entry.IsLoaded)
                {
                    log.LogInformation("loading base model {Model} ({Version})", item.Name, item.Version);
                    entry.Load(settings.Device);
                    Interlocked.Increment(ref modelLoads);
                }
            }
            catch
            {
                entry.Gate.Release();
                Forget(entry);
                throw;
            }
            var lease = new ModelLease(entry, settings.MaxCompositionsPerModel);
            try
            {
                if (parts.Length > 0) lease.Compose(area, parts, merge);
            }
            catch
            {
                lease.Dispose();
                throw;
            }
            return lease;
        }
    }

    /// <summary>
    /// <see cref="AcquireAsync(string, HubArea, IReadOnlyList{string}, CancellationToken, MergeMode)"/> for a composition
    /// whose versions are known (the ones SelectModules saw, in the orchestration's activity inputs): when the model and
    /// this composition are loaded at exactly these versions they are used without asking the hub, which otherwise
    /// checks every item's version on every call (on blob storage one listing per module per activity). Anything not
    /// loaded at these versions is fetched as usual, at the hub's current versions.
    /// </summary>
    public async Task<ModelLease> AcquireAsync(string baseModel, string? baseVersion, HubArea area, IReadOnlyList<string> names,
        IReadOnlyList<string>? versions, CancellationToken ct = default, MergeMode merge = MergeMode.LoraHub)
    {
        if (baseVersion is not null && versions is not null && versions.Count == names.Count && names.Count > 0
            && await TryAcquireLoadedAsync(ModelKey(baseModel, baseVersion), CompositionKey(merge, area, names.Zip(versions)), ct) is { } lease)
            return lease;
        return await AcquireAsync(baseModel, area, names, ct, merge);
    }

    /// <summary>The lease of a loaded model with a loaded composition, or null (nothing waited for but the model's lock).</summary>
    private async Task<ModelLease?> TryAcquireLoadedAsync(string modelKey, string compositionKey, CancellationToken ct)
    {
        ModelEntry? entry;
        lock (gate)
        {
            var found = models.FindIndex(m => m.Key == modelKey);
            if (found < 0 || !models[found].IsLoaded) return null;
            entry = models[found];
            models.RemoveAt(found);
            models.Add(entry); // most recently used
        }
        await entry.Gate.WaitAsync(ct);
        if (entry.Evicted || !entry.IsLoaded)
        {
            entry.Gate.Release();
            return null;
        }
        var lease = new ModelLease(entry, settings.MaxCompositionsPerModel);
        if (lease.TryUseLoaded(compositionKey)) return lease;
        lease.Dispose();
        return null;
    }

    internal static string ModelKey(string name, string version) => $"{name}@{version}";

    /// <summary>A composition's cache key: merge mode and every item's name and version, in order.</summary>
    internal static string CompositionKey(MergeMode merge, HubArea area, IEnumerable<(string Name, string Version)> items) =>
        merge.Name() + ":" + string.Join("|", items.Select(i => $"{area}/{i.Name}@{i.Version}"));

    private ModelEntry Entry(MaterializedItem item)
    {
        var evicted = new List<ModelEntry>();
        ModelEntry entry;
        lock (gate)
        {
            var key = ModelKey(item.Name, item.Version);
            var found = models.FindIndex(m => m.Key == key);
            if (found >= 0)
            {
                entry = models[found];
                models.RemoveAt(found);
                models.Add(entry);
            }
            else
            {
                entry = new ModelEntry(key, item);
                // An older version of the same model is never used again; beyond the bound the oldest goes.
                evicted.AddRange(models.Where(m => m.Item.Name == item.Name));
                models.RemoveAll(m => m.Item.Name == item.Name);
                while (models.Count >= Math.Max(1, settings.MaxModels))
                {
                    evicted.Add(models[0]);
                    models.RemoveAt(0);
                }
                models.Add(entry);
            }
            foreach (var e in evicted) e.Evicted = true;
        }
        foreach (var e in evicted) _ = DisposeWhenIdleAsync(e);
        return entry;
    }

    private void Forget(ModelEntry entry)
    {
        lock (gate)
        {
            if (!models.Remove(entry)) return;
            entry.Evicted = true;
        }
        _ = DisposeWhenIdleAsync(entry);
    }

    private async Task DisposeWhenIdleAsync(ModelEntry entry)
    {
        await entry.Gate.WaitAsync();
        try
        {
            if (entry.IsLoaded) log.LogInformation("unloading base model {Key}", entry.Key);
            entry.Dispose();
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    public void Dispose()
    {
        List<ModelEntry> all;
        lock (gate)
        {
            all = [.. models];
            models.Clear();
        }
        foreach (var e in all)
        {
            e.Evicted = true;
            e.Gate.Wait();
            try { e.Dispose(); } finally { e.Gate.Release(); }
        }
    }
}

/// <summary>One loaded base model with its tokenizer and a few cached compositions (each owns its modules).</summary>
internal sealed class ModelEntry(string key, MaterializedItem item) : IDisposable
{
    public string Key { get; } = key;
    public MaterializedItem Item { get; } = item;
    public SemaphoreSlim Gate { get; } = new(1, 1);
    public volatile bool Evicted;
    public IAdaptableModel? Model { get; private set; }
    public ITextTokenizer? Tokenizer { get; private set; }
    public List<CompositionEntry> Compositions { get; } = []; // least recently used first
    public bool IsLoaded => Model is not null;

    public void Load(string device)
    {
        var tokenizer = ModelLoader.LoadTokenizer(Item.LocalPath);
        Model = ModelLoader.Load(Item.LocalPath, device: device == "cpu" ? null : torch.device(device));
        Tokenizer = tokenizer;
    }

    public void Dispose()
    {
        foreach (var c in Compositions) c.Dispose();
        Compositions.Clear();
        Model?.Dispose();
        Model = null;
    }
}

/// <summary>A loaded composition of this model, by its key (merge, modules and their versions).</summary>
internal sealed record CompositionEntry(string Key, ComposedModel Composed) : IDisposable
{
    public void Dispose() => Composed.Dispose();
}

/// <summary>Exclusive use of a loaded base model; disposing it detaches any adapter and releases the model.</summary>
public sealed class ModelLease : IDisposable
{
    private readonly ModelEntry entry;
    private readonly int maxCompositions;
    private bool released;

    internal ModelLease(ModelEntry entry, int maxCompositions)
    {
        (this.entry, this.maxCompositions) = (entry, Math.Max(1, maxCompositions));
    }

    public IAdaptableModel Model => entry.Model!;
    public ITextTokenizer Tokenizer => entry.Tokenizer!;
    /// <summary>The base model's hub name, local folder and version key.</summary>
    public MaterializedItem Item => entry.Item;
    /// <summary>The model with the requested modules attached (set the weights before a forward pass).</summary>
    public ComposedModel Composed => composed ?? throw new InvalidOperationException("this lease was taken without modules");
    private ComposedModel? composed;

    internal void Compose(HubArea area, IReadOnlyList<MaterializedItem> items, MergeMode merge)
    {
        var key = EngineCache.CompositionKey(merge, area, items.Select(i => (i.Name, i.Version)));
        var found = entry.Compositions.FindIndex(c => c.Key == key);
        CompositionEntry composition;
        if (found >= 0)
        {
            composition = entry.Compositions[found];
            entry.Compositions.RemoveAt(found);
        }
        else
        {
            composition = new CompositionEntry(key, ComposedModel.Load(Model, items.Select(i => i.LocalPath).ToList(), merge, items.Select(i => i.Name).ToList()));
            while (entry.Compositions.Count >= maxCompositions)
            {
                entry.Compositions[0].Dispose();
                entry.Compositions.RemoveAt(0);
            }
        }
        entry.Compositions.Add(composition);
        composed = composition.Composed;
    }

    /// <summary>Uses a composition of this model that is loaded already; false when there is none with this key.</summary>
    internal bool TryUseLoaded(string key)
    {
        var found = entry.Compositions.FindIndex(c => c.Key == key);
        if (found < 0) return false;
        var composition = entry.Compositions[found];
        entry.Compositions.RemoveAt(found);
        entry.Compositions.Add(composition); // most recently used
        composed = composition.Composed;
        return true;
    }

    public void Dispose()
    {
        if (released) return;
        released = true;
        composed?.Clear(); // the next user starts from the bare base model
        entry.Gate.Release();
    }
}
