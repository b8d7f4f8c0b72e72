using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Functions.Engine;
using LoraHub.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>The per-process engine cache: keyed by hub name and version, bounded, one user of a model at a time.</summary>
[Collection(FunctionsCollection.Name)]
public sealed class EngineCacheTests(FunctionsHub hub)
{
    private EngineCache NewCache(int maxModels) =>
        new(hub.Store, Options.Create(new LoraHubOptions { MaxModels = maxModels }), NullLogger<EngineCache>.Instance);

    [Fact]
    public async Task Models_load_once_and_the_least_recently_used_is_disposed_beyond_the_bound()
    {
        await hub.Store.PublishFolderAsync(HubArea.Models, "tiny-t5-copy", FunctionsHub.TinyT5, "config.json");
        try
        {
            using var cache = NewCache(maxModels: 1);
            IAdaptableModel first;
            using (var lease = await cache.AcquireAsync(FunctionsHub.BaseModel)) first = lease.Model;
            using (var lease = await cache.AcquireAsync(FunctionsHub.BaseModel)) Assert.Same(first, lease.Model);
            Assert.Equal(1, cache.ModelLoads);
            using (var lease = await cache.AcquireAsync("tiny-t5-copy")) Assert.NotSame(first, lease.Model);
            Assert.Equal(2, cache.ModelLoads);
            Assert.Equal(1, cache.LoadedModels);
            using (var lease = await cache.AcquireAsync(FunctionsHub.BaseModel)) Assert.NotSame(first, lease.Model);
            Assert.Equal(3, cache.ModelLoads);
        }
        finally
        {
            foreach (var f in new[] { "config.json", "model.safetensors", "spiece.model", "generation_config.json", "special_tokens_map.json", "tokenizer_config.json" })
                await hub.Store.DeleteFileAsync(HubArea.Models, $"tiny-t5-copy/{f}");
        }
    }

    [Fact]
    public async Task A_model_has_one_user_at_a_time()
    {
        using var cache = NewCache(maxModels: 2);
        var first = await cache.AcquireAsync(FunctionsHub.BaseModel);
        var second = cache.AcquireAsync(FunctionsHub.BaseModel);
        await Task.Delay(200);
        Assert.False(second.IsCompleted, "the second lease waits for the first");
        first.Dispose();
        using var lease = await second.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Same(first.Model, lease.Model);
    }

    [Fact]
    public async Task A_changed_module_is_composed_again_and_an_unchanged_one_is_reused()
    {
        using var cache = NewCache(maxModels: 1);
        await hub.Store.PublishFolderAsync(HubArea.Modules, "changing", FunctionsHub.ModuleFolder("lora_0"), "adapter_config.json");
        try
        {
            var examples = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, ModelLoader.LoadTokenizer(FunctionsHub.TinyT5), FunctionsHub.Examples, out _);
            async Task<(object Composed, double Loss)> Score()
            {
                using var lease = await cache.AcquireAsync(FunctionsHub.BaseModel, HubArea.Modules, ["changing"]);
                return (lease.Composed, new FewShotObjective(lease.Composed, examples).Evaluate([1.0]).Loss);
            }
            var before = await Score();
            var same = await Score();
            Assert.Same(before.Composed, same.Composed);
            Assert.Equal(before.Loss, same.Loss);
            await hub.Store.PublishFolderAsync(HubArea.Modules, "changing", FunctionsHub.ModuleFolder("lora_1"), "adapter_config.json");
            var after = await Score();
            Assert.NotSame(before.Composed, after.Composed);
            Assert.NotEqual(before.Loss, after.Loss);
        }
        finally
        {
            await hub.Store.DeleteFileAsync(HubArea.Modules, "changing/adapter_model.safetensors");
            await hub.Store.DeleteFileAsync(HubArea.Modules, "changing/adapter_config.json");
        }
    }

    [Fact]
    public async Task A_composition_loaded_at_its_pinned_versions_is_used_without_asking_the_hub()
    {
        var store = new CountingStore(hub.Store);
        using var cache = new EngineCache(store, Options.Create(new LoraHubOptions { MaxModels = 1 }), NullLogger<EngineCache>.Instance);
        var model = await hub.Store.MaterializeAsync(HubArea.Models, FunctionsHub.BaseModel);
        var versions = (await Task.WhenAll(FunctionsHub.Modules.Select(m => hub.Store.MaterializeAsync(HubArea.Modules, m)))).Select(m => m.Version).ToList();
        Task<ModelLease> Acquire(IReadOnlyList<string> pinned) =>
            cache.AcquireAsync(FunctionsHub.BaseModel, model.Version, HubArea.Modules, FunctionsHub.Modules, pinned);

        object first;
        using (var lease = await Acquire(versions)) first = lease.Composed;
        Assert.Equal(1 + 3, store.Materializations); // not loaded yet: fetched from the hub as usual
        using (var lease = await Acquire(versions)) Assert.Same(first, lease.Composed);
        Assert.Equal(1 + 3, store.Materializations); // loaded at exactly these versions: no hub request

        // Versions this worker does not have loaded: the hub's current ones are fetched (here the same as loaded).
        using (var lease = await Acquire(["other", .. versions.Skip(1)])) Assert.Same(first, lease.Composed);
        Assert.Equal(2 * (1 + 3), store.Materializations);
        Assert.Equal(1, cache.ModelLoads);
    }

    /// <summary>Counts MaterializeAsync calls (each one asks the hub for the item's current version).</summary>
    private sealed class CountingStore(IHubStore inner) : IHubStore
    {
        private int materializations;
        public int Materializations => Volatile.Read(ref materializations);
        public string Kind => inner.Kind;
        public Task<IReadOnlyList<HubItem>> ListAsync(HubArea area, CancellationToken ct = default) => inner.ListAsync(area, ct);
        public Task<StoredFile?> ReadFileAsync(HubArea area, string path, CancellationToken ct = default) => inner.ReadFileAsync(area, path, ct);
        public Task<string> WriteFileAsync(HubArea area, string path, byte[] content, CancellationToken ct = default) => inner.WriteFileAsync(area, path, content, ct);
        public Task<bool> DeleteFileAsync(HubArea area, string path, CancellationToken ct = default) => inner.DeleteFileAsync(area, path, ct);
        public Task PublishFolderAsync(HubArea area, string name, string localFolder, string commitMarker, CancellationToken ct = default) =>
            inner.PublishFolderAsync(area, name, localFolder, commitMarker, ct);

        public Task<MaterializedItem> MaterializeAsync(HubArea area, string name, CancellationToken ct = default)
        {
            Interlocked.Increment(ref materializations);
            return inner.MaterializeAsync(area, name, ct);
        }
    }
}
