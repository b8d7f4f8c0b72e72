using System.Collections.Concurrent;
using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace LoraHub.Storage;

/// <summary>
/// The hub in Azure Blob Storage (or Azurite): containers models, modules, examples, adapters (created when missing),
/// blob names "{item}/{file}" in the folder areas and "{file}" in examples.
/// <list type="bullet">
/// <item>An item exists when it holds the area's commit marker (HubNames.CommitMarker). Its ETag in listings, and the
///   Version MaterializeAsync returns, is a hash of its blobs' names and ETags.</item>
/// <item>MaterializeAsync downloads into cacheRoot/{area}/{name}/{version}: into a hidden temporary folder first, each blob
///   only if its ETag is still the listed one, then checks the listing did not change, then renames the folder into
///   place. A version folder that exists is complete and is reused (by this process, other stores and other processes).</item>
/// <item>PublishFolderAsync deletes the marker, uploads every other file, deletes blobs of the item that the new folder
///   does not have, and uploads the marker last; all under a 60 s blob lease (renewed while it works) on the hidden blob
///   ".publish/{name}" of the area, so concurrent publishes of one item take turns and never mix their files. A
///   publisher killed midway leaves the item without its marker (not listed, not served) until the next publish, which
///   can start once the dead one's lease has expired.</item>
/// </list>
/// </summary>
public sealed class BlobHubStore : IHubStore
{
    private const int Parallelism = 4;
    private const int RangeBytes = 8 << 20;
    private const int RangeConcurrency = 4;
    private const int MaterializeAttempts = 5;

    // Per cache folder, across every store of the process: one download of a version at a time.
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> Gates = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<HubArea, Lazy<Task>> _created = new();

