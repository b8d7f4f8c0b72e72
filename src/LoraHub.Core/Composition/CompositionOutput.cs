using LoraHub.IO;

namespace LoraHub.Core.Composition;

/// <summary>
/// Writes a composition folder (adapter_config.json, adapter_model.safetensors, report.png, lorahub.json) all or
/// nothing, exclusively and crash-safely: everything goes to a hidden sibling folder that is moved into place under a
/// lock (FolderPublish; protocol in docs/hostile-inputs-publish.md). Of several runs racing for one --out one writes and
/// the others fail with a clear error; with force a killed run leaves the old or the new composition, never none.
/// </summary>
public static class CompositionOutput
{
    public const string RecordFile = "lorahub.json";
    public const string ReportFile = "report.png";

    /// <summary>
    /// Refuses, before any compute, an --out that cannot hold the result: a file, a folder whose parent cannot be
    /// created or written, or (unless force is set) a folder that already holds a composition or other files.
    /// Leftovers of killed runs next to it are cleaned (or a lost composition restored) on the way.
    /// </summary>
    public static void CheckTarget(string directory, bool force)
    {
        try
        {
            FolderPublish.Check(directory, force, Occupied);
        }
        catch (IOException e)
        {
            throw new CompositionException($"--out: {e.Message}");
        }
    }

    public static void Write(string directory, CompositionResult result, bool force, byte[]? reportPng = null) =>
        Write(directory, result, force, reportPng, step: null);

    /// <summary>Write, with a callback between the publish protocol's steps (tests kill the process there).</summary>
    public static void Write(string directory, CompositionResult result, bool force, byte[]? reportPng, Action<string>? step)
    {
        ArgumentNullException.ThrowIfNull(result);
        try
        {
            FolderPublish.Publish(directory, force, staging =>
            {
                result.Adapter.Save(staging, result.Record.BaseModel);
                if (reportPng is not null) File.WriteAllBytes(Path.Combine(staging, ReportFile), reportPng);
                File.WriteAllText(Path.Combine(staging, RecordFile), result.Record.ToJson());
            }, Occupied, step);
        }
        catch (IOException e)
        {
            throw new CompositionException($"--out: {e.Message}");
        }
    }

    /// <summary>Why an existing folder may not be replaced without --force; null when it is empty.</summary>
    private static string? Occupied(string directory) =>
        File.Exists(Path.Combine(directory, RecordFile)) ? $"{directory} already holds a composition ({RecordFile}); use --force to replace it"
        : Directory.EnumerateFileSystemEntries(directory).Any() ? $"{directory} is not empty; use --force to replace it"
        : null;
}
