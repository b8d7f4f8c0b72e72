using System.Security.Cryptography;
using System.Text;

namespace LoraHub.Storage;

/// <summary>Version tags: one for a file, one for a folder item (a hash over its files' tags).</summary>
internal static class HubVersions
{
    /// <summary>Files up to this size get a content hash in their local ETag (size + mtime alone can miss a fast rewrite).</summary>
    public const int HashedFileLimit = 64 * 1024;

    /// <summary>The local ETag of a file: size and last-write ticks, plus a content hash for small files.</summary>
    public static string LocalFileETag(long size, DateTime lastWriteUtc, ReadOnlySpan<byte> contentIfSmall)
    {
        var tag = $"{size:x}-{lastWriteUtc.Ticks:x}";
        return size <= HashedFileLimit ? $"{tag}-{Hex(SHA256.HashData(contentIfSmall), 8)}" : tag;
    }

    public static string LocalFileETag(string path)
    {
        // One handle for size, time and content, so the three describe the same file (writes replace by rename).
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var size = RandomAccess.GetLength(handle);
        var time = File.GetLastWriteTimeUtc(handle);
        if (size > HashedFileLimit) return LocalFileETag(size, time, default);
        var content = new byte[size];
        var read = 0;
        while (read < content.Length)
        {
            var n = RandomAccess.Read(handle, content.AsSpan(read), read);
            if (n == 0) break;
            read += n;
        }
        return LocalFileETag(size, time, content.AsSpan(0, read));
    }

    /// <summary>The version of a folder item: a hash of its files' relative paths and ETags (order-independent).</summary>
    public static string ItemVersion(IEnumerable<(string RelativePath, string ETag)> files)
    {
        var sb = new StringBuilder();
        foreach (var (path, etag) in files.OrderBy(f => f.RelativePath, StringComparer.Ordinal))
            sb.Append(path).Append('\t').Append(etag).Append('\n');
        return Hex(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())), 16);
    }

    private static string Hex(byte[] hash, int bytes) => Convert.ToHexStringLower(hash.AsSpan(0, bytes));
}
