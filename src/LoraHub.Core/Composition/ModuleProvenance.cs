using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Training;

namespace LoraHub.Core.Composition;

/// <summary>What a module's training record says about how it was made, as far as composing it cares.</summary>
public static class ModuleProvenance
{
    /// <summary>The hub-wide A init seed a module was trained from (its training record), or null when unknown.</summary>
    public static string? InitSeed(string moduleDirectory)
    {
        var path = Path.Combine(moduleDirectory, LoraTrainingResult.RecordFile);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path))?["init_seed"]?.ToJsonString();
        }
        catch (JsonException)
        {
            return null; // a record we cannot read says nothing; the module itself is checked when loaded
        }
    }

    /// <summary>
    /// The paper's merge sums A matrices, which only combines modules that started from the same A
    /// (docs/toy-world.md): a warning when the modules record different init seeds, none otherwise.
    /// </summary>
    public static IReadOnlyList<string> InitWarnings(IEnumerable<string> moduleDirectories)
    {
        var known = moduleDirectories.Select(InitSeed).OfType<string>().Distinct().ToList();
        return known.Count > 1
            ? [$"modules were trained from different A initialisations (init seeds {string.Join(", ", known)}): the lorahub merge may not combine them well"]
            : [];
    }
}
