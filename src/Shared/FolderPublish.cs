// Compiled into LoraHub.Core and LoraHub.Storage (linked source, internal in each): the one publish protocol for
// output folders (compose --out, train --out) and the local hub's items. Protocol and reasons: docs/hostile-inputs-publish.md.
using System.Runtime.InteropServices;

namespace LoraHub.IO;

/// <summary>What a path is, without following a symbolic link at the path itself.</summary>
internal enum EntryKind
{
    Missing,
    File,
    Directory,
    SymbolicLink,
    /// <summary>A fifo, socket or device: never read, copied or published.</summary>
    Special,
}

/// <summary>
/// A folder published all or nothing, exclusively, and crash-safely:
/// <list type="number">
/// <item>Every writer of one target first takes an exclusive lock on the hidden sibling file ".{name}.lock" (flock: the
///   kernel releases it when the process dies, so a killed writer never blocks the next one).</item>
/// <item>Under the lock, leftovers of killed writers are dealt with: a missing target with a ".{name}.replaced-*" folder
///   is restored from it (the two-rename fallback below was cut short); every other ".{name}.writing-*",
///   ".{name}.replaced-*" and ".{name}.deleting-*" folder is deleted. Only the lock holder creates them, so none belongs
///   to a live writer.</item>
/// <item>Still under the lock, an occupied target is refused unless replacing (so of N racing writers one wins and the
///   others get a clear error), the new folder is written into ".{name}.writing-{id}" and moved into place:
///   rename(2) when the target is missing or empty (atomic); when replacing, renameat2(RENAME_EXCHANGE) swaps the two
///   folders atomically (Linux 3.15+ on ext4, xfs, btrfs, tmpfs...), so a crash at any moment leaves the old or the new
///   folder in place. Where the exchange is not available the old folder is renamed to ".{name}.replaced-{id}" and the
///   new one renamed in; a crash between those two renames leaves no target, and the next writer (step 2) restores
///   the old folder.</item>
/// </list>
/// </summary>
internal static partial class FolderPublish
{
    /// <summary>How long a writer waits for another writer of the same target to finish.</summary>
    public static TimeSpan LockTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>For tests: pretend renameat2(RENAME_EXCHANGE) is not available (exercises the two-rename fallback).</summary>
    public static bool DisableExchange { get; set; }

