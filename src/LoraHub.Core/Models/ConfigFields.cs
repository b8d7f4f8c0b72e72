using System.Text.Json.Nodes;

namespace LoraHub.Core.Models;

/// <summary>
/// Typed, range-checked reads of a JSON config's fields (config.json, adapter_config.json, tokenizer side files).
/// Every number is checked for its JSON type, finiteness, sign and range before anything is built from it, and a bad
/// one is refused with "&lt;file&gt;: &lt;field&gt; &lt;reason&gt;" through the caller's exception type, so a file that says
/// "num_key_value_heads": 0 or "lora_alpha": "NaN" fails here, by name, instead of dividing by zero or defaulting.
/// </summary>
public sealed class ConfigFields(JsonObject json, string source, Func<string, Exception> error)
{
    /// <summary>Largest width, head count or feed-forward size accepted (the largest public models are far below).</summary>
    public const int MaxDimension = 1 << 20;

    /// <summary>Largest layer count accepted.</summary>
    public const int MaxLayers = 4096;

    /// <summary>Largest vocabulary (and so token id + 1) accepted: 16M, 60 times Gemma's.</summary>
    public const int MaxVocabulary = 1 << 24;

    /// <summary>
    /// How every JSON file from outside is parsed: a repeated key is an error at parse time (JsonObject would otherwise
    /// throw ArgumentException on first access, found by the mutation property tests), nesting at most 64 deep.
    /// </summary>
    public static readonly System.Text.Json.JsonDocumentOptions StrictJson = new() { AllowDuplicateProperties = false, MaxDepth = 64 };

    public JsonObject Json => json;

    public string Source => source;

    public Exception Error(string field, string reason) => error($"{source}: {field} {reason}");

    public bool Has(string key) => json[key] is not null;

    /// <summary>An integer field in [min, max]; absent or null gives fallback (null fallback: the field is required).</summary>
    public int Int(string key, int min, int max, int? fallback = null) =>
        OptInt(key, min, max) ?? fallback ?? throw Error($"'{key}'", "is missing (an integer is required)");

    /// <summary>An integer field in [min, max], or null when absent or JSON null.</summary>
    public int? OptInt(string key, int min, int max)
    {
        var node = json[key];
        if (node is null) return null;
        return IntValue(node, $"'{key}'", min, max);
    }

    /// <summary>Checks one JSON node as an integer in [min, max] (1.0 counts as 1, as Python's json would give int(1.0)).</summary>
    public int IntValue(JsonNode node, string field, int min, int max)
    {
        if (node is not JsonValue v || node.GetValueKind() != System.Text.Json.JsonValueKind.Number)
            throw Error(field, $"is {Kind(node)}, not an integer");
        v = Parsed(v);
        if (v.TryGetValue(out long l)) return InRange(l, field, min, max);
        if (v.TryGetValue(out double d))
        {
            if (!double.IsFinite(d)) throw Error(field, $"is {d}, not a finite integer");
            if (d != Math.Floor(d)) throw Error(field, $"is {d}, not an integer");
            if (d < long.MinValue || d > long.MaxValue) throw Error(field, $"is {d:R}, outside [{min}, {max}]");
            return InRange((long)d, field, min, max);
        }
        throw Error(field, $"is {Kind(node)}, not an integer");
    }

    /// <summary>
    /// A number as a parsed file holds it: configs built in code (JsonValue of an int, say) convert only to their own
    /// CLR type, so they are read back through their JSON text, which is what a file would have held.
    /// </summary>
    private static JsonValue Parsed(JsonValue v) =>
        v.TryGetValue(out System.Text.Json.JsonElement _) ? v : (JsonValue)JsonNode.Parse(v.ToJsonString())!;

    private int InRange(long value, string field, int min, int max) =>
        value < min || value > max ? throw Error(field, $"is {value}, outside [{min}, {max}]") : (int)value;

    /// <summary>
    /// A finite number field in [min, max] (exclusiveMin: strictly above min); absent or null gives fallback.
    /// JSON strings ("NaN", "thirty-two") and non-finite values (1e999 parses as infinity) are refused.
    /// </summary>
    public double Double(string key, double min, double max, double fallback, bool exclusiveMin = false) =>
        OptDouble(key, min, max, exclusiveMin) ?? fallback;

    public double? OptDouble(string key, double min, double max, bool exclusiveMin = false)
    {
        var node = json[key];
        if (node is null) return null;
        if (node is not JsonValue v || node.GetValueKind() != System.Text.Json.JsonValueKind.Number)
            throw Error($"'{key}'", $"is {Kind(node)}, not a number");
        v = Parsed(v);
        if (!v.TryGetValue(out double d)) throw Error($"'{key}'", $"is {Kind(node)}, not a finite number");
        if (!double.IsFinite(d)) throw Error($"'{key}'", $"is {d}, not a finite number");
        if (d < min || d > max || (exclusiveMin && d == min))
            throw Error($"'{key}'", $"is {d:R}, outside {(exclusiveMin ? "(" : "[")}{min:R}, {max:R}]");
        return d;
    }

    /// <summary>A boolean field; absent or null gives fallback, anything but true/false is refused.</summary>
    public bool Bool(string key, bool fallback)
    {
        var node = json[key];
        if (node is null) return fallback;
        return node is JsonValue v && v.TryGetValue(out bool b) ? b : throw Error($"'{key}'", $"is {Kind(node)}, not true or false");
    }

    /// <summary>A string field, or null when absent or JSON null; other types are refused.</summary>
    public string? String(string key)
    {
        var node = json[key];
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue(out string? s) ? s : throw Error($"'{key}'", $"is {Kind(node)}, not a string");
    }

    private static string Clip(string s) => s.Length > 40 ? s[..40] + "…" : s;

    /// <summary>A short description of a JSON node's type for messages ("a string \"tiny\"", "an array").</summary>
    public static string Kind(JsonNode? node) => node switch
    {
        null => "null",
        JsonArray => "an array",
        JsonObject => "an object",
        JsonValue v when v.TryGetValue(out string? s) => $"a string \"{(s.Length > 40 ? s[..40] + "…" : s)}\"",
        JsonValue v when v.TryGetValue(out bool b) => b ? "true" : "false",
        JsonValue v when v.TryGetValue(out double d) => $"the number {d:R}",
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number => $"the number {Clip(v.ToJsonString())}",
        _ => "a value",
    };
}