    public BlobHubStore(BlobServiceClient service, string cacheRoot)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentException.ThrowIfNullOrWhiteSpace(cacheRoot);
        Service = service;
        CacheRoot = Path.GetFullPath(cacheRoot);
    }

    /// <summary>A store on a connection string ("UseDevelopmentStorage=true" for Azurite on its default ports).</summary>
    public BlobHubStore(string connectionString, string cacheRoot, BlobClientOptions? options = null)
        : this(new BlobServiceClient(connectionString, options), cacheRoot)
    {
    }

    public BlobServiceClient Service { get; }

    /// <summary>Where MaterializeAsync keeps downloaded items (absolute).</summary>
    public string CacheRoot { get; }

    public string Kind => "blob";

    public override string ToString() => $"blob hub {Service.Uri}";

    /// <summary>Creates the four containers if they are missing (the examples container must exist for a blob trigger).</summary>
    public Task EnsureContainersAsync(CancellationToken ct = default) =>
        Task.WhenAll(HubNames.Areas.Select(a => EnsureContainerAsync(a, ct)));

    public BlobContainerClient Container(HubArea area) => Service.GetBlobContainerClient(HubNames.AreaName(area));

    public async Task<IReadOnlyList<HubItem>> ListAsync(HubArea area, CancellationToken ct = default)
    {
        var container = Container(area);
        var items = new List<HubItem>();
        try
        {
            if (area == HubArea.Examples)
            {
                var options = new GetBlobsByHierarchyOptions { Delimiter = "/" };
                await foreach (var entry in container.GetBlobsByHierarchyAsync(options, ct))
                {
                    if (!entry.IsBlob || !HubNames.IsValidName(entry.Blob.Name)) continue;
                    var p = entry.Blob.Properties;
                    items.Add(new HubItem(entry.Blob.Name, Tag(p.ETag), p.ContentLength ?? 0, p.LastModified ?? DateTimeOffset.MinValue));
                }
            }
            else
            {
                // One flat listing gives every item's blobs, so each item's ETag (a hash over its blobs) costs no extra request.
                var marker = HubNames.CommitMarker(area)!;
                var groups = new Dictionary<string, List<BlobItem>>(StringComparer.Ordinal);
                await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions(), ct))
                {
                    var slash = blob.Name.IndexOf('/');
                    if (slash <= 0) continue;
                    var name = blob.Name[..slash];
                    if (!HubNames.IsValidName(name) || !HubNames.IsValidPath(blob.Name[(slash + 1)..])) continue;
                    if (!groups.TryGetValue(name, out var list)) groups[name] = list = [];
                    list.Add(blob);
                }
                foreach (var (name, blobs) in groups)
                {
                    if (!blobs.Any(b => b.Name == $"{name}/{marker}")) continue; // not published, or a publish in progress
                    items.Add(new HubItem(
                        name,
                        HubVersions.ItemVersion(blobs.Select(b => (b.Name[(name.Length + 1)..], Tag(b.Properties.ETag)))),
                        blobs.Sum(b => b.Properties.ContentLength ?? 0),
                        blobs.Max(b => b.Properties.LastModified ?? DateTimeOffset.MinValue)));
                }
            }
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return items; // no container yet: an empty area
        }
        items.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return items;
    }

    public async Task<StoredFile?> ReadFileAsync(HubArea area, string path, CancellationToken ct = default)
    {
        HubNames.ValidateAreaPath(area, path);
        try
        {
            var response = await Container(area).GetBlobClient(path).DownloadContentAsync(ct);
            return new StoredFile(path, response.Value.Content.ToArray(), Tag(response.Value.Details.ETag));
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    public async Task<string> WriteFileAsync(HubArea area, string path, byte[] content, CancellationToken ct = default)
    {
        HubNames.ValidateAreaPath(area, path);
        ArgumentNullException.ThrowIfNull(content);
        await EnsureContainerAsync(area, ct);
        var response = await Container(area).GetBlobClient(path).UploadAsync(BinaryData.FromBytes(content), overwrite: true, ct);
        return Tag(response.Value.ETag);
    }

    public async Task<bool> DeleteFileAsync(HubArea area, string path, CancellationToken ct = default)
    {
        HubNames.ValidateAreaPath(area, path);
        try
        {
            var response = await Container(area).GetBlobClient(path).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: ct);
            return response.Value;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return false;
        }
    }

    public async Task<MaterializedItem> MaterializeAsync(HubArea area, string name, CancellationToken ct = default)
    {
        if (!HubNames.IsFolderArea(area))
            throw new ArgumentException($"MaterializeAsync works on folder items (models, modules, adapters), not on {HubNames.AreaName(area)}", nameof(area));
        HubNames.ValidateItemName(area, name);
        var itemCache = Path.Combine(CacheRoot, HubNames.AreaName(area), name);

        for (var attempt = 1; ; attempt++)
        {
            var hashes = new Dictionary<string, byte[]?>(StringComparer.Ordinal);
            var files = await ListItemAsync(area, name, ct, hashes);
            var marker = HubNames.CommitMarker(area)!;
            if (files.Count == 0)
                throw new HubItemNotFoundException($"{HubNames.AreaName(area)}/{name} is not in the hub ({Service.Uri})");
            if (!files.ContainsKey(marker))
                throw new HubItemNotFoundException($"{HubNames.AreaName(area)}/{name} has no {marker}: it is not completely published, or a publish is in progress");
            var version = HubVersions.ItemVersion(files.Select(f => (f.Key, f.Value)));
            var final = Path.Combine(itemCache, version);
            if (Directory.Exists(final)) return new MaterializedItem(name, final, version);

            var gate = Gates.GetOrAdd(final, _ => new SemaphoreSlim(1, 1));
            await gate.WaitAsync(ct);
            try
            {
                if (Directory.Exists(final)) return new MaterializedItem(name, final, version);
                if (await DownloadAsync(area, name, files, hashes, itemCache, final, ct))
                    return new MaterializedItem(name, final, version);
            }
            finally
            {
                gate.Release();
            }
            if (attempt == MaterializeAttempts)
                throw new IOException($"{HubNames.AreaName(area)}/{name} changed during each of {MaterializeAttempts} downloads; try again when its publish has finished");
            await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt), ct); // let a publish in progress finish
        }
    }

    /// <summary>Downloads a listed version; false when the item changed meanwhile (the caller lists again).</summary>
    private async Task<bool> DownloadAsync(HubArea area, string name, Dictionary<string, string> files, Dictionary<string, byte[]?> hashes, string itemCache, string final, CancellationToken ct)
    {
        var temp = Path.Combine(itemCache, $".tmp-{Path.GetFileName(final)}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            var container = Container(area);
            try
            {
                await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct }, async (file, token) =>
                {
                    var destination = Path.Combine(temp, file.Key.Replace('/', Path.DirectorySeparatorChar));
                    Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                    var options = new BlobDownloadToOptions
                    {
                        Conditions = new BlobRequestConditions { IfMatch = Quoted(file.Value) },
                        // The SDK's default first range is 256 MB: a model came down in one stream. Ranges of 8 MB,
                        // 4 at a time, fill the link (durable-overhead's cold blob case).
                        TransferOptions = new StorageTransferOptions { InitialTransferSize = RangeBytes, MaximumTransferSize = RangeBytes, MaximumConcurrency = RangeConcurrency },
                    };
                    var blob = container.GetBlobClient($"{name}/{file.Key}");
                    await blob.DownloadToAsync(destination, options, token);
                    if (hashes.TryGetValue(file.Key, out var md5) && md5 is { Length: > 0 })
                        await VerifyMd5Async(destination, md5, $"{HubNames.AreaName(area)}/{name}/{file.Key}", token);
                });
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                return false; // a blob was replaced or deleted after the listing
            }
            // A blob added, or deleted and re-added, after the listing: the snapshot is not one version.
            var again = await ListItemAsync(area, name, ct);
            if (again.Count != files.Count || again.Any(f => !files.TryGetValue(f.Key, out var tag) || tag != f.Value)) return false;
            try
            {
                Directory.Move(temp, final);
            }
            catch (IOException) when (Directory.Exists(final))
            {
                // another process finished the same version first; its folder is as good as ours
            }
            return true;
        }
        finally
        {
            TryDeleteDirectory(temp);
        }
    }

    /// <summary>A downloaded file against the blob's Content-MD5: a mismatch is an error that names the blob (nothing is kept).</summary>
    private static async Task VerifyMd5Async(string path, byte[] expected, string blobName, CancellationToken ct)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
        var actual = await System.Security.Cryptography.MD5.HashDataAsync(stream, ct);
        if (!actual.AsSpan().SequenceEqual(expected))
            throw new IOException($"{blobName}: downloaded content does not match the blob's Content-MD5 ({Convert.ToBase64String(actual)} != {Convert.ToBase64String(expected)})");
    }

    /// <summary>
    /// The item's files (path inside the item → ETag), hidden blobs skipped; names that are not hub paths refused.
    /// hashes, when given, receives each file's Content-MD5 (null when the blob has none).
    /// </summary>
    private async Task<Dictionary<string, string>> ListItemAsync(HubArea area, string name, CancellationToken ct, Dictionary<string, byte[]?>? hashes = null)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            await foreach (var blob in Container(area).GetBlobsAsync(new GetBlobsOptions { Prefix = name + "/" }, ct))
            {
                var relative = blob.Name[(name.Length + 1)..];
                if (relative.Length == 0 || relative.Split('/').Any(HubNames.IsHidden)) continue;
                HubNames.ValidatePath(relative, $"blob name in {HubNames.AreaName(area)}/{name}");
                files[relative] = Tag(blob.Properties.ETag);
                if (hashes is not null) hashes[relative] = blob.Properties.ContentHash;
            }
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // no container: no item
        }
        return files;
    }

    public async Task PublishFolderAsync(HubArea area, string name, string localFolder, string commitMarker, CancellationToken ct = default)
    {
        PublishSource.ValidateArguments(area, name, localFolder, commitMarker);
        var (body, markers) = PublishSource.Collect(area, localFolder, commitMarker);
        await EnsureContainerAsync(area, ct);
        var container = Container(area);
        await using var lease = await PublishLease.AcquireAsync(container, name, PublishWait, ct);
        try
        {
            await PublishLeasedAsync(container, name, body, markers, lease.Token); // cancelled if the lease is lost
        }
        catch (OperationCanceledException) when (lease.Lost && !ct.IsCancellationRequested)
        {
            throw new IOException($"{container.Name}/{name}: the publish lease was lost midway (another writer may publish it now); the item is left without its {HubNames.CommitMarker(area)} until a publish completes");
        }
    }

    private static async Task PublishLeasedAsync(BlobContainerClient container, string name, List<PublishSource.SourceFile> body,
        List<PublishSource.SourceFile> markers, CancellationToken ct)
    {
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct };

        // 1. No markers (the area's own first): readers that check them see the item as incomplete from here on.
        foreach (var marker in Enumerable.Reverse(markers))
            await container.GetBlobClient($"{name}/{marker.RelativePath}").DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: ct);

        // 2. Every other file.
        await Parallel.ForEachAsync(body, parallel, async (file, token) =>
            await container.GetBlobClient($"{name}/{file.RelativePath}").UploadAsync(file.FullPath, overwrite: true, token));

        // 3. Blobs of the old item that the new one does not have.
        var keep = body.Concat(markers).Select(f => $"{name}/{f.RelativePath}").ToHashSet(StringComparer.Ordinal);
        var stale = new List<string>();
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = name + "/" }, ct))
            if (!keep.Contains(blob.Name)) stale.Add(blob.Name);
        await Parallel.ForEachAsync(stale, parallel, async (blobName, token) =>
            await container.GetBlobClient(blobName).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: token));

        // 4. The markers, last (the area's own at the very end).
        foreach (var marker in markers)
            await container.GetBlobClient($"{name}/{marker.RelativePath}").UploadAsync(marker.FullPath, overwrite: true, ct);
    }

    /// <summary>How long PublishFolderAsync waits for another publish of the same item to finish (or its lease to expire).</summary>
    public TimeSpan PublishWait { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The exclusive right to publish one item: a renewed lease on the hidden blob ".publish/{name}".</summary>
    private sealed class PublishLease : IAsyncDisposable
    {
        private static readonly TimeSpan Duration = TimeSpan.FromSeconds(60);
        private readonly BlobLeaseClient _lease;
        private readonly CancellationTokenSource _lost;
        private readonly Task _renewing;
        private volatile bool _leaseLost;

        private PublishLease(BlobLeaseClient lease, CancellationToken ct)
        {
            _lease = lease;
            _lost = CancellationTokenSource.CreateLinkedTokenSource(ct);
            _renewing = RenewAsync();
        }

        public CancellationToken Token => _lost.Token;

        /// <summary>True when a renewal failed: another publisher may hold the item now.</summary>
        public bool Lost => _leaseLost;

        public static async Task<PublishLease> AcquireAsync(BlobContainerClient container, string name, TimeSpan wait, CancellationToken ct)
        {
            var blob = container.GetBlobClient($".publish/{name}");
            try
            {
                await blob.UploadAsync(BinaryData.Empty, new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } }, ct);
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412)
            {
                // it exists (perhaps leased by another publisher)
            }
            var lease = blob.GetBlobLeaseClient();
            var deadline = DateTime.UtcNow + wait;
            for (var pause = 50; ; pause = Math.Min(pause * 2, 2000))
            {
                try
                {
                    await lease.AcquireAsync(Duration, cancellationToken: ct);
                    return new PublishLease(lease, ct);
                }
                catch (RequestFailedException e) when (e.Status == 409 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(pause, ct); // another publish of this item is under way
                }
                catch (RequestFailedException e) when (e.Status == 409)
                {
                    throw new IOException($"{container.Name}/{name} is being published by another writer (lease on {container.Name}/.publish/{name} held for over {wait.TotalSeconds:F0} s); nothing was written", e);
                }
            }
        }

        private async Task RenewAsync()
        {
            try
            {
                while (true)
                {
                    await Task.Delay(Duration / 3, _lost.Token);
                    await _lease.RenewAsync(cancellationToken: _lost.Token);
                }
            }
            catch (OperationCanceledException)
            {
                // released
            }
            catch (RequestFailedException)
            {
                _leaseLost = true;
                await _lost.CancelAsync(); // the lease is gone: the publish must not go on writing
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _lost.CancelAsync();
            try { await _renewing; } catch (OperationCanceledException) { }
            if (!_leaseLost)
            {
                try
                {
                    await _lease.ReleaseAsync();
                }
                catch (RequestFailedException)
                {
                    // expired meanwhile: nothing to release
                }
            }
            _lost.Dispose();
        }
    }

    private Task EnsureContainerAsync(HubArea area, CancellationToken ct)
    {
        var lazy = _created.GetOrAdd(area, a => new Lazy<Task>(() => CreateAsync(a)));
        return lazy.Value.WaitAsync(ct);

        async Task CreateAsync(HubArea a)
        {
            try
            {
                await Container(a).CreateIfNotExistsAsync();
            }
            catch
            {
                _created.TryRemove(a, out _); // let the next call try again
                throw;
            }
        }
    }

    /// <summary>An ETag as text, without the quotes that some responses (uploads, downloads) have and listings do not.</summary>
    private static string Tag(ETag? etag) => (etag?.ToString() ?? "").Trim('"');

    private static ETag Quoted(string tag) => new($"\"{tag}\"");

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
