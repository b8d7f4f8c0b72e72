namespace LoraHub.Storage;

/// <summary>The files of a local folder to publish: hidden entries skipped, every other path validated, marker checked.</summary>
internal static class PublishSource
{
    public sealed record SourceFile(string RelativePath, string FullPath, long Size);

    /// <summary>
    /// The regular files under root that a publish sends (hidden entries skipped, names validated). A symbolic link or a
    /// special file (fifo, socket, device) anywhere below root is refused, naming it: the hub never copies what a link
    /// points to (it may be outside the folder: a key, a password file) and never blocks reading a fifo.
    /// </summary>
    public static List<(string Relative, string Full)> Files(string root, string shownAs)
    {
        var files = LoraHub.IO.FolderWalk.Files(root, relative => HubNames.IsHidden(relative.Split('/')[^1]));
        foreach (var (relative, _) in files) HubNames.ValidatePath(relative, $"file name in {shownAs}");
        return files;
    }

    /// <summary>Checks the arguments of PublishFolderAsync that need no I/O.</summary>
    public static void ValidateArguments(HubArea area, string name, string localFolder, string commitMarker)
    {
        if (!HubNames.IsFolderArea(area))
            throw new ArgumentException("PublishFolderAsync publishes folder items (models, modules, adapters); write examples with WriteFileAsync", nameof(area));
        HubNames.ValidateItemName(area, name);
        HubNames.ValidateName(commitMarker, "commit marker name");
        ArgumentException.ThrowIfNullOrWhiteSpace(localFolder);
    }

    /// <summary>
    /// The files under the folder, split into the body and the markers: the commit marker given, and the area's own
    /// marker (HubNames.CommitMarker), which must both be there; the area's marker comes last since listings check it.
    /// Throws before anything is written when a file is unusable.
    /// </summary>
    public static (List<SourceFile> Body, List<SourceFile> Markers) Collect(HubArea area, string localFolder, string commitMarker)
    {
        var root = Path.GetFullPath(localFolder);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"the folder to publish does not exist: {localFolder}");
        var markerNames = new List<string> { commitMarker };
        if (HubNames.CommitMarker(area) is { } areaMarker)
        {
            markerNames.Remove(areaMarker);
            markerNames.Add(areaMarker);
        }
        var body = new List<SourceFile>();
        var markers = new SourceFile?[markerNames.Count];
        foreach (var (relative, full) in Files(root, localFolder))
        {
            var file = new SourceFile(relative, full, new FileInfo(full).Length);
            var m = markerNames.IndexOf(relative);
            if (m >= 0) markers[m] = file;
            else body.Add(file);
        }
        for (var i = 0; i < markerNames.Count; i++)
        {
            if (markers[i] is not null) continue;
            var why = markerNames[i] == commitMarker
                ? "it is the commit marker of the publish (written last)"
                : $"every item of {HubNames.AreaName(area)} has one (listings show only items that have it)";
            throw new FileNotFoundException($"{localFolder} has no {markerNames[i]}: {why}", Path.Combine(root, markerNames[i]));
        }
        body.Sort((a, b) => string.CompareOrdinal(a.RelativePath, b.RelativePath));
        return (body, markers.Select(m => m!).ToList());
    }
}