    /// <summary>The absolute target path: trailing separators trimmed; a symbolic link to a folder is followed to its folder.</summary>
    public static string Resolve(string directory)
    {
        var full = Path.GetFullPath(Path.TrimEndingDirectorySeparator(directory));
        if (Kind(full) == EntryKind.SymbolicLink)
        {
            var target = new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true);
            if (target is null || Kind(target.FullName) != EntryKind.Directory)
                throw new IOException($"{directory} is a symbolic link that does not lead to a folder");
            full = target.FullName;
        }
        return full;
    }

    /// <summary>
    /// Checks that the target can be published into (before any expensive work): it is a folder or absent, its parent
    /// can be created and written, and (unless replacing) it is empty; repairs leftovers of killed writers on the way.
    /// occupied(target) returns why an existing target may not be replaced without --force, or null.
    /// </summary>
    public static string Check(string directory, bool replace, Func<string, string?> occupied)
    {
        var target = Resolve(directory);
        var (parent, name) = Split(target);
        RefuseNonFolder(target);
        using (Lock(parent, name))
        {
            Repair(parent, name, target);
            if (!replace && Kind(target) == EntryKind.Directory && occupied(target) is { } why) throw new PublishConflictException(why);
        }
        return target;
    }

    /// <summary>
    /// Writes a new folder with fill(stagingFolder) and publishes it as the target (see the class summary). Returns the
    /// absolute target. step, when given, is called between the protocol's steps (tests widen them to kill a writer there).
    /// </summary>
    public static string Publish(string directory, bool replace, Action<string> fill, Func<string, string?> occupied, Action<string>? step = null)
    {
        var target = Resolve(directory);
        var (parent, name) = Split(target);
        RefuseNonFolder(target);
        using var held = Lock(parent, name);
        Repair(parent, name, target);
        step?.Invoke("locked");
        if (!replace && Kind(target) == EntryKind.Directory && occupied(target) is { } why)
            throw new PublishConflictException($"{why} (if it was not so when this run started, another run wrote it meanwhile); nothing was written");

        var staging = Path.Combine(parent, $".{name}.writing-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            fill(staging);
            step?.Invoke("staged");
            if (Kind(target) == EntryKind.Missing || IsEmptyDirectory(target))
            {
                Rename(staging, target); // atomic; replaces an empty folder, fails on a non-empty one
                step?.Invoke("renamed");
            }
            else if (!DisableExchange && TryExchange(staging, target))
            {
                step?.Invoke("exchanged"); // the old folder now sits at the staging path
                DeleteQuietly(parent, name, staging);
            }
            else
            {
                var aside = Path.Combine(parent, $".{name}.replaced-{Guid.NewGuid():N}");
                Rename(target, aside);
                step?.Invoke("moved-aside");
                Rename(staging, target);
                step?.Invoke("renamed");
                DeleteQuietly(parent, name, aside);
            }
        }
        finally
        {
            if (Kind(staging) != EntryKind.Missing) DeleteQuietly(parent, name, staging);
        }
        step?.Invoke("done");
        return target;
    }

    /// <summary>Restores a target lost between the fallback's two renames, and deletes every other leftover.</summary>
    private static void Repair(string parent, string name, string target)
    {
        var leftovers = Directory.EnumerateDirectories(parent, $".{name}.*-*").Select(d => (Path: d, Kind: LeftoverKind(name, Path.GetFileName(d))))
            .Where(l => l.Kind is not null).ToList();
        if (Kind(target) == EntryKind.Missing)
        {
            // At most one exists (the lock serialises writers and the fallback deletes its own); newest first if not.
            var restore = leftovers.Where(l => l.Kind == "replaced").OrderByDescending(l => Directory.GetLastWriteTimeUtc(l.Path)).FirstOrDefault();
            if (restore.Path is not null)
            {
                Rename(restore.Path, target);
                leftovers.Remove(restore);
            }
        }
        foreach (var (path, kind) in leftovers) DeleteQuietly(parent, name, path);
    }

    private static string? LeftoverKind(string name, string entry)
    {
        foreach (var kind in new[] { "writing", "replaced", "deleting" })
            if (entry.StartsWith($".{name}.{kind}-", StringComparison.Ordinal)) return kind;
        return null;
    }

    /// <summary>Renames to ".{name}.deleting-*" first (so a half-deleted folder is never taken for a whole one), then deletes.</summary>
    private static void DeleteQuietly(string parent, string name, string path)
    {
        try
        {
            var doomed = Path.GetFileName(path).StartsWith($".{name}.deleting-", StringComparison.Ordinal) ? path : Path.Combine(parent, $".{name}.deleting-{Guid.NewGuid():N}");
            if (doomed != path) Rename(path, doomed);
            Directory.Delete(doomed, recursive: true); // removes links, never what they point to
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static (string Parent, string Name) Split(string target)
    {
        var parent = Path.GetDirectoryName(target) ?? throw new IOException($"{target}: cannot publish a folder at the root of the file system");
        return (parent, Path.GetFileName(target));
    }

    private static void RefuseNonFolder(string target)
    {
        switch (Kind(target))
        {
            case EntryKind.File: throw new IOException($"{target} is a file, not a folder");
            case EntryKind.Special: throw new IOException($"{target} is a special file (fifo, socket or device), not a folder");
        }
        // The nearest existing ancestor must be a folder: "a/file/out" cannot be created.
        for (var up = Path.GetDirectoryName(target); up is not null; up = Path.GetDirectoryName(up))
        {
            var kind = Kind(up);
            if (kind == EntryKind.Missing) continue;
            if (kind is EntryKind.File or EntryKind.Special) throw new IOException($"{target}: cannot create it, {up} is a file, not a folder");
            break;
        }
    }

    /// <summary>
    /// Takes the target's lock (creating its parent folder): also the check that the parent can be written. On Linux the
    /// lock file is removed on release, so nothing is left next to the target: a waiter that then gets the lock on the
    /// removed file sees that the path no longer names its file (inode check) and tries again.
    /// </summary>
    private static HeldLock Lock(string parent, string name)
    {
        try
        {
            Directory.CreateDirectory(parent);
        }
        catch (UnauthorizedAccessException)
        {
            throw new IOException($"{parent}: cannot create the folder (permission denied)");
        }
        var path = Path.Combine(parent, $".{name}.lock");
        var deadline = DateTime.UtcNow + LockTimeout;
        while (true)
        {
            FileStream stream;
            try
            {
                // FileShare.None is an exclusive flock on Unix; the kernel drops it when the process dies.
                stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (UnauthorizedAccessException)
            {
                throw new IOException($"{parent}: cannot write in this folder (permission denied)");
            }
            catch (IOException) when (DateTime.UtcNow < deadline && Kind(path) is EntryKind.File or EntryKind.Missing)
            {
                Thread.Sleep(20); // another writer of this target holds it; it keeps it for one publish only
                continue;
            }
            catch (IOException e)
            {
                throw new PublishConflictException($"{Path.Combine(parent, name)}: another run kept publishing into it for {LockTimeout.TotalSeconds:F0} s (lock {path}: {e.Message})");
            }
            if (!OperatingSystem.IsLinux() || SameFile(stream, path)) return new HeldLock(stream, path);
            stream.Dispose(); // the holder before us removed this lock file: take the new one
        }
    }

    private sealed class HeldLock(FileStream stream, string path) : IDisposable
    {
        public void Dispose()
        {
            if (OperatingSystem.IsLinux())
            {
                try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
            stream.Dispose();
        }
    }

    private static unsafe bool SameFile(FileStream stream, string path)
    {
        var byPath = stackalloc byte[256];
        var byHandle = stackalloc byte[256];
        if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxIno, byPath) != 0) return false;
        var fd = (int)stream.SafeFileHandle.DangerousGetHandle();
        if (statx(fd, "", AtEmptyPath, StatxIno, byHandle) != 0) return false;
        return *(ulong*)(byPath + 32) == *(ulong*)(byHandle + 32); // stx_ino
    }

    private static bool IsEmptyDirectory(string path) => Kind(path) == EntryKind.Directory && !Directory.EnumerateFileSystemEntries(path).Any();

    // ---- native calls (Linux; other systems fall back to .NET) ----

    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const uint StatxIno = 0x100;
    private const uint RenameExchange = 2;
    private const int ENOTEMPTY = 39, EEXIST = 17, ENOENT = 2, EACCES = 13, EPERM = 1, EXDEV = 18;

    /// <summary>What the path is, without following a link at the path (statx on Linux).</summary>
    public static EntryKind Kind(string path)
    {
        if (OperatingSystem.IsLinux()) return LinuxKind(path);
        var info = new FileInfo(path);
        if (info.LinkTarget is not null) return EntryKind.SymbolicLink;
        if (Directory.Exists(path)) return EntryKind.Directory;
        return info.Exists ? EntryKind.File : EntryKind.Missing;
    }

    private static unsafe EntryKind LinuxKind(string path)
    {
        // struct statx is the same on every Linux architecture: stx_mode (u16) at byte 28, 256 bytes in all.
        var buffer = stackalloc byte[256];
        if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is ENOENT or 20 /* ENOTDIR */) return EntryKind.Missing;
            throw new IOException($"{path}: cannot be inspected (errno {errno})");
        }
        var mode = *(ushort*)(buffer + 28) & 0xF000;
        return mode switch
        {
            0x8000 => EntryKind.File,
            0x4000 => EntryKind.Directory,
            0xA000 => EntryKind.SymbolicLink,
            _ => EntryKind.Special,
        };
    }

    /// <summary>rename(2): atomic; a folder replaces only an empty folder. Errors name both paths.</summary>
    private static void Rename(string source, string destination)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            if (IsEmptyDirectory(destination)) Directory.Delete(destination);
            Directory.Move(source, destination);
            return;
        }
        if (rename(source, destination) == 0) return;
        var errno = Marshal.GetLastPInvokeError();
        throw errno switch
        {
            ENOTEMPTY or EEXIST => new PublishConflictException($"{destination} is not empty (another writer filled it); nothing was written"),
            EACCES or EPERM => new IOException($"cannot move {source} to {destination}: permission denied"),
            EXDEV => new IOException($"cannot move {source} to {destination}: they are on different file systems"),
            _ => new IOException($"cannot move {source} to {destination} (errno {errno})"),
        };
    }

    /// <summary>Swaps two folders atomically; false when the system or file system cannot (then nothing changed).</summary>
    private static bool TryExchange(string a, string b)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            if (renameat2(AtFdCwd, a, AtFdCwd, b, RenameExchange) == 0) return true;
        }
        catch (EntryPointNotFoundException)
        {
            return false; // a C library without renameat2 (glibc before 2.28, some musl)
        }
        var errno = Marshal.GetLastPInvokeError();
        if (errno is 22 /* EINVAL: not supported here */ or 38 /* ENOSYS */ or 95 /* EOPNOTSUPP */) return false;
        throw new IOException($"cannot exchange {a} and {b} (errno {errno})");
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rename(string oldPath, string newPath);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);
}

