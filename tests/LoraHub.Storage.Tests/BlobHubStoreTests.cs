using Azure.Core;
using Azure.Storage.Blobs;
using LoraHub.Testing;
using Xunit;

namespace LoraHub.Storage.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class BlobHubStoreTests : HubStoreContract
{
    private readonly AzuriteFixture _azurite;
    private readonly CountingPolicy _counter = new();
    private readonly BlobHubStore _store;

    public BlobHubStoreTests(AzuriteFixture azurite)
    {
        _azurite = azurite;
        _store = NewStore(_counter, Temp["cache"]);
    }

    protected override IHubStore Store => _store;

    private BlobHubStore NewStore(CountingPolicy counter, string cacheRoot)
    {
        var options = new BlobClientOptions();
        options.AddPolicy(counter, HttpPipelinePosition.PerRetry);
        return new BlobHubStore(new BlobServiceClient(_azurite.ConnectionString, options), cacheRoot);
    }

    protected override (IHubStore Store, Func<bool> DidNoIo) UntouchedStore()
    {
        var counter = new CountingPolicy();
        var cache = Temp[$"untouched-{Guid.NewGuid():N}"];
        return (NewStore(counter, cache), () => counter.Requests == 0 && !Directory.Exists(cache));
    }

    private async Task<(string Name, int Files)> PublishModelAsync(int shards = 3)
    {
        var name = Names.Unique("model");
        var files = Enumerable.Range(0, shards).Select(i => ($"shard-{i}.bin", new string('s', 1000 + i))).Append(("config.json", "{}")).ToArray();
        await _store.PublishFolderAsync(HubArea.Models, name, Temp.Folder($"src-{name}", files), "config.json");
        return (name, files.Length);
    }

    [Fact]
    public async Task Materialize_downloads_once_then_reuses_the_cache_also_from_another_store()
    {
        var (name, files) = await PublishModelAsync();
        _counter.Reset();
        var first = await _store.MaterializeAsync(HubArea.Models, name);
        Assert.Equal(files, _counter.Downloads);
        Assert.StartsWith(Path.Combine(Temp["cache"], "models", name) + Path.DirectorySeparatorChar, first.LocalPath);
        Assert.Equal(first.Version, Path.GetFileName(first.LocalPath));

        _counter.Reset();
        var second = await _store.MaterializeAsync(HubArea.Models, name);
        Assert.Equal(first, second);
        Assert.Equal(0, _counter.Downloads);
        Assert.Equal(1, _counter.Requests); // the listing that finds the version

        // Another store (another process would be the same) on the same cache folder.
        var otherCounter = new CountingPolicy();
        var third = await NewStore(otherCounter, Temp["cache"]).MaterializeAsync(HubArea.Models, name);
        Assert.Equal(first, third);
        Assert.Equal(0, otherCounter.Downloads);
    }

