using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LoraHub.Core.Composition;
using LoraHub.Functions.Contracts;
using LoraHub.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LoraHub.Functions.Requests;

/// <summary>What the blob trigger did with a file: started or found an instance, or rejected the file (and why).</summary>
public sealed record IntakeResult(string? InstanceId, bool Started, string? Error, string? ErrorFile);

/// <summary>
/// Turns examples into compositions: a file dropped in examples/ (with its optional sidecar of settings) or an HTTP
/// request. Everything is validated before anything starts; a bad file gets examples/{task}.error.json next to it,
/// a bad request a 4xx. Nothing is ever deleted on bad input.
/// </summary>
public sealed partial class ExampleIntake(IHubStore store, CompositionStarter starter, IOptions<LoraHubOptions> options, ILogger<ExampleIntake> log)
{
    public const string ExamplesExtension = ".jsonl";
    public const string SidecarExtension = ".json";
    public const string ErrorExtension = ".error.json";

    private readonly LoraHubOptions limits = options.Value;

    /// <summary>The blob trigger's work: examples/{task}.jsonl arrived (content is the blob).</summary>
    public async Task<IntakeResult> FromBlobAsync(DurableTaskClient client, string task, Stream content, CancellationToken ct = default)
    {
        var file = task + ExamplesExtension;
        if (!HubNames.IsValidName(task))
        {
            // No error file: a name with path tricks must not choose where we write.
            var message = $"examples/{file}: not a valid task name ({NameProblem(task)}); the file is ignored";
            log.LogError("{Message}", message);
            return new IntakeResult(null, false, message, null);
        }
        try
        {
            var bytes = await ReadLimitedAsync(content, limits.MaxExamplesBytes, file, ct);
            var examples = ParseExamples(bytes, file);
            var sidecar = await store.ReadFileAsync(HubArea.Examples, task + SidecarExtension, ct);
            var settings = sidecar is null ? null : CompositionSpec.ParseSettingsFile(Decode(sidecar.Content, task + SidecarExtension), task + SidecarExtension);
            var where = sidecar is null ? file : task + SidecarExtension;
            var request = CompositionSpec.Build(task, settings, examples, $"examples/{file}", where, limits);
            request = await CompositionSpec.CheckAgainstHubAsync(request, store, where, ct);
            var id = InstanceIds.ForFiles(task, bytes, sidecar?.Content ?? []);
            var outcome = await starter.StartAsync(client, request, id, ct);
            // A fixed file clears the complaint about its previous version.
            await store.DeleteFileAsync(HubArea.Examples, task + ErrorExtension, ct);
            return new IntakeResult(outcome.InstanceId, outcome.Started, null, null);
        }
        catch (RequestException e)
        {
            var errorFile = task + ErrorExtension;
            var report = new JsonObject
            {
                ["error"] = e.Message,
                ["file"] = $"examples/{e.File ?? file}",
                ["line"] = e.Line,
                ["task"] = task,
                ["time"] = DateTimeOffset.UtcNow.ToString("O"),
            };
            await store.WriteFileAsync(HubArea.Examples, errorFile, Encoding.UTF8.GetBytes(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true })), ct);
            log.LogWarning("examples/{File} rejected: {Message} (see examples/{ErrorFile})", file, e.Message, errorFile);
            return new IntakeResult(null, false, e.Message, errorFile);
        }
    }

    /// <summary>
    /// POST /api/compositions: {"task", "examples": [{"input", "output"}...] or "examples_blob": "name.jsonl", settings...}.
    /// Throws RequestException (a 4xx) when anything is wrong.
    /// </summary>
    public async Task<(CompositionRequest Request, StartOutcome Outcome)> FromHttpAsync(DurableTaskClient client, JsonObject body, CancellationToken ct = default)
    {
        const string where = "request body";
        var task = body["task"] switch
        {
            null => throw new RequestException($"{where}: \"task\" is missing (the task's name: the adapter goes to adapters/{{task}}/)"),
            JsonValue v when v.TryGetValue(out string? s) => CompositionSpec.Name(s, "task name", where),
            _ => throw new RequestException($"{where}: \"task\" must be a string"),
        };
        IReadOnlyList<Example> examples;
        string source;
        switch (body["examples"], body["examples_blob"])
        {
            case (null, null):
                throw new RequestException($"{where}: give the examples inline (\"examples\": [{{\"input\": ..., \"output\": ...}}]) or name a blob (\"examples_blob\": \"{task}.jsonl\")");
            case (not null, not null):
                throw new RequestException($"{where}: give either \"examples\" or \"examples_blob\", not both");
            case (JsonArray inline, null):
                var text = new JsonObject { ["examples"] = inline.DeepClone() }.ToJsonString();
                if (Encoding.UTF8.GetByteCount(text) > limits.MaxExamplesBytes)
                    throw new RequestException($"{where}: the examples are larger than {limits.MaxExamplesBytes} bytes", status: 413);
                examples = ParseExamples(Encoding.UTF8.GetBytes(text), "examples");
                source = "http";
                break;
            case (null, JsonValue blobName) when blobName.TryGetValue(out string? blob):
                try
                {
                    HubNames.ValidateItemName(HubArea.Examples, blob);
                }
                catch (HubNameException e)
                {
                    throw new RequestException($"{where}: \"examples_blob\": {e.Message}");
                }
                var stored = await store.ReadFileAsync(HubArea.Examples, blob, ct)
                    ?? throw new RequestException($"{where}: examples blob \"examples/{blob}\" does not exist", status: 404);
                if (stored.Content.LongLength > limits.MaxExamplesBytes)
                    throw new RequestException($"examples/{blob} is {stored.Content.LongLength} bytes (at most {limits.MaxExamplesBytes})", status: 413);
                examples = ParseExamples(stored.Content, blob);
                source = $"examples/{blob}";
                break;
            default:
                throw new RequestException($"{where}: \"examples\" must be a list of {{\"input\", \"output\"}} objects and \"examples_blob\" a blob name");
        }
        var request = CompositionSpec.Build(task, body, examples, source, where, limits, ["task", "examples", "examples_blob"]);
        request = await CompositionSpec.CheckAgainstHubAsync(request, store, where, ct);
        var id = InstanceIds.ForRequest(task, JsonSerializer.SerializeToUtf8Bytes(request with { Source = "" }, ApiJson.Options));
        return (request, await starter.StartAsync(client, request, id, ct));
    }

    private static async Task<byte[]> ReadLimitedAsync(Stream content, long limit, string file, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await content.ReadAsync(chunk, ct)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limit)
                throw new RequestException($"examples/{file} is larger than {limit} bytes (the limit, LoraHub:MaxExamplesBytes): a few examples are enough", file);
        }
        return buffer.ToArray();
    }

    private static IReadOnlyList<Example> ParseExamples(byte[] bytes, string file)
    {
        var text = Decode(bytes, file);
        try
        {
            return ExampleFile.Parse(text, file);
        }
        catch (ExampleFormatException e)
        {
            var line = LinePattern().Match(e.Message);
            throw new RequestException(e.Message, file, line.Success ? int.Parse(line.Groups[1].Value) : null);
        }
    }

    private static string Decode(byte[] bytes, string file)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new RequestException($"{file} is not UTF-8 text", file);
        }
    }

    private static string NameProblem(string task)
    {
        try
        {
            HubNames.ValidateName(task, "task name");
            return "";
        }
        catch (HubNameException e)
        {
            return e.Message;
        }
    }

    [GeneratedRegex(@"\bline (\d+)\b")]
    private static partial Regex LinePattern();
}
