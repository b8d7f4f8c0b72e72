using LoraHub.IO;

namespace LoraHub.Storage;

/// <summary>
/// The hub as local folders (the embedded default): root/models, root/modules, root/examples, root/adapters.
/// <list type="bullet">
/// <item>ETag of a file: size and last-write ticks, plus a content hash for files up to 64 KiB.</item>
/// <item>Writes go to a hidden temporary file in the same folder, then a rename: a reader sees the old or the new file.</item>
/// <item>PublishFolderAsync copies into a hidden staging folder next to the item (commit marker last), then publishes it
///   with the shared FolderPublish protocol: under a per-item lock (concurrent publishes take turns, never mix), swapped
///   in atomically (renameat2 RENAME_EXCHANGE), so a reader or a crash sees the old item or the new one.</item>
/// <item>The hub never leaves its folder: an area, item or file that is a symbolic link (or a special file) inside the
///   hub is not listed, and reading, writing or materializing through one is refused. The root itself may be a link.</item>
/// <item>An item (model, module, adapter) exists when its folder holds the area's commit marker (HubNames.CommitMarker);
///   its ETag, and the Version MaterializeAsync returns, is a hash over its files' paths and ETags.</item>
/// </list>
/// </summary>
public sealed class LocalHubStore : IHubStore
{
    public LocalHubStore(string rootFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rootFolder);
        Root = Path.GetFullPath(rootFolder);
    }

    /// <summary>The hub's root folder (absolute).</summary>
    public string Root { get; }

    public string Kind => "local";

    public override string ToString() => $"local hub {Root}";

    public Task<IReadOnlyList<HubItem>> ListAsync(HubArea area, CancellationToken ct = default)
    {
        var areaDir = AreaDir(area);
        var items = new List<HubItem>();
        if (NoLinks(areaDir) == EntryKind.Missing) return Task.FromResult<IReadOnlyList<HubItem>>(items);
        if (area == HubArea.Examples)
        {
            foreach (var file in new DirectoryInfo(areaDir).EnumerateFiles())
            {
                ct.ThrowIfCancellationRequested();
                if (!HubNames.IsValidName(file.Name)) continue; // hidden temporaries and names the hub cannot address
                if (FolderPublish.Kind(file.FullName) != EntryKind.File) continue; // a link or fifo is not a hub file
                try
                {
                    items.Add(new HubItem(file.Name, HubVersions.LocalFileETag(file.FullName), file.Length, file.LastWriteTimeUtc));
                }
                catch (FileNotFoundException)
                {
                    // deleted or replaced while listing
                }
            }
        }
        else
        {
            foreach (var dir in new DirectoryInfo(areaDir).EnumerateDirectories())
            {
                ct.ThrowIfCancellationRequested();
                if (!HubNames.IsValidName(dir.Name)) continue; // staging folders are hidden
                if (FolderPublish.Kind(dir.FullName) != EntryKind.Directory) continue; // a link out of the hub is not an item
                try
                {
                    if (Describe(area, dir.FullName) is { } info) items.Add(new HubItem(dir.Name, info.Version, info.Size, info.LastModified));
                }
                catch (IOException)
                {
                    // holds a link or a special file: not an item the hub can serve (MaterializeAsync says why)
                }
            }
        }
        items.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return Task.FromResult<IReadOnlyList<HubItem>>(items);
    }

    public async Task<StoredFile?> ReadFileAsync(HubArea area, string path, CancellationToken ct = default)
    {
        var full = FilePath(area, path);
        if (NoLinks(full) == EntryKind.Missing) return null;
        try
        {
            using var handle = File.OpenHandle(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
            var size = RandomAccess.GetLength(handle);
            if (size > Array.MaxLength) throw new IOException($"{full} is too large to read into memory ({size} bytes)");
            var time = File.GetLastWriteTimeUtc(handle);
            var content = new byte[size];
            var read = 0;
            while (read < content.Length)
            {
                var n = await RandomAccess.ReadAsync(handle, content.AsMemory(read), read, ct);
                if (n == 0) break;
                read += n;
            }
            if (read != content.Length) Array.Resize(ref content, read);
            return new StoredFile(path, content, HubVersions.LocalFileETag(size, time, content));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    public async Task<string> WriteFileAsync(HubArea area, string path, byte[] content, CancellationToken ct = default)
    {
        var full = FilePath(area, path);
        ArgumentNullException.ThrowIfNull(content);
        NoLinks(full);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".tmp-{Guid.NewGuid():N}-{Path.GetFileName(full)}");
        try
        {
            await File.WriteAllBytesAsync(temp, content, ct);
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDeleteFile(temp);
            throw;
        }
        return HubVersions.LocalFileETag(full);
    }

    public Task<bool> DeleteFileAsync(HubArea area, string path, CancellationToken ct = default)
    {
        var full = FilePath(area, path);
        if (NoLinks(full) == EntryKind.Missing || !File.Exists(full)) return Task.FromResult(false);
        try
        {
            File.Delete(full);
        }
        catch (DirectoryNotFoundException)
        {
            return Task.FromResult(false);
        }
        return Task.FromResult(true);
    }

    public Task<MaterializedItem> MaterializeAsync(HubArea area, string name, CancellationToken ct = default)
    {
        var dir = ItemDir(area, name, nameof(MaterializeAsync));
        NoLinks(dir);
        var info = Describe(area, dir) ?? throw NotFound(area, name, dir);
        return Task.FromResult(new MaterializedItem(name, dir, info.Version));
    }

    public async Task PublishFolderAsync(HubArea area, string name, string localFolder, string commitMarker, CancellationToken ct = default)
    {
        PublishSource.ValidateArguments(area, name, localFolder, commitMarker);
        var target = ItemDir(area, name, nameof(PublishFolderAsync));
        var (body, markers) = PublishSource.Collect(area, localFolder, commitMarker);
        var areaDir = AreaDir(area);
        NoLinks(target); // a link in place of the item (or its area) would publish out of the hub
        Directory.CreateDirectory(areaDir);
        await Task.Run(() => FolderPublish.Publish(target, replace: true, staging =>
        {
            foreach (var file in body.Concat(markers)) // the markers last
            {
                ct.ThrowIfCancellationRequested();
                var destination = Path.Combine(staging, file.RelativePath.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                File.Copy(file.FullPath, destination);
            }
            ct.ThrowIfCancellationRequested();
        }, occupied: _ => null), ct);
    }

    /// <summary>
    /// Refuses a path whose components below the hub's root include a symbolic link or a special file: the hub never
    /// reads or writes outside its folder. Returns what the full path itself is (Missing when it does not exist).
    /// </summary>
    private EntryKind NoLinks(string full)
    {
        var relative = Path.GetRelativePath(Root, full);
        var current = Root;
        var kind = EntryKind.Directory;
        foreach (var segment in relative.Split(Path.DirectorySeparatorChar))
        {
            current = Path.Combine(current, segment);
            kind = FolderPublish.Kind(current);
            switch (kind)
            {
                case EntryKind.Missing: return kind;
                case EntryKind.SymbolicLink:
                    throw new IOException($"{current} is a symbolic link (to {new FileInfo(current).LinkTarget}): the hub never follows links out of its folder {Root}");
                case EntryKind.Special:
                    throw new IOException($"{current} is a special file (fifo, socket or device) in the hub {Root}");
            }
        }
        return kind;
    }

    private sealed record ItemInfo(string Version, long Size, DateTimeOffset LastModified);

    /// <summary>The item's version, size and time; null when the folder is missing or has no commit marker.</summary>
    private static ItemInfo? Describe(HubArea area, string dir)
    {
        var marker = HubNames.CommitMarker(area)!;
        if (!File.Exists(Path.Combine(dir, marker))) return null;
        var tags = new List<(string, string)>();
        long size = 0;
        var last = DateTime.MinValue;
        try
        {
            // Throws on a link or special file inside the item (ListAsync skips such an item; MaterializeAsync refuses it).
            foreach (var (relative, full) in FolderWalk.Files(dir, r => HubNames.IsHidden(r.Split('/')[^1])))
            {
                if (!HubNames.IsValidPath(relative)) continue; // names the hub cannot address
                try
                {
                    var info = new FileInfo(full);
                    tags.Add((relative, HubVersions.LocalFileETag(full)));
                    size += info.Length;
                    if (info.LastWriteTimeUtc > last) last = info.LastWriteTimeUtc;
                }
                catch (FileNotFoundException)
                {
                    // replaced while listing
                }
            }
        }
        catch (DirectoryNotFoundException)
        {
            return null; // swapped out by a publish while listing
        }
        return new ItemInfo(HubVersions.ItemVersion(tags), size, new DateTimeOffset(DateTime.SpecifyKind(last, DateTimeKind.Utc)));
    }

    private string AreaDir(HubArea area) => Path.Combine(Root, HubNames.AreaName(area));

    private string FilePath(HubArea area, string path)
    {
        var segments = HubNames.ValidateAreaPath(area, path);
        return Inside(Path.Combine([AreaDir(area), .. segments]), path);
    }

    private string ItemDir(HubArea area, string name, string operation)
    {
        if (!HubNames.IsFolderArea(area))
            throw new ArgumentException($"{operation} works on folder items (models, modules, adapters), not on {HubNames.AreaName(area)}", nameof(area));
        HubNames.ValidateItemName(area, name);
        return Inside(Path.Combine(AreaDir(area), name), name);
    }

    // Validated names cannot leave the root; this is a second, independent check.
    private string Inside(string full, string input)
    {
        full = Path.GetFullPath(full);
        if (!full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new HubNameException($"invalid hub path {HubNames.Show(input)}: it leads outside the hub");
        return full;
    }

    private static HubItemNotFoundException NotFound(HubArea area, string name, string dir) =>
        new(Directory.Exists(dir)
            ? $"{HubNames.AreaName(area)}/{name} has no {HubNames.CommitMarker(area)} (not completely published) in {dir}"
            : $"{HubNames.AreaName(area)}/{name} is not in the hub ({dir} does not exist)");

    private static void TryDeleteFile(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
