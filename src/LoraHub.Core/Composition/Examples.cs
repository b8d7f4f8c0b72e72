using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoraHub.Core.Composition;

/// <summary>One few-shot example of a task.</summary>
public sealed record Example(string Input, string Output);

/// <summary>An examples file that cannot be used; the message names the file, the line and the problem.</summary>
public sealed class ExampleFormatException(string message) : Exception(message);

/// <summary>
/// Limits on an examples file, generous for real use (a few-shot set is 5 lines, a BBH task 250) and far below what
/// would exhaust memory or time: reading stops at the first line over <see cref="MaxLineBytes"/> or example over
/// <see cref="MaxExamples"/> with an error that says which limit was hit and how to raise it. The defaults can be
/// changed with the environment variables LORAHUB_MAX_EXAMPLES and LORAHUB_MAX_LINE_BYTES.
/// </summary>
public sealed record ExampleLimits(int MaxLineBytes = ExampleLimits.DefaultMaxLineBytes, int MaxExamples = ExampleLimits.DefaultMaxExamples)
{
    public const int DefaultMaxLineBytes = 1 << 20;
    public const int DefaultMaxExamples = 100_000;

    /// <summary>A whole-file JSON document (BBH task file) is read at once only up to this size.</summary>
    public const int MaxDocumentBytes = 64 << 20;

    /// <summary>The defaults, or the environment's LORAHUB_MAX_EXAMPLES / LORAHUB_MAX_LINE_BYTES when set.</summary>
    public static ExampleLimits Default => new(
        FromEnvironment("LORAHUB_MAX_LINE_BYTES", DefaultMaxLineBytes), FromEnvironment("LORAHUB_MAX_EXAMPLES", DefaultMaxExamples));

    private static int FromEnvironment(string name, int fallback) =>
        Environment.GetEnvironmentVariable(name) is { } text
            ? int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0
                ? v : throw new ExampleFormatException($"environment variable {name}='{text}' is not a positive integer")
            : fallback;
}

/// <summary>
/// Reads examples: JSON lines {"input": ..., "output": ...} (aliases: "target" as in BIG-Bench Hard,
/// "context"/"completion" as in the reference's files), or a JSON document {"examples": [...]} (BBH task files).
/// The file must be UTF-8 (an invalid byte is an error naming its line, never a silent U+FFFD) and within
/// <see cref="ExampleLimits"/>.
/// </summary>
public static class ExampleFile
{
    private static readonly string[] InputKeys = ["input", "context"];
    private static readonly string[] OutputKeys = ["output", "target", "completion"];
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static IReadOnlyList<Example> Load(string path, ExampleLimits? limits = null)
    {
        if (!File.Exists(path)) throw new ExampleFormatException($"{path}: examples file does not exist");
        limits ??= ExampleLimits.Default;
        // Stryker disable once Bitwise : a buffer size (0 = unbuffered): the same bytes, speed only
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        // A BBH task file is one JSON document {"examples": [...]}: read it whole when it is of a sane size. JSON lines
        // (whose first line is a complete value without "examples") are streamed, never read whole.
        if (FirstMeaningfulByte(stream) == '{' && stream.Length <= ExampleLimits.MaxDocumentBytes && IsDocument(stream, limits))
        {
            stream.Position = 0;
            var bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
            return Parse(Decode(bytes, 0, bytes.Length, path, firstLine: 1, wholeFile: true), path, limits);
        }
        stream.Position = 0;
        return ParseLines(ReadLines(stream, path, limits), path, limits);
    }

    public static IReadOnlyList<Example> Parse(string text, string source) => Parse(text, source, ExampleLimits.Default);

    public static IReadOnlyList<Example> Parse(string text, string source, ExampleLimits limits)
    {
        var trimmed = text.TrimStart('\uFEFF', ' ', '\t', '\r', '\n');
        if (trimmed.Length == 0) throw new ExampleFormatException($"{source}: the examples file is empty");
        // A whole-file JSON object with an "examples" array is a BBH task file; anything else is JSON lines.
        if (trimmed[0] == '{' && TryParseDocument(trimmed, source, limits) is { } fromDocument) return fromDocument;
        return ParseLines(SplitLines(text, source, limits), source, limits);
    }

