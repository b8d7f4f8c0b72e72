namespace LoraHub.Storage;

/// <summary>What publishing a local folder into a hub would send, checked before anything is uploaded.</summary>
public static class PushableFolder
{
    /// <summary>
    /// The folder's files (relative paths with '/', and sizes), hidden entries skipped. Throws IOException naming the
    /// entry when the folder holds a symbolic link or a special file, HubNameException for a name the hub cannot hold.
    /// The folder itself may be a link (the user chose it); nothing inside it may be.
    /// </summary>
    public static IReadOnlyList<(string RelativePath, long Size)> Files(string folder)
    {
        var root = Path.GetFullPath(folder);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{folder} is not a folder");
        return PublishSource.Files(root, folder).Select(f => (f.Relative, new FileInfo(f.Full).Length)).ToList();
    }

    /// <summary>
    /// Refuses a file to push that is a fifo, socket or device (reading one blocks or never ends), following a link the
    /// user gave on the command line. Throws IOException naming it.
    /// </summary>
    public static void CheckFile(string file)
    {
        var full = Path.GetFullPath(file);
        var kind = LoraHub.IO.FolderPublish.Kind(full);
        if (kind == LoraHub.IO.EntryKind.SymbolicLink)
            kind = new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target ? LoraHub.IO.FolderPublish.Kind(target.FullName) : LoraHub.IO.EntryKind.Missing;
        if (kind == LoraHub.IO.EntryKind.Special) throw new IOException($"{file} is a special file (fifo, socket or device), not a file to push");
        if (kind == LoraHub.IO.EntryKind.Directory) throw new IOException($"{file} is a folder, not a file to push");
    }
}