/// <summary>The target is taken: another writer published there first (or holds it), and replacing was not asked for.</summary>
internal sealed class PublishConflictException(string message) : IOException(message);

/// <summary>Walks a folder the way a hub sees it: never through a symbolic link, never into a special file.</summary>
internal static class FolderWalk
{
    /// <summary>
    /// Every regular file under root (relative paths with '/'), skipping entries for which skip(relativePath) is true;
    /// a symbolic link or special file anywhere below root is refused with an IOException naming it.
    /// </summary>
    public static List<(string Relative, string Full)> Files(string root, Func<string, bool> skip)
    {
        var files = new List<(string, string)>();
        Walk(root, "");
        files.Sort((x, y) => string.CompareOrdinal(x.Item1, y.Item1));
        return files;

        void Walk(string dir, string prefix)
        {
            foreach (var full in Directory.EnumerateFileSystemEntries(dir))
            {
                var relative = prefix + Path.GetFileName(full);
                if (skip(relative)) continue;
                switch (FolderPublish.Kind(full))
                {
                    case EntryKind.File: files.Add((relative, full)); break;
                    case EntryKind.Directory: Walk(full, relative + "/"); break;
                    case EntryKind.SymbolicLink:
                        throw new IOException($"{full} is a symbolic link (to {new FileInfo(full).LinkTarget}): links are not followed out of {root}; copy the file itself in");
                    case EntryKind.Special:
                        throw new IOException($"{full} is a special file (fifo, socket or device), not a regular file");
                    case EntryKind.Missing: break; // removed while walking
                }
            }
        }
    }
}
