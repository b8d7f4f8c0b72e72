namespace LoraHub.Core.Composition;

/// <summary>
/// Writes a composition folder (adapter_config.json, adapter_model.safetensors, report.png, lorahub.json)
/// all or nothing: everything goes to a hidden sibling folder that is renamed into place at the end, so a
/// reader never sees a half-written adapter and a failure leaves the previous output untouched.
/// </summary>
public static class CompositionOutput
{
    public const string RecordFile = "lorahub.json";
    public const string ReportFile = "report.png";

    /// <summary>Refuses an --out folder that already holds a composition (or other files) unless force is set.</summary>
    public static void CheckTarget(string directory, bool force)
    {
        if (force || !Directory.Exists(directory)) return;
        if (File.Exists(Path.Combine(directory, RecordFile)))
            throw new CompositionException($"{directory} already holds a composition (lorahub.json); use --force to replace it");
        if (Directory.EnumerateFileSystemEntries(directory).Any())
            throw new CompositionException($"{directory} is not empty; use --force to replace it");
    }

    public static void Write(string directory, CompositionResult result, bool force, byte[]? reportPng = null)
    {
        directory = Path.GetFullPath(directory.TrimEnd(Path.DirectorySeparatorChar));
        CheckTarget(directory, force);
        var parent = Path.GetDirectoryName(directory)!;
        Directory.CreateDirectory(parent);
        var name = Path.GetFileName(directory);
        var staging = Path.Combine(parent, $".{name}.writing-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            result.Adapter.Save(staging, result.Record.BaseModel);
            if (reportPng is not null) File.WriteAllBytes(Path.Combine(staging, ReportFile), reportPng);
            File.WriteAllText(Path.Combine(staging, RecordFile), result.Record.ToJson());
            Swap(staging, directory);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Moves the finished folder into place; an existing one is moved aside first and removed after.</summary>
    private static void Swap(string staging, string directory)
    {
        string? aside = null;
        if (Directory.Exists(directory))
        {
            aside = Path.Combine(Path.GetDirectoryName(directory)!, $".{Path.GetFileName(directory)}.replaced-{Guid.NewGuid():N}");
            Directory.Move(directory, aside);
        }
        try
        {
            Directory.Move(staging, directory);
        }
        catch
        {
            if (aside is not null) Directory.Move(aside, directory); // put the old output back
            throw;
        }
        if (aside is not null) Directory.Delete(aside, recursive: true);
    }
}
