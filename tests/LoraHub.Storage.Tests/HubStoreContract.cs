using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace LoraHub.Storage.Tests;

/// <summary>The behaviour every hub store has; LocalHubStoreTests and BlobHubStoreTests run it on each store.</summary>
public abstract class HubStoreContract : IDisposable
{
    protected TempDir Temp { get; } = new();

    protected abstract IHubStore Store { get; }

    /// <summary>A new store plus a check that it has done no I/O at all so far.</summary>
    protected abstract (IHubStore Store, Func<bool> DidNoIo) UntouchedStore();

    public virtual void Dispose() => Temp.Dispose();

    protected static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    protected static string Text(StoredFile? file) => Encoding.UTF8.GetString(Assert.IsType<StoredFile>(file).Content);

    /// <summary>An adapter-like folder whose every file names its version, plus the listing of its files in lorahub.json.</summary>
    protected string VersionedFolder(string version, int variant)
    {
        var files = new List<(string, string)>
        {
            ("adapter_config.json", $"{{\"version\":\"{version}\"}}"),
            ("adapter_model.safetensors", $"{version}:" + new string('w', 10 + variant * 7)),
            ("sub/report.txt", $"{version}:report"),
            ($"only-{variant % 2}.txt", $"{version}:odd-or-even"),
        };
        var marker = new JsonObject { ["version"] = version, ["files"] = new JsonArray(files.Select(f => (JsonNode)f.Item1).ToArray()) };
        files.Add(("lorahub.json", marker.ToJsonString()));
        return Temp.Folder($"src-{version}-{Guid.NewGuid():N}", [.. files]);
    }

    [Fact]
    public async Task Write_read_delete_round_trip()
    {
        var task = Names.Unique("task");
        var etag = await Store.WriteFileAsync(HubArea.Examples, $"{task}.jsonl", Bytes("{\"input\":\"a\",\"output\":\"b\"}\n"));
        Assert.False(string.IsNullOrEmpty(etag));
        var read = await Store.ReadFileAsync(HubArea.Examples, $"{task}.jsonl");
        Assert.Equal("{\"input\":\"a\",\"output\":\"b\"}\n", Text(read));
        Assert.Equal(etag, read!.ETag);
        Assert.Equal($"{task}.jsonl", read.Path);

        var adapterPath = $"{Names.Unique("adapter")}/deep/er/file.bin";
        await Store.WriteFileAsync(HubArea.Adapters, adapterPath, [1, 2, 3]);
        Assert.Equal(new byte[] { 1, 2, 3 }, (await Store.ReadFileAsync(HubArea.Adapters, adapterPath))!.Content);

        Assert.True(await Store.DeleteFileAsync(HubArea.Examples, $"{task}.jsonl"));
        Assert.Null(await Store.ReadFileAsync(HubArea.Examples, $"{task}.jsonl"));
        Assert.False(await Store.DeleteFileAsync(HubArea.Examples, $"{task}.jsonl"));
    }

    [Fact]
    public async Task Reading_or_deleting_what_is_missing_gives_null_or_false()
    {
        foreach (var area in HubNames.Areas)
        {
            var path = area == HubArea.Examples ? $"{Names.Unique("none")}.jsonl" : $"{Names.Unique("none")}/config.json";
            Assert.Null(await Store.ReadFileAsync(area, path));
            Assert.False(await Store.DeleteFileAsync(area, path));
        }
    }

    [Fact]
    public async Task Empty_files_round_trip()
    {
        var path = $"{Names.Unique("empty")}.json";
        await Store.WriteFileAsync(HubArea.Examples, path, []);
        Assert.Empty((await Store.ReadFileAsync(HubArea.Examples, path))!.Content);
    }

    [Fact]
    public async Task ETag_changes_when_the_content_changes_even_at_the_same_size()
    {
        var path = $"{Names.Unique("etag")}.jsonl";
        var first = await Store.WriteFileAsync(HubArea.Examples, path, Bytes("aaaa"));
        var second = await Store.WriteFileAsync(HubArea.Examples, path, Bytes("bbbb"));
        Assert.NotEqual(first, second);
        Assert.Equal(second, (await Store.ReadFileAsync(HubArea.Examples, path))!.ETag);
        var listed = (await Store.ListAsync(HubArea.Examples)).Single(i => i.Name == path);
        Assert.Equal(second, listed.ETag);
        Assert.Equal(4, listed.Size);
    }

