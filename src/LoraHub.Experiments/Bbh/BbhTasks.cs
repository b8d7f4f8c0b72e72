using LoraHub.Core.Evaluation;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;

namespace LoraHub.Experiments.Bbh;

/// <summary>A BIG-Bench Hard request that cannot be run as asked (an unknown task name, a bad --tasks list).</summary>
public sealed class BbhException(string message) : Exception(message);

/// <summary>One BIG-Bench Hard task file: {"canary": ..., "examples": [{"input": ..., "target": ...}, ...]}.</summary>
public sealed record BbhTask(string Name, string Path);

/// <summary>
/// The LoraHub paper's split of one task: the first <see cref="Shots"/> examples of the file are the few-shot set
/// (LoraHub composes from them; the ICL baseline puts them in the prompt) and every later example is scored.
/// The shots are never scored. The BBH files are fixed, so "first" makes the split reproducible without a seed.
/// </summary>
public sealed record BbhSplit(string Task, string Path, IReadOnlyList<Example> All, int Shots)
{
    public IReadOnlyList<Example> FewShot => All.Take(Shots).ToList();

    /// <summary>Index into <see cref="All"/> of the first scored example.</summary>
    public int FirstScored => Shots;

    /// <summary>The scored examples (all of them, or the first <paramref name="limit"/>).</summary>
    public IReadOnlyList<Example> Scored(int? limit = null) =>
        All.Skip(Shots).Take(limit is { } n ? Math.Min(n, All.Count - Shots) : All.Count - Shots).ToList();
}

/// <summary>Finds, names and loads the BIG-Bench Hard task files of a folder (the project ships all 27 in data/bbh).</summary>
public static class BbhTasks
{
    /// <summary>The 27 tasks of BIG-Bench Hard, as their files are named.</summary>
    public static readonly IReadOnlyList<string> Names =
    [
        "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
        "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
        "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
        "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
        "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
        "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
        "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
        "word_sorting",
    ];

    /// <summary>Name of the folder, next to the lorahub program, that holds the shipped task files.</summary>
    public const string ShippedFolderName = "bbh";

    /// <summary>Every task file (*.json) in the folder, sorted by name.</summary>
    public static IReadOnlyList<BbhTask> Discover(string directory)
    {
        if (!Directory.Exists(directory))
            throw new BbhException($"{directory}: BIG-Bench Hard folder does not exist (point --bbh-dir at a folder of task .json files)");
        var tasks = Directory.GetFiles(directory, "*.json")
            .Select(p => new BbhTask(System.IO.Path.GetFileNameWithoutExtension(p), System.IO.Path.GetFullPath(p)))
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .ToList();
        if (tasks.Count == 0) throw new BbhException($"{directory}: no BIG-Bench Hard task files (*.json) in the folder");
        return tasks;
    }

    /// <summary>
    /// The tasks a --tasks value names: "all" (every file of the folder) or a comma-separated list of task names,
    /// kept in the order given. An unknown name is an error that lists the closest valid names.
    /// </summary>
    public static IReadOnlyList<BbhTask> Resolve(string directory, string spec)
    {
        var available = Discover(directory);
        var trimmed = spec.Trim();
        if (trimmed.Length == 0) throw new BbhException("--tasks is empty: give 'all' or task names separated by commas");
        if (trimmed.Equals("all", StringComparison.OrdinalIgnoreCase)) return available;
        var byName = available.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var chosen = new List<BbhTask>();
        foreach (var raw in trimmed.Split(',', StringSplitOptions.TrimEntries))
        {
            var name = raw.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? raw[..^5] : raw;
            if (name.Length == 0) throw new BbhException($"--tasks '{spec}' has an empty name");
            if (!byName.TryGetValue(name, out var task))
            {
                var nearest = available.Select(t => t.Name).OrderBy(n => Distance(n, name)).ThenBy(n => n, StringComparer.Ordinal).Take(4);
                throw new BbhException($"unknown BBH task '{name}' in {directory} (for example: {string.Join(", ", nearest)}; {available.Count} tasks in all, or 'all')");
            }
            if (chosen.Contains(task)) throw new BbhException($"--tasks names '{name}' twice");
            chosen.Add(task);
        }
        return chosen;
    }

    /// <summary>
    /// Loads a task file and splits it: at least shots + 1 examples are needed (the shots, and one or more to score).
    /// A file that is not a BBH task file, or holds too few examples, is an <see cref="ExampleFormatException"/>.
    /// </summary>
    public static BbhSplit Load(BbhTask task, int shots)
    {
        if (shots < 1) throw new BbhException($"--shots must be at least 1 (got {shots})");
        var examples = Read(task.Path);
        if (examples.Count < shots + 1)
            throw new ExampleFormatException($"{task.Path}: BBH task '{task.Name}' has {examples.Count} example(s); --shots {shots} needs at least {shots + 1} ({shots} to compose from, the rest to score)");
        return new BbhSplit(task.Name, task.Path, examples, shots);
    }

    /// <summary>Reads {"examples": [{"input": string, "target": string}, ...]} strictly.</summary>
    public static IReadOnlyList<Example> Read(string path)
    {
        if (!File.Exists(path)) throw new ExampleFormatException($"{path}: BBH task file does not exist");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(path, Encoding.UTF8));
        }
        catch (JsonException e)
        {
            throw new ExampleFormatException($"{path}: not a JSON document ({e.Message})");
        }
        if (node is not JsonObject obj || !obj.TryGetPropertyValue("examples", out var examplesNode))
            throw new ExampleFormatException($"{path}: not a BBH task file (expected {{\"examples\": [{{\"input\": ..., \"target\": ...}}]}})");
        if (examplesNode is not JsonArray array) throw new ExampleFormatException($"{path}: \"examples\" is not an array");
        if (array.Count == 0) throw new ExampleFormatException($"{path}: the BBH task file holds no examples");
        var result = new List<Example>(array.Count);
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject e) throw new ExampleFormatException($"{path}: examples[{i}] is not a JSON object");
            result.Add(new Example(Field(e, "input", path, i), Field(e, "target", path, i)));
        }
        return result;
    }

    private static string Field(JsonObject e, string key, string path, int index) =>
        e[key] is JsonValue v && v.TryGetValue(out string? s)
            ? s
            : throw new ExampleFormatException($"{path}: examples[{index}] has no string \"{key}\"");

    /// <summary>Levenshtein distance, to suggest the task names closest to a misspelt one.</summary>
    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
