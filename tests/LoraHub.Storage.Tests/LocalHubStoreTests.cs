using Xunit;

namespace LoraHub.Storage.Tests;

public sealed class LocalHubStoreTests : HubStoreContract
{
    private readonly LocalHubStore _store;

    public LocalHubStoreTests() => _store = new LocalHubStore(Temp["hub"]);

    protected override IHubStore Store => _store;

    protected override (IHubStore Store, Func<bool> DidNoIo) UntouchedStore()
    {
        var root = Temp[$"untouched-{Guid.NewGuid():N}"];
        return (new LocalHubStore(root), () => !Directory.Exists(root) && !File.Exists(root));
    }

    [Fact]
    public async Task Areas_are_folders_and_materialize_returns_the_hubs_own_folder()
    {
        await _store.PublishFolderAsync(HubArea.Models, "tiny", Temp.Folder("m", ("config.json", "{}")), "config.json");
        var item = await _store.MaterializeAsync(HubArea.Models, "tiny");
        Assert.Equal(Path.Combine(Temp["hub"], "models", "tiny"), item.LocalPath);
        await _store.WriteFileAsync(HubArea.Examples, "t.jsonl", [1]);
        Assert.True(File.Exists(Path.Combine(Temp["hub"], "examples", "t.jsonl")));
    }

    [Fact]
    public async Task Writes_and_publishes_leave_no_temporary_files_or_folders()
    {
        await _store.WriteFileAsync(HubArea.Adapters, "a/x.bin", [1, 2]);
        await _store.WriteFileAsync(HubArea.Adapters, "a/x.bin", [3]);
        await _store.PublishFolderAsync(HubArea.Adapters, "b", VersionedFolder("v1", 1), "lorahub.json");
        await _store.PublishFolderAsync(HubArea.Adapters, "b", VersionedFolder("v2", 2), "lorahub.json");
        var hidden = Directory.GetFileSystemEntries(Temp["hub"], "*", SearchOption.AllDirectories).Where(p => Path.GetFileName(p).StartsWith('.'));
        Assert.Empty(hidden);
    }

    [Fact]
    public async Task Hidden_entries_and_unaddressable_names_are_not_listed()
    {
        Directory.CreateDirectory(Path.Combine(Temp["hub"], "modules", ".staging-x"));
        File.WriteAllText(Path.Combine(Temp["hub"], "modules", ".staging-x", "adapter_config.json"), "{}");
        Directory.CreateDirectory(Path.Combine(Temp["hub"], "modules", "bad name"));
        File.WriteAllText(Path.Combine(Temp["hub"], "modules", "bad name", "adapter_config.json"), "{}");
        Directory.CreateDirectory(Path.Combine(Temp["hub"], "examples"));
        File.WriteAllText(Path.Combine(Temp["hub"], "examples", ".tmp-123-t.jsonl"), "{}");
        Assert.Empty(await _store.ListAsync(HubArea.Modules));
        Assert.Empty(await _store.ListAsync(HubArea.Examples));
    }

    [Fact]
    public async Task Large_files_are_tagged_by_size_and_time_small_ones_also_by_content()
    {
        var small = await _store.WriteFileAsync(HubArea.Examples, "small.jsonl", new byte[100]);
        var large = await _store.WriteFileAsync(HubArea.Examples, "large.jsonl", new byte[100_000]);
        Assert.Equal(3, small.Split('-').Length);
        Assert.Equal(2, large.Split('-').Length);
        Assert.StartsWith($"{100_000:x}-", large);
    }

    [Fact]
    public async Task A_missing_hub_folder_is_an_empty_hub()
    {
        var store = new LocalHubStore(Temp["nothing-here"]);
        foreach (var area in HubNames.Areas) Assert.Empty(await store.ListAsync(area));
    }
}