    [Fact]
    public async Task Listing_shows_each_areas_items_and_only_complete_ones()
    {
        var (model, module, adapter, task) = (Names.Unique("model"), Names.Unique("module"), Names.Unique("adapter"), Names.Unique("task"));
        await Store.PublishFolderAsync(HubArea.Models, model, Temp.Folder("m", ("config.json", "{}"), ("model.safetensors", "12345")), "config.json");
        await Store.PublishFolderAsync(HubArea.Modules, module, Temp.Folder("l", ("adapter_config.json", "{}"), ("adapter_model.bin", "xy")), "adapter_config.json");
        await Store.PublishFolderAsync(HubArea.Adapters, adapter, VersionedFolder("v1", 1), "lorahub.json");
        await Store.WriteFileAsync(HubArea.Examples, $"{task}.jsonl", Bytes("{}"));
        await Store.WriteFileAsync(HubArea.Examples, $"{task}.json", Bytes("{}"));
        // An item without its area's marker is incomplete: not listed.
        var incomplete = Names.Unique("incomplete");
        await Store.WriteFileAsync(HubArea.Modules, $"{incomplete}/adapter_model.bin", Bytes("x"));

        var models = await Store.ListAsync(HubArea.Models);
        var modules = await Store.ListAsync(HubArea.Modules);
        var adapters = await Store.ListAsync(HubArea.Adapters);
        var examples = await Store.ListAsync(HubArea.Examples);

        var m = Assert.Single(models, i => i.Name == model);
        Assert.Equal(7, m.Size);
        Assert.False(string.IsNullOrEmpty(m.ETag));
        Assert.True(m.LastModified > DateTimeOffset.UtcNow.AddHours(-1));
        Assert.Single(modules, i => i.Name == module);
        Assert.Single(adapters, i => i.Name == adapter);
        Assert.Single(examples, i => i.Name == $"{task}.jsonl");
        Assert.Single(examples, i => i.Name == $"{task}.json");

        Assert.DoesNotContain(modules, i => i.Name == model);
        Assert.DoesNotContain(models, i => i.Name == module);
        Assert.DoesNotContain(modules, i => i.Name == incomplete);
        Assert.DoesNotContain(examples, i => i.Name.StartsWith('.'));
        foreach (var list in new[] { models, modules, adapters, examples })
            Assert.Equal(list.Select(i => i.Name).Order(StringComparer.Ordinal), list.Select(i => i.Name));
    }

    [Fact]
    public async Task Materializing_a_missing_or_incomplete_item_throws_not_found()
    {
        var missing = Names.Unique("missing");
        var e = await Assert.ThrowsAsync<HubItemNotFoundException>(() => Store.MaterializeAsync(HubArea.Models, missing));
        Assert.Contains($"models/{missing}", e.Message);

        var incomplete = Names.Unique("incomplete");
        await Store.WriteFileAsync(HubArea.Adapters, $"{incomplete}/adapter_model.safetensors", Bytes("x"));
        e = await Assert.ThrowsAsync<HubItemNotFoundException>(() => Store.MaterializeAsync(HubArea.Adapters, incomplete));
        Assert.Contains("lorahub.json", e.Message);
    }

    [Fact]
    public async Task Materialize_gives_a_folder_with_every_file_and_the_listed_version()
    {
        var name = Names.Unique("module");
        var source = Temp.Folder("src", ("adapter_config.json", "{\"r\":4}"), ("adapter_model.safetensors", "weights"), ("nested/extra.txt", "x"), (".gitattributes", "hidden"));
        await Store.PublishFolderAsync(HubArea.Modules, name, source, "adapter_config.json");

        var item = await Store.MaterializeAsync(HubArea.Modules, name);
        Assert.Equal(name, item.Name);
        Assert.Equal("{\"r\":4}", File.ReadAllText(Path.Combine(item.LocalPath, "adapter_config.json")));
        Assert.Equal("weights", File.ReadAllText(Path.Combine(item.LocalPath, "adapter_model.safetensors")));
        Assert.Equal("x", File.ReadAllText(Path.Combine(item.LocalPath, "nested", "extra.txt")));
        Assert.False(File.Exists(Path.Combine(item.LocalPath, ".gitattributes"))); // hidden files are not published
        Assert.Equal((await Store.ListAsync(HubArea.Modules)).Single(i => i.Name == name).ETag, item.Version);

        var again = await Store.MaterializeAsync(HubArea.Modules, name);
        Assert.Equal(item, again);
    }

    [Fact]
    public async Task A_changed_file_gives_a_new_version_with_the_new_content()
    {
        var name = Names.Unique("model");
        await Store.PublishFolderAsync(HubArea.Models, name, Temp.Folder("a", ("config.json", "{\"v\":1}"), ("model.safetensors", "one")), "config.json");
        var first = await Store.MaterializeAsync(HubArea.Models, name);

        await Store.WriteFileAsync(HubArea.Models, $"{name}/model.safetensors", Bytes("two"));
        var second = await Store.MaterializeAsync(HubArea.Models, name);
        Assert.NotEqual(first.Version, second.Version);
        Assert.Equal("two", File.ReadAllText(Path.Combine(second.LocalPath, "model.safetensors")));
        Assert.NotEqual(first.Version, (await Store.ListAsync(HubArea.Models)).Single(i => i.Name == name).ETag);
    }