    [Fact]
    public async Task Eight_concurrent_materializations_download_each_blob_once()
    {
        var (name, files) = await PublishModelAsync(shards: 6);
        _counter.Reset();
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => _store.MaterializeAsync(HubArea.Models, name))));
        Assert.Single(results.Distinct());
        Assert.Equal(files, _counter.Downloads);
        Assert.Equal(files, Directory.GetFiles(results[0].LocalPath).Length);
        // No temporary folders left next to the version folder.
        Assert.Equal([results[0].LocalPath], Directory.GetDirectories(Path.GetDirectoryName(results[0].LocalPath)!));
    }

    [Fact]
    public async Task Stores_with_their_own_locks_on_one_cache_still_publish_complete_folders()
    {
        // Cache roots that are one folder through different symbolic links stand in for separate processes: the
        // in-process lock is per path, so only the temp-folder-then-rename rule keeps them from mixing files.
        var (name, files) = await PublishModelAsync(shards: 5);
        var cache = Temp["shared-cache"];
        Directory.CreateDirectory(cache);
        var spellings = Enumerable.Range(0, 6).Select(i => Directory.CreateSymbolicLink(Temp[$"link-{i}"], cache).FullName).ToArray();
        var results = await Task.WhenAll(spellings.Select(s => Task.Run(() => new BlobHubStore(_store.Service, s).MaterializeAsync(HubArea.Models, name))));
        Assert.Single(results.Select(r => r.Version).Distinct());
        foreach (var r in results) Assert.Equal(files, Directory.GetFiles(r.LocalPath).Length);
        Assert.Single(Directory.GetDirectories(Path.Combine(cache, "models", name)));
    }

    [Fact]
    public async Task A_large_blob_comes_down_in_ranges_and_is_checked_against_its_content_md5()
    {
        var name = Names.Unique("model");
        var big = new byte[20 << 20];
        new Random(3).NextBytes(big);
        var source = Temp.Folder($"src-{name}", ("config.json", "{}"));
        File.WriteAllBytes(Path.Combine(source, "model.safetensors"), big);
        await _store.PublishFolderAsync(HubArea.Models, name, source, "config.json");
        _counter.Reset();
        var item = await _store.MaterializeAsync(HubArea.Models, name);
        Assert.Equal(big, File.ReadAllBytes(Path.Combine(item.LocalPath, "model.safetensors")));
        Assert.True(_counter.Downloads >= 1 + 3, $"{_counter.Downloads} GETs: 20 MB should come down as 3 ranges of 8 MB");
    }

    [Fact]
    public async Task A_blob_whose_content_does_not_match_its_md5_is_refused_with_its_name_and_nothing_is_kept()
    {
        var (name, _) = await PublishModelAsync();
        var blob = new BlobServiceClient(_azurite.ConnectionString).GetBlobContainerClient("models").GetBlobClient($"{name}/shard-2.bin");
        await blob.SetHttpHeadersAsync(new Azure.Storage.Blobs.Models.BlobHttpHeaders { ContentHash = new byte[16] });
        var e = await Assert.ThrowsAsync<IOException>(() => _store.MaterializeAsync(HubArea.Models, name));
        Assert.Contains($"models/{name}/shard-2.bin", e.Message);
        Assert.Contains("Content-MD5", e.Message);
        var cache = Path.Combine(Temp["cache"], "models", name);
        Assert.True(!Directory.Exists(cache) || Directory.GetDirectories(cache).Length == 0);
    }

    [Fact]
    public async Task A_changed_blob_gives_a_new_version_folder_and_keeps_the_old_one()
    {
        var (name, _) = await PublishModelAsync();
        var first = await _store.MaterializeAsync(HubArea.Models, name);
        await _store.WriteFileAsync(HubArea.Models, $"{name}/shard-0.bin", "changed"u8.ToArray());
        _counter.Reset();
        var second = await _store.MaterializeAsync(HubArea.Models, name);
        Assert.NotEqual(first.LocalPath, second.LocalPath);
        Assert.Equal("changed", File.ReadAllText(Path.Combine(second.LocalPath, "shard-0.bin")));
        Assert.NotEqual("changed", File.ReadAllText(Path.Combine(first.LocalPath, "shard-0.bin")));
        Assert.Equal(4, _counter.Downloads); // a new version downloads all of its files
    }

    [Fact]
    public async Task A_blob_replaced_between_listing_and_download_is_noticed_and_the_new_version_downloaded()
    {
        var (name, files) = await PublishModelAsync();
        var sneaky = new BlobServiceClient(_azurite.ConnectionString).GetBlobContainerClient("models").GetBlobClient($"{name}/shard-1.bin");
        var changes = 0;
        _counter.BeforeDownload = _ =>
        {
            if (Interlocked.Increment(ref changes) == 1) sneaky.Upload(BinaryData.FromString("replaced"), overwrite: true);
        };
        var item = await _store.MaterializeAsync(HubArea.Models, name);
        Assert.Equal("replaced", File.ReadAllText(Path.Combine(item.LocalPath, "shard-1.bin")));
        Assert.Equal(item.Version, (await _store.ListAsync(HubArea.Models)).Single(i => i.Name == name).ETag);
        Assert.Single(Directory.GetDirectories(Path.Combine(Temp["cache"], "models", name))); // the torn attempt left nothing
        Assert.True(_counter.Downloads > files);
    }

    [Fact]
    public async Task A_blob_added_between_listing_and_download_is_noticed_and_the_new_version_downloaded()
    {
        var (name, _) = await PublishModelAsync();
        var sneaky = new BlobServiceClient(_azurite.ConnectionString).GetBlobContainerClient("models").GetBlobClient($"{name}/tokenizer.json");
        var changes = 0;
        _counter.BeforeDownload = _ =>
        {
            if (Interlocked.Increment(ref changes) == 1) sneaky.Upload(BinaryData.FromString("{}"));
        };
        var item = await _store.MaterializeAsync(HubArea.Models, name);
        Assert.True(File.Exists(Path.Combine(item.LocalPath, "tokenizer.json")));
        Assert.Equal(item.Version, (await _store.ListAsync(HubArea.Models)).Single(i => i.Name == name).ETag);
    }

    [Fact]
    public async Task Leftover_temporary_folders_in_the_cache_are_ignored()
    {
        var (name, files) = await PublishModelAsync();
        var leftover = Path.Combine(Temp["cache"], "models", name, ".tmp-crashed");
        Directory.CreateDirectory(leftover);
        File.WriteAllText(Path.Combine(leftover, "config.json"), "partial");
        var item = await _store.MaterializeAsync(HubArea.Models, name);
        Assert.Equal(files, Directory.GetFiles(item.LocalPath).Length);
        Assert.Equal("{}", File.ReadAllText(Path.Combine(item.LocalPath, "config.json")));
    }

    [Fact]
    public async Task Materializing_during_publishes_gives_one_versions_files_only()
    {
        var name = Names.Unique("adapter");
        const int Versions = 8;
        var sources = Enumerable.Range(1, Versions).Select(v => VersionedFolder($"v{v}", v)).ToArray();
        await _store.PublishFolderAsync(HubArea.Adapters, name, sources[0], "lorahub.json");
        using var done = new CancellationTokenSource();
        var publisher = Task.Run(async () =>
        {
            try
            {
                for (var v = 1; v < Versions; v++) await _store.PublishFolderAsync(HubArea.Adapters, name, sources[v], "lorahub.json");
            }
            finally
            {
                done.Cancel();
            }
        });
        while (!done.IsCancellationRequested)
        {
            try
            {
                CheckOneVersion(await _store.MaterializeAsync(HubArea.Adapters, name));
            }
            catch (HubItemNotFoundException)
            {
                // marker deleted: a publish is in progress
            }
            catch (IOException)
            {
                // changed during every attempt
            }
        }
        await publisher;
        var last = await _store.MaterializeAsync(HubArea.Adapters, name);
        CheckOneVersion(last);
        Assert.Contains($"\"v{Versions}\"", File.ReadAllText(Path.Combine(last.LocalPath, "lorahub.json")));

        static void CheckOneVersion(MaterializedItem item)
        {
            var marker = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(item.LocalPath, "lorahub.json")))!;
            var version = marker["version"]!.GetValue<string>();
            var expected = marker["files"]!.AsArray().Select(f => f!.GetValue<string>()).Append("lorahub.json").Order(StringComparer.Ordinal);
            var actual = Directory.GetFiles(item.LocalPath, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(item.LocalPath, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(expected, actual);
            foreach (var f in actual) Assert.Contains(version, File.ReadAllText(Path.Combine(item.LocalPath, f)));
        }
    }

    [Fact]
    public async Task Blob_names_in_the_hub_that_are_not_hub_paths_are_refused_not_downloaded()
    {
        var name = Names.Unique("module");
        var container = _store.Container(HubArea.Modules);
        await container.CreateIfNotExistsAsync();
        await container.GetBlobClient($"{name}/adapter_config.json").UploadAsync(BinaryData.FromString("{}"));
        await container.GetBlobClient($"{name}/bad name.bin").UploadAsync(BinaryData.FromString("x"));
        await container.GetBlobClient($"{name}/.gitattributes").UploadAsync(BinaryData.FromString("x"));
        var e = await Assert.ThrowsAsync<HubNameException>(() => _store.MaterializeAsync(HubArea.Modules, name));
        Assert.Contains("bad name.bin", e.Message);
        Assert.False(Directory.Exists(Path.Combine(Temp["cache"], "modules", name)) && Directory.GetFiles(Path.Combine(Temp["cache"], "modules", name), "*", SearchOption.AllDirectories).Length > 0);
    }

    [Fact]
    public async Task The_four_containers_exist_after_EnsureContainers()
    {
        await _store.EnsureContainersAsync();
        var names = new List<string>();
        await foreach (var c in _store.Service.GetBlobContainersAsync()) names.Add(c.Name);
        Assert.Subset(names.ToHashSet(), new HashSet<string> { "models", "modules", "examples", "adapters" });
    }

    [Fact]
    public void The_factory_opens_a_blob_store_for_a_connection_string()
    {
        var store = HubStoreFactory.Create(_azurite.ConnectionString, Temp["cache"]);
        Assert.Equal("blob", store.Kind);
        Assert.Equal(_azurite.BlobEndpoint, Assert.IsType<BlobHubStore>(store).Service.Uri.ToString().TrimEnd('/'));
    }
}
