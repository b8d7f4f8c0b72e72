using LoraHub.Core.Lora;
using LoraHub.IO;

namespace LoraHub.Core.Training;

/// <summary>
/// Writes a trained module folder (`lorahub train --out`) with the same exclusive, crash-safe publish as compose's
/// --out (FolderPublish): all or nothing, one winner among racing runs, the old module kept until the new one is whole.
/// </summary>
public static class ModuleOutput
{
    /// <summary>Refuses, before training, an --out that is a file, cannot be created, or (without force) is not empty.</summary>
    public static void CheckTarget(string directory, bool force)
    {
        try
        {
            FolderPublish.Check(directory, force, Occupied);
        }
        catch (IOException e)
        {
            throw new IOException($"--out: {e.Message}", e);
        }
    }

    public static void Write(string directory, LoraTrainingResult result, string baseModelNameOrPath, string? dataFile, bool force)
    {
        ArgumentNullException.ThrowIfNull(result);
        try
        {
            FolderPublish.Publish(directory, force, staging => result.Save(staging, baseModelNameOrPath, dataFile), Occupied);
        }
        catch (IOException e)
        {
            throw new IOException($"--out: {e.Message}", e);
        }
    }

    private static string? Occupied(string directory) =>
        File.Exists(Path.Combine(directory, LoraModule.ConfigFile)) ? $"{directory} already holds a LoRA module ({LoraModule.ConfigFile}); use --force to replace it"
        : Directory.EnumerateFileSystemEntries(directory).Any() ? $"{directory} is not empty; use --force to replace it"
        : null;
}