    private static IEnumerable<(int Number, string Text)> SplitLines(string text, string source, ExampleLimits limits)
    {
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            // UTF-8 takes at least one byte per char: a line of more chars than the byte limit is surely over it.
            if (lines[i].Length > limits.MaxLineBytes || StrictUtf8.GetByteCount(lines[i]) > limits.MaxLineBytes)
                throw LineTooLong(source, i + 1, limits);
            yield return (i + 1, lines[i]);
        }
    }

    private static IReadOnlyList<Example> ParseLines(IEnumerable<(int Number, string Text)> lines, string source, ExampleLimits limits)
    {
        var examples = new List<Example>();
        foreach (var (number, text) in lines)
        {
            var line = text.Trim().TrimStart('\uFEFF');
            if (line.Length == 0) continue;
            if (examples.Count >= limits.MaxExamples) throw TooMany(source, limits);
            // JsonDocument (pooled buffers) rather than JsonNode: a file of 100k lines stays small in memory.
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line, Models.ConfigFields.StrictJson);
            }
            catch (JsonException e)
            {
                throw new ExampleFormatException($"{source}: line {number} is not valid JSON ({e.Message})");
            }
            using (document) examples.Add(FromElement(document.RootElement, $"{source}: line {number}"));
        }
        if (examples.Count == 0) throw new ExampleFormatException($"{source}: the examples file holds no examples");
        return examples;
    }

    /// <summary>Lines of a UTF-8 stream, each checked against the line limit before it is decoded (strictly).</summary>
    private static IEnumerable<(int Number, string Text)> ReadLines(Stream stream, string path, ExampleLimits limits)
    {
        var line = new MemoryStream();
        var buffer = new byte[1 << 16];
        var number = 1;
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            var start = 0;
            while (start < read)
            {
                var end = Array.IndexOf(buffer, (byte)'\n', start, read - start);
                var take = (end < 0 ? read : end) - start;
                if (line.Length + take > limits.MaxLineBytes) throw LineTooLong(path, number, limits);
                line.Write(buffer, start, take);
                if (end < 0) break;
                yield return (number, Decode(line.GetBuffer(), 0, (int)line.Length, path, number, wholeFile: false));
                line.SetLength(0);
                number++;
                start = end + 1;
            }
        }
        if (line.Length > 0) yield return (number, Decode(line.GetBuffer(), 0, (int)line.Length, path, number, wholeFile: false));
    }

    private static string Decode(byte[] bytes, int offset, int count, string path, int firstLine, bool wholeFile)
    {
        try
        {
            return StrictUtf8.GetString(bytes, offset, count);
        }
        catch (DecoderFallbackException e)
        {
            var at = e.Index >= 0 ? e.Index : 0;
            var line = wholeFile ? firstLine + bytes.AsSpan(offset, Math.Min(at, count)).Count((byte)'\n') : firstLine;
            throw new ExampleFormatException($"{path}: line {line} is not valid UTF-8 (invalid byte 0x{(e.BytesUnknown is { Length: > 0 } b ? b[0] : 0):x2}); save the file as UTF-8");
        }
    }

    /// <summary>True unless the first line is a complete JSON object without an "examples" key (then: JSON lines).</summary>
    private static bool IsDocument(Stream stream, ExampleLimits limits)
    {
        stream.Position = 0;
        var buffer = new byte[(int)Math.Min(stream.Length, limits.MaxLineBytes + 1L)];
        var read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        var end = Array.IndexOf(buffer, (byte)'\n', 0, read);
        if (end < 0 && read == buffer.Length && read < stream.Length) return true; // a first line over the limit: only a document may be that long
        try
        {
            using var first = JsonDocument.Parse(buffer.AsMemory(0, end < 0 ? read : end), Models.ConfigFields.StrictJson);
            return first.RootElement.ValueKind == JsonValueKind.Object && first.RootElement.TryGetProperty("examples", out _);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
        {
            return true; // the first line alone is not a value: a document spread over lines
        }
    }

    private static int FirstMeaningfulByte(Stream stream)
    {
        int b;
        // Skip a UTF-8 BOM and whitespace.
        while ((b = stream.ReadByte()) is 0xEF or 0xBB or 0xBF or (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') { }
        return b;
    }

    private static ExampleFormatException LineTooLong(string source, int line, ExampleLimits limits) => new(
        $"{source}: line {line} is longer than {limits.MaxLineBytes} bytes, the limit for one example (raise it with LORAHUB_MAX_LINE_BYTES)");

    private static ExampleFormatException TooMany(string source, ExampleLimits limits) => new(
        $"{source}: holds more than {limits.MaxExamples} examples, the limit for one file (raise it with LORAHUB_MAX_EXAMPLES)");

    private static IReadOnlyList<Example>? TryParseDocument(string text, string source, ExampleLimits limits)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: Models.ConfigFields.StrictJson);
        }
        catch (JsonException)
        {
            return null; // not one document: read it as JSON lines
        }
        if (node is not JsonObject obj || !obj.ContainsKey("examples")) return null;
        if (obj["examples"] is not JsonArray array)
            throw new ExampleFormatException($"{source}: \"examples\" is not an array");
        if (array.Count == 0) throw new ExampleFormatException($"{source}: \"examples\" is empty");
        if (array.Count > limits.MaxExamples) throw TooMany(source, limits);
        return array.Select((e, i) =>
        {
            var example = FromObject(e, $"{source}: examples[{i}]");
            if (example.Input.Length > limits.MaxLineBytes || example.Output.Length > limits.MaxLineBytes)
                throw new ExampleFormatException($"{source}: examples[{i}] is longer than {limits.MaxLineBytes} characters, the limit for one example (raise it with LORAHUB_MAX_LINE_BYTES)");
            return example;
        }).ToList();
    }

    private static Example FromObject(JsonNode? node, string where)
    {
        if (node is not JsonObject obj) throw new ExampleFormatException($"{where} is not a JSON object");
        return new Example(Field(obj, InputKeys, where), Field(obj, OutputKeys, where));
    }

    private static Example FromElement(JsonElement element, string where)
    {
        if (element.ValueKind != JsonValueKind.Object) throw new ExampleFormatException($"{where} is not a JSON object");
        return new Example(Field(element, InputKeys, where), Field(element, OutputKeys, where));
    }

    private static string Field(JsonElement obj, string[] keys, string where)
    {
        foreach (var key in keys)
        {
            if (!obj.TryGetProperty(key, out var value)) continue;
            if (value.ValueKind == JsonValueKind.String) return value.GetString()!;
            throw new ExampleFormatException($"{where}: \"{key}\" is not a string");
        }
        throw new ExampleFormatException($"{where}: no \"{keys[0]}\" field (also accepted: {string.Join(", ", keys.Skip(1).Select(k => $"\"{k}\""))})");
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