    [Fact]
    public async Task Concurrent_materializations_all_get_a_complete_folder()
    {
        var name = Names.Unique("model");
        var files = Enumerable.Range(0, 6).Select(i => ($"shard-{i}.bin", new string((char)('a' + i), 50_000 + i))).Append(("config.json", "{}")).ToArray();
        await Store.PublishFolderAsync(HubArea.Models, name, Temp.Folder("src", files), "config.json");

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => Store.MaterializeAsync(HubArea.Models, name))));
        Assert.Single(results.Select(r => r.LocalPath).Distinct());
        Assert.Single(results.Select(r => r.Version).Distinct());
        foreach (var (path, text) in files) Assert.Equal(text, File.ReadAllText(Path.Combine(results[0].LocalPath, path)));
        Assert.Equal(files.Length, Directory.GetFiles(results[0].LocalPath, "*", SearchOption.AllDirectories).Length);
    }

    [Fact]
    public async Task Publishing_replaces_old_files_and_removes_stale_ones()
    {
        var name = Names.Unique("adapter");
        await Store.PublishFolderAsync(HubArea.Adapters, name, VersionedFolder("v1", 1), "lorahub.json");
        Assert.Equal("v1:odd-or-even", Text(await Store.ReadFileAsync(HubArea.Adapters, $"{name}/only-1.txt")));

        await Store.PublishFolderAsync(HubArea.Adapters, name, VersionedFolder("v2", 2), "lorahub.json");
        Assert.Null(await Store.ReadFileAsync(HubArea.Adapters, $"{name}/only-1.txt"));
        Assert.Equal("v2:odd-or-even", Text(await Store.ReadFileAsync(HubArea.Adapters, $"{name}/only-0.txt")));
        Assert.Equal("v2:report", Text(await Store.ReadFileAsync(HubArea.Adapters, $"{name}/sub/report.txt")));
        Assert.Contains("\"v2\"", Text(await Store.ReadFileAsync(HubArea.Adapters, $"{name}/lorahub.json")));

        var item = await Store.MaterializeAsync(HubArea.Adapters, name);
        var published = Directory.GetFiles(item.LocalPath, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(item.LocalPath, f).Replace('\\', '/')).Order(StringComparer.Ordinal);
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors", "lorahub.json", "only-0.txt", "sub/report.txt"], published);
    }

    [Fact]
    public async Task Publishing_needs_the_commit_marker_and_the_areas_marker()
    {
        var name = Names.Unique("adapter");
        var noMarker = Temp.Folder("a", ("adapter_config.json", "{}"));
        var e = await Assert.ThrowsAsync<FileNotFoundException>(() => Store.PublishFolderAsync(HubArea.Adapters, name, noMarker, "lorahub.json"));
        Assert.Contains("lorahub.json", e.Message);
        // A different commit marker is fine, but adapters also need lorahub.json, or listings would never show it.
        e = await Assert.ThrowsAsync<FileNotFoundException>(() => Store.PublishFolderAsync(HubArea.Adapters, name, noMarker, "adapter_config.json"));
        Assert.Contains("lorahub.json", e.Message);
        await Assert.ThrowsAsync<DirectoryNotFoundException>(() => Store.PublishFolderAsync(HubArea.Adapters, name, Temp["nowhere"], "lorahub.json"));
        Assert.Null(await Store.ReadFileAsync(HubArea.Adapters, $"{name}/adapter_config.json"));
    }

    [Fact]
    public async Task Publishing_a_folder_with_a_file_the_hub_cannot_name_writes_nothing()
    {
        var name = Names.Unique("module");
        var source = Temp.Folder("bad", ("adapter_config.json", "{}"), ("weights copy.bin", "x"));
        var e = await Assert.ThrowsAsync<HubNameException>(() => Store.PublishFolderAsync(HubArea.Modules, name, source, "adapter_config.json"));
        Assert.Contains("weights copy.bin", e.Message);
        Assert.Null(await Store.ReadFileAsync(HubArea.Modules, $"{name}/adapter_config.json"));
        Assert.DoesNotContain(await Store.ListAsync(HubArea.Modules), i => i.Name == name);
    }

    [Fact]
    public async Task Examples_are_not_folder_items()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.MaterializeAsync(HubArea.Examples, "task"));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PublishFolderAsync(HubArea.Examples, "task", Temp.Path, "task.jsonl"));
        await Assert.ThrowsAsync<HubNameException>(() => Store.WriteFileAsync(HubArea.Examples, "sub/task.jsonl", [1]));
        await Assert.ThrowsAsync<HubNameException>(() => Store.WriteFileAsync(HubArea.Models, "config.json", [1]));
    }

    public static TheoryData<string> Hostile => new()
    {
        "../x", "a/../../b", "/abs", "a\\b", "%2e%2e", "..", ".", "", "x\0y", "x\ny", new string('n', 300), "con", ".staging-x",
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task Hostile_names_are_refused_before_any_io(string hostile)
    {
        var (store, didNoIo) = UntouchedStore();
        var source = Temp.Folder("ok", ("config.json", "{}"), ("adapter_config.json", "{}"), ("lorahub.json", "{}"));
        foreach (var path in new[] { hostile, $"{hostile}/config.json", $"ok/{hostile}" })
        {
            await Assert.ThrowsAsync<HubNameException>(() => store.ReadFileAsync(HubArea.Models, path));
            await Assert.ThrowsAsync<HubNameException>(() => store.ReadFileAsync(HubArea.Examples, path));
            await Assert.ThrowsAsync<HubNameException>(() => store.WriteFileAsync(HubArea.Adapters, path, [1]));
            await Assert.ThrowsAsync<HubNameException>(() => store.WriteFileAsync(HubArea.Examples, path, [1]));
            await Assert.ThrowsAsync<HubNameException>(() => store.DeleteFileAsync(HubArea.Modules, path));
        }
        await Assert.ThrowsAsync<HubNameException>(() => store.MaterializeAsync(HubArea.Modules, hostile));
        await Assert.ThrowsAsync<HubNameException>(() => store.PublishFolderAsync(HubArea.Models, hostile, source, "config.json"));
        await Assert.ThrowsAsync<HubNameException>(() => store.PublishFolderAsync(HubArea.Models, "ok", source, hostile));
        Assert.True(didNoIo(), "the store did I/O for a refused name");
    }

    /// <summary>
    /// While one writer publishes versions in turn, a reader that reads the marker, then the files it lists, then the
    /// marker again, and finds the marker unchanged, always has files of that marker's version: "marker present means
    /// every file is from the same publish".
    /// </summary>
    [Fact]
    public async Task A_reader_never_sees_a_marker_with_files_of_another_publish()
    {
        var name = Names.Unique("adapter");
        const int Versions = 12;
        var sources = Enumerable.Range(1, Versions).Select(v => VersionedFolder($"v{v}", v)).ToArray();
        await Store.PublishFolderAsync(HubArea.Adapters, name, sources[0], "lorahub.json");

        using var done = new CancellationTokenSource();
        var publisher = Task.Run(async () =>
        {
            try
            {
                for (var v = 1; v < Versions; v++)
                {
                    await Store.PublishFolderAsync(HubArea.Adapters, name, sources[v], "lorahub.json");
                    await Task.Delay(15);
                }
            }
            finally
            {
                done.Cancel();
            }
        });

        int consistent = 0, torn = 0;
        // Reads marker, files, marker; true when the marker did not change (then every file must be of its version).
        async Task<bool> ReadOnce()
        {
            var before = await Store.ReadFileAsync(HubArea.Adapters, $"{name}/lorahub.json");
            if (before is null) return false; // a publish is in progress
            var marker = JsonNode.Parse(before.Content)!.AsObject();
            var version = marker["version"]!.GetValue<string>();
            var files = new List<StoredFile?>();
            foreach (var f in marker["files"]!.AsArray())
                files.Add(await Store.ReadFileAsync(HubArea.Adapters, $"{name}/{f!.GetValue<string>()}"));
            var after = await Store.ReadFileAsync(HubArea.Adapters, $"{name}/lorahub.json");
            if (after?.ETag != before.ETag) return false; // changed while reading: the reader must retry
            foreach (var file in files)
            {
                Assert.NotNull(file);
                Assert.Contains(version, Encoding.UTF8.GetString(file.Content));
            }
            return true;
        }
        while (!done.IsCancellationRequested)
        {
            if (await ReadOnce()) consistent++; else torn++;
        }
        await publisher;
        // On a loaded machine every read during the publishes may be torn; once they stop, a read must be stable.
        Assert.True(await ReadOnce(), $"no stable read after the publishes ({consistent} stable, {torn} torn during them)");
        // The last version is complete afterwards.
        var final = await Store.ReadFileAsync(HubArea.Adapters, $"{name}/lorahub.json");
        Assert.Contains($"\"v{Versions}\"", Text(final));
    }
}
