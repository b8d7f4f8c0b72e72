using System.Security.Cryptography;

namespace LoraHub.Functions.Requests;

/// <summary>
/// Orchestration instance ids derived from content: "{task}-{first 16 hex digits of sha256}". The same examples
/// and settings always map to the same id, so a file uploaded twice (or a POST repeated) runs once, and any
/// change runs again.
/// </summary>
public static class InstanceIds
{
    /// <summary>For a dropped file: sha256(examples bytes, 0x00, sidecar bytes); a missing sidecar hashes as empty.</summary>
    public static string ForFiles(string task, ReadOnlySpan<byte> examples, ReadOnlySpan<byte> sidecar)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(examples);
        hash.AppendData([0]);
        hash.AppendData(sidecar);
        return Format(task, hash.GetHashAndReset());
    }

    /// <summary>For an HTTP request: sha256 of its canonical JSON (examples and settings).</summary>
    public static string ForRequest(string task, byte[] canonicalJson) => Format(task, SHA256.HashData(canonicalJson));

    private static string Format(string task, byte[] digest) => $"{task}-{Convert.ToHexStringLower(digest)[..16]}";

    /// <summary>What an instance id may look like in a URL: a hub name, '-', 16 hex digits (anything else is a 400).</summary>
    public static bool LooksValid(string? id) =>
        id is { Length: > 17 and <= 256 } && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
}
