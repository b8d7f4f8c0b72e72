using System.Diagnostics;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using LoraHub.Testing;
using Xunit;

namespace LoraHub.Storage.Tests;

/// <summary>
/// The hub never leaves its folder: links and special files in what is pushed, and inside a local hub, are refused
/// with the path named; `hub list` on a path that is not a hub is an error; concurrent publishes never mix.
/// </summary>
public sealed class HostileHubTests : IDisposable
{
    private readonly TempDir _temp = new();
    private readonly List<IDisposable> _open = [];

    public void Dispose()
    {
        foreach (var o in _open) o.Dispose();
        _temp.Dispose();
    }

    private string Secret()
    {
        var path = _temp["secret.txt"];
        File.WriteAllText(path, "the user's private key");
        return path;
    }

    /// <summary>A module folder with one hostile entry; returns the folder and the hostile path.</summary>
    private (string Folder, string Hostile) HostileModule(string kind)
    {
        var folder = _temp.Folder($"m-{kind}", ("adapter_config.json", "{\"r\": 4}"), ("adapter_model.safetensors", "weights"));
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        string hostile;
        switch (kind)
        {
            case "link-to-file-outside":
                File.Delete(Path.Combine(folder, "adapter_model.safetensors"));
                hostile = Path.Combine(folder, "adapter_model.safetensors");
                File.CreateSymbolicLink(hostile, Secret());
                break;
            case "link-to-folder-outside":
                hostile = Path.Combine(folder, "extra");
                Directory.CreateSymbolicLink(hostile, Path.GetDirectoryName(Secret())!);
                break;
            case "link-inside-the-folder":
                hostile = Path.Combine(folder, "copy.safetensors");
                File.CreateSymbolicLink(hostile, Path.Combine(folder, "adapter_model.safetensors"));
                break;
            case "relative-link-up":
                hostile = Path.Combine(folder, "sub", "up.txt");
                Secret();
                File.CreateSymbolicLink(hostile, "../../secret.txt");
                break;
            case "dangling-link":
                hostile = Path.Combine(folder, "gone.bin");
                File.CreateSymbolicLink(hostile, _temp["nowhere"]);
                break;
            case "link-to-root":
                hostile = Path.Combine(folder, "sub", "root");
                Directory.CreateSymbolicLink(hostile, "/");
                break;
            case "link-loop":
                hostile = Path.Combine(folder, "sub", "loop");
                Directory.CreateSymbolicLink(hostile, folder);
                break;
            case "fifo":
                hostile = Path.Combine(folder, "sub", "pipe");
                Process.Start("mkfifo", hostile)!.WaitForExit();
                break;
            case "unix-socket":
                hostile = Path.Combine(folder, "sock");
                // Kept open for the test: .NET removes a bound socket's file when the socket is disposed.
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                _open.Add(socket);
                socket.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(hostile));
                break;
            case "marker-is-a-link":
                hostile = Path.Combine(folder, "adapter_config.json");
                File.Move(hostile, _temp["real-config.json"]);
                File.CreateSymbolicLink(hostile, _temp["real-config.json"]);
                break;
            default: throw new ArgumentException(kind);
        }
        return (folder, hostile);
    }

    public static TheoryData<string> HostileKinds => new()
    {
        "link-to-file-outside", "link-to-folder-outside", "link-inside-the-folder", "relative-link-up", "dangling-link",
        "link-to-root", "link-loop", "fifo", "unix-socket", "marker-is-a-link",
    };

    [Theory]
    [MemberData(nameof(HostileKinds))]
    public async Task A_local_publish_refuses_links_and_special_files_naming_them_and_writes_nothing(string kind)
    {
        var (folder, hostile) = HostileModule(kind);
        var store = new LocalHubStore(_temp["hub"]);
        var e = await Assert.ThrowsAsync<IOException>(() => Task.Run(() => store.PublishFolderAsync(HubArea.Modules, "m", folder, "adapter_config.json")));
        Assert.Contains(hostile, e.Message);
        Assert.Contains(kind is "fifo" or "unix-socket" ? "special file" : "symbolic link", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_temp["hub"], "modules", "m")));
        Assert.Empty(await store.ListAsync(HubArea.Modules));
    }

    [Theory]
    [MemberData(nameof(HostileKinds))]
    public void Hub_push_refuses_links_and_special_files_with_one_line_and_pushes_nothing(string kind)
    {
        var (folder, hostile) = HostileModule(kind);
        var r = CliProcess.Run("hub", "push", "--hub", _temp["hub"], "--module", folder, "--name", "m");
        Assert.True(r.ExitCode == 1, r.ToString());
        var line = Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("lorahub: error: ", line);
        Assert.Contains(hostile, line);
        Assert.False(Directory.Exists(Path.Combine(_temp["hub"], "modules")));
    }

    [Fact]
    public void Hub_push_of_a_pool_refuses_a_module_folder_that_is_a_link_before_uploading_any()
    {
        var pool = _temp["pool"];
        Directory.CreateDirectory(pool);
        _temp.Folder(Path.Combine("pool", "a"), ("adapter_config.json", "{}"), ("adapter_model.safetensors", "w"));
        var outside = _temp.Folder("outside", ("adapter_config.json", "{}"), ("adapter_model.safetensors", "w"));
        Directory.CreateSymbolicLink(Path.Combine(pool, "b"), outside);
        var r = CliProcess.Run("hub", "push", "--hub", _temp["hub"], "--modules", pool);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(Path.Combine(pool, "b"), r.Stderr);
        Assert.Contains("symbolic link", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_temp["hub"], "modules")));
    }

    public static TheoryData<string, string> NotAHub => new()
    {
        { "missing", "does not exist" },
        { "file", "is a file, not a hub folder" },
    };

    [Theory]
    [MemberData(nameof(NotAHub))]
    public void Hub_list_on_a_path_that_is_not_a_hub_is_an_error_not_an_empty_hub(string kind, string expected)
    {
        var hub = _temp["hub"];
        if (kind == "file") File.WriteAllText(hub, "not a hub");
        foreach (var args in new[] { new[] { "hub", "list", "--hub", hub }, ["hub", "list", "--hub", hub, "--area", "modules", "--format", "json"] })
        {
            var r = CliProcess.Run(args);
            Assert.True(r.ExitCode == 1, r.ToString());
            Assert.Contains(expected, r.Stderr);
            Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
            Assert.Equal("", r.Stdout);
        }
    }

    [Theory]
    [InlineData("examples-fifo")]
    [InlineData("sidecar-fifo")]
    [InlineData("examples-folder")]
    public void Hub_push_of_examples_refuses_a_fifo_or_folder_without_blocking(string kind)
    {
        var examples = _temp["task.jsonl"];
        if (kind == "examples-fifo") Process.Start("mkfifo", examples)!.WaitForExit();
        else if (kind == "examples-folder") Directory.CreateDirectory(examples);
        else
        {
            File.WriteAllText(examples, "{\"input\": \"a\", \"output\": \"b\"}\n");
            Process.Start("mkfifo", _temp["task.json"])!.WaitForExit();
        }
        var r = CliProcess.Run("hub", "push", "--hub", _temp["hub"], "--examples", examples);
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains(kind == "examples-folder" ? "is a folder" : "special file", r.Stderr);
        Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(_temp["hub"], "examples")));
    }

    [Fact]
    public void Hub_push_into_a_file_is_refused()
    {
        File.WriteAllText(_temp["hub"], "not a hub");
        var module = _temp.Folder("m", ("adapter_config.json", "{}"), ("adapter_model.safetensors", "w"));
        var r = CliProcess.Run("hub", "push", "--hub", _temp["hub"], "--module", module);
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("is a file, not a hub folder", r.Stderr);
        Assert.Equal("not a hub", File.ReadAllText(_temp["hub"]));
    }

    /// <summary>Links planted inside a local hub (by hand, not by push): never listed, never read or written through.</summary>
    public static TheoryData<string> PlantedKinds => new() { "area-link", "item-link", "file-in-item-link", "examples-file-link", "examples-fifo" };

    [Theory]
    [MemberData(nameof(PlantedKinds))]
    public async Task A_local_hub_does_not_follow_links_planted_inside_it(string kind)
    {
        var hub = _temp["hub"];
        var store = new LocalHubStore(hub);
        var outside = _temp.Folder("outside", ("adapter_config.json", "{}"), ("adapter_model.safetensors", "w"), ("t.jsonl", "{}"));
        Directory.CreateDirectory(Path.Combine(hub, "examples"));
        Directory.CreateDirectory(Path.Combine(hub, "modules"));
        switch (kind)
        {
            case "area-link":
                Directory.Delete(Path.Combine(hub, "modules"));
                Directory.CreateSymbolicLink(Path.Combine(hub, "modules"), _temp["outside-area"]);
                Directory.CreateDirectory(_temp["outside-area"]);
                _temp.Folder(Path.Combine("outside-area", "m"), ("adapter_config.json", "{}"));
                var e = await Assert.ThrowsAsync<IOException>(() => store.ListAsync(HubArea.Modules));
                Assert.Contains("symbolic link", e.Message);
                await Assert.ThrowsAsync<IOException>(() => store.WriteFileAsync(HubArea.Modules, "m/x.bin", [1]));
                Assert.False(File.Exists(_temp["outside-area/m/x.bin"]));
                break;
            case "item-link":
                Directory.CreateSymbolicLink(Path.Combine(hub, "modules", "m"), outside);
                Assert.Empty(await store.ListAsync(HubArea.Modules));
                await Assert.ThrowsAsync<IOException>(() => store.MaterializeAsync(HubArea.Modules, "m"));
                await Assert.ThrowsAsync<IOException>(() => store.ReadFileAsync(HubArea.Modules, "m/adapter_config.json"));
                await Assert.ThrowsAsync<IOException>(() => store.PublishFolderAsync(HubArea.Modules, "m", _temp.Folder("new", ("adapter_config.json", "{}")), "adapter_config.json"));
                Assert.False(File.Exists(Path.Combine(outside, "new")));
                Assert.Equal(3, Directory.GetFiles(outside).Length);
                break;
            case "file-in-item-link":
                _temp.Folder(Path.Combine("hub", "modules", "m"), ("adapter_config.json", "{}"));
                File.CreateSymbolicLink(Path.Combine(hub, "modules", "m", "adapter_model.safetensors"), Secret());
                Assert.Empty(await store.ListAsync(HubArea.Modules));
                var m = await Assert.ThrowsAsync<IOException>(() => store.MaterializeAsync(HubArea.Modules, "m"));
                Assert.Contains("adapter_model.safetensors", m.Message);
                await Assert.ThrowsAsync<IOException>(() => store.ReadFileAsync(HubArea.Modules, "m/adapter_model.safetensors"));
                break;
            case "examples-file-link":
                File.CreateSymbolicLink(Path.Combine(hub, "examples", "t.jsonl"), Secret());
                Assert.Empty(await store.ListAsync(HubArea.Examples));
                await Assert.ThrowsAsync<IOException>(() => store.ReadFileAsync(HubArea.Examples, "t.jsonl"));
                await Assert.ThrowsAsync<IOException>(() => store.WriteFileAsync(HubArea.Examples, "t.jsonl", [1]));
                Assert.Equal("the user's private key", File.ReadAllText(_temp["secret.txt"]));
                break;
            case "examples-fifo":
                Process.Start("mkfifo", Path.Combine(hub, "examples", "t.jsonl"))!.WaitForExit();
                Assert.Empty(await store.ListAsync(HubArea.Examples));
                var f = await Assert.ThrowsAsync<IOException>(() => store.ReadFileAsync(HubArea.Examples, "t.jsonl"));
                Assert.Contains("special file", f.Message);
                break;
        }
    }

    [Fact]
    public void Hub_list_does_not_follow_a_linked_item_out_of_the_hub()
    {
        var hub = _temp["hub"];
        Directory.CreateDirectory(Path.Combine(hub, "modules"));
        Directory.CreateSymbolicLink(Path.Combine(hub, "modules", "m"), _temp.Folder("outside", ("adapter_config.json", "{}")));
        var r = CliProcess.Run("hub", "list", "--hub", hub, "--format", "json");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("{\"hub\":\"local\",\"items\":[]}", r.Stdout.Trim());
    }

    /// <summary>A folder whose every file names its version: a mix of two publishes is visible.</summary>
    private string Version(int v)
    {
        var files = Enumerable.Range(0, 6).Select(i => ($"part-{i}.bin", $"version {v}")).Append(("lorahub.json", $"version {v}")).ToArray();
        return _temp.Folder($"v{v}", files);
    }

    private static void AssertOneVersion(IEnumerable<string> contents) => Assert.Single(contents.Distinct());

    [Fact]
    public async Task Concurrent_local_publishes_of_one_item_take_turns_and_never_mix()
    {
        var store = new LocalHubStore(_temp["hub"]);
        var folders = Enumerable.Range(0, 8).Select(Version).ToList();
        for (var attempt = 0; attempt < 5; attempt++)
        {
            await Task.WhenAll(folders.Select(f => Task.Run(() => store.PublishFolderAsync(HubArea.Adapters, "task", f, "lorahub.json"))));
            var item = await store.MaterializeAsync(HubArea.Adapters, "task");
            var files = Directory.GetFiles(item.LocalPath);
            Assert.Equal(7, files.Length);
            AssertOneVersion(files.Select(File.ReadAllText));
        }
        Assert.DoesNotContain(Directory.GetFileSystemEntries(Path.Combine(_temp["hub"], "adapters")), p => Path.GetFileName(p).StartsWith('.'));
    }

    [Collection(AzuriteCollection.Name)]
    public sealed class Blob(AzuriteFixture azurite) : IDisposable
    {
        private readonly TempDir _temp = new();

        public void Dispose() => _temp.Dispose();

        private string Version(int v)
        {
            var files = Enumerable.Range(0, 6).Select(i => ($"part-{i}.bin", $"version {v}")).Append(("lorahub.json", $"version {v}")).ToArray();
            return _temp.Folder($"v{v}", files);
        }

        [Fact]
        public async Task Eight_concurrent_blob_publishes_of_one_item_end_with_one_whole_version()
        {
            var store = new BlobHubStore(azurite.ConnectionString, _temp["cache"]);
            var name = Names.Unique("race");
            var folders = Enumerable.Range(0, 8).Select(Version).ToList();
            for (var attempt = 0; attempt < 3; attempt++)
            {
                // Separate stores (as separate processes would be): the lease, not an in-process lock, keeps them apart.
                await Task.WhenAll(folders.Select(f => Task.Run(() =>
                    new BlobHubStore(azurite.ConnectionString, _temp["cache"]).PublishFolderAsync(HubArea.Adapters, name, f, "lorahub.json"))));
                var container = store.Container(HubArea.Adapters);
                var contents = new List<string>();
                await foreach (var blob in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = name + "/" }))
                    contents.Add((await container.GetBlobClient(blob.Name).DownloadContentAsync()).Value.Content.ToString());
                Assert.Equal(7, contents.Count);
                AssertOneVersion(contents);
            }
        }

        [Fact]
        public async Task A_publish_while_another_holds_the_items_lease_waits_then_fails_clearly_and_writes_nothing()
        {
            var store = new BlobHubStore(azurite.ConnectionString, _temp["cache"]) { PublishWait = TimeSpan.FromSeconds(2) };
            var name = Names.Unique("held");
            await store.PublishFolderAsync(HubArea.Adapters, name, Version(1), "lorahub.json");
            // Another publisher (e.g. a process that was killed) holds the item's publish lease.
            var lockBlob = store.Container(HubArea.Adapters).GetBlobClient($".publish/{name}");
            var other = lockBlob.GetBlobLeaseClient();
            await other.AcquireAsync(TimeSpan.FromSeconds(15));
            var clock = Stopwatch.StartNew();
            var e = await Assert.ThrowsAsync<IOException>(() => store.PublishFolderAsync(HubArea.Adapters, name, Version(2), "lorahub.json"));
            Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 10);
            Assert.Contains("being published by another writer", e.Message);
            Assert.Contains(name, e.Message);
            var marker = await store.ReadFileAsync(HubArea.Adapters, $"{name}/lorahub.json");
            Assert.Equal("version 1", System.Text.Encoding.UTF8.GetString(marker!.Content));
            // Once the lease is released the publish goes through, and the lock blob is never listed as part of the item.
            await other.ReleaseAsync();
            await store.PublishFolderAsync(HubArea.Adapters, name, Version(2), "lorahub.json");
            var item = (await store.ListAsync(HubArea.Adapters)).Single(i => i.Name == name);
            Assert.Equal(7 * "version 2".Length, item.Size);
        }
    }
}
