using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoraHub.Core.Composition;

/// <summary>One few-shot example of a task.</summary>
public sealed record Example(string Input, string Output);

/// <summary>An examples file that cannot be used; the message names the file, the line and the problem.</summary>
public sealed class ExampleFormatException(string message) : Exception(message);

/// <summary>
/// Reads examples: JSON lines {"input": ..., "output": ...} (aliases: "target" as in BIG-Bench Hard,
/// "context"/"completion" as in the reference's files), or a JSON document {"examples": [...]} (BBH task files).
/// </summary>
public static class ExampleFile
{
    private static readonly string[] InputKeys = ["input", "context"];
    private static readonly string[] OutputKeys = ["output", "target", "completion"];

    public static IReadOnlyList<Example> Load(string path)
    {
        if (!File.Exists(path)) throw new ExampleFormatException($"{path}: examples file does not exist");
        return Parse(File.ReadAllText(path, Encoding.UTF8), path);
    }

    public static IReadOnlyList<Example> Parse(string text, string source)
    {
        var trimmed = text.TrimStart('\uFEFF', ' ', '\t', '\r', '\n');
        if (trimmed.Length == 0) throw new ExampleFormatException($"{source}: the examples file is empty");
        // A whole-file JSON object with an "examples" array is a BBH task file; anything else is JSON lines.
        if (trimmed[0] == '{' && TryParseDocument(trimmed, source) is { } fromDocument) return fromDocument;

        var examples = new List<Example>();
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim().TrimStart('\uFEFF');
            if (line.Length == 0) continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new ExampleFormatException($"{source}: line {i + 1} is not valid JSON ({e.Message})");
            }
            examples.Add(FromObject(node, $"{source}: line {i + 1}"));
        }
        if (examples.Count == 0) throw new ExampleFormatException($"{source}: the examples file holds no examples");
        return examples;
    }

    private static IReadOnlyList<Example>? TryParseDocument(string text, string source)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return null; // not one document: read it as JSON lines
        }
        if (node is not JsonObject obj || !obj.ContainsKey("examples")) return null;
        if (obj["examples"] is not JsonArray array)
            throw new ExampleFormatException($"{source}: \"examples\" is not an array");
        if (array.Count == 0) throw new ExampleFormatException($"{source}: \"examples\" is empty");
        return array.Select((e, i) => FromObject(e, $"{source}: examples[{i}]")).ToList();
    }

    private static Example FromObject(JsonNode? node, string where)
    {
        if (node is not JsonObject obj) throw new ExampleFormatException($"{where} is not a JSON object");
        return new Example(Field(obj, InputKeys, where), Field(obj, OutputKeys, where));
    }

    private static string Field(JsonObject obj, string[] keys, string where)
    {
        foreach (var key in keys)
        {
            if (!obj.TryGetPropertyValue(key, out var value)) continue;
            if (value is JsonValue v && v.TryGetValue(out string? s)) return s;
            throw new ExampleFormatException($"{where}: \"{key}\" is not a string");
        }
        throw new ExampleFormatException($"{where}: no \"{keys[0]}\" field (also accepted: {string.Join(", ", keys.Skip(1).Select(k => $"\"{k}\""))})");
    }
}
