using System.Text;
using System.Text.Json.Nodes;
using LoraHub.Functions.Requests;
using LoraHub.Functions.Triggers;
using LoraHub.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// Hostile input at the Functions app's two doors: HTTP bodies (sizes, content types, encodings, shapes, numbers) and
/// dropped example blobs (names, contents, sidecars). Each must end in a 4xx (HTTP) or an .error.json (blob) with a
/// message, and start no orchestration and write no adapter.
/// </summary>
[Collection(FunctionsCollection.Name)]
public sealed class HostileEntryPointTests(FunctionsHub hub)
{
    private CompositionsApi Compositions => hub.Services.GetRequiredService<CompositionsApi>();
    private HubApi Hub => hub.Services.GetRequiredService<HubApi>();

    private const string Example = """{"input": "a", "output": "b"}""";

    private static HttpRequest Raw(byte[] body, string? contentType, long? declaredLength = -1)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("localhost", 7071);
        context.Request.Path = "/api/compositions";
        context.Request.Body = new MemoryStream(body);
        context.Request.ContentLength = declaredLength == -1 ? body.Length : declaredLength; // null: chunked, no length
        context.Request.ContentType = contentType;
        return context.Request;
    }

    private async Task<int> Instances() => (await hub.Client.GetAllInstancesAsync().ToListAsync()).Count;

    private async Task AssertRefused(HttpRequest request, int status, string? message)
    {
        var before = await Instances();
        var (got, answer) = HttpApiTests.Read(await Compositions.Start(request, hub.Client, default));
        Assert.Equal(status, got);
        var error = answer!["error"]!.GetValue<string>();
        Assert.False(string.IsNullOrWhiteSpace(error));
        Assert.DoesNotContain('\n', error);
        if (message is not null) Assert.Contains(message, error);
        Assert.Equal(before, await Instances());
    }

    public static TheoryData<string, int, string?> HostileBodies => new()
    {
        // Shapes and types the request parser must refuse.
        { """{"task": null, "examples": [EX]}""", 400, "\"task\"" },
        { """{"task": "", "examples": [EX]}""", 400, null },
        { """{"task": "t\u0000x", "examples": [EX]}""", 400, "control character" },
        { """{"task": "ünïcode", "examples": [EX]}""", 400, "invalid hub task name" },
        { """{"task": "TASKLONG", "examples": [EX]}""", 400, "characters long" },
        { """{"task": "con", "examples": [EX]}""", 400, "reserved" },
        { """{"task": "t", "examples": "just text"}""", 400, "\"examples\"" },
        { """{"task": "t", "examples": {"input": "a", "output": "b"}}""", 400, "\"examples\"" },
        { """{"task": "t", "examples": [1, 2]}""", 400, null },
        { """{"task": "t", "examples": [null]}""", 400, null },
        { """{"task": "t", "examples": [{"input": 5, "output": "b"}]}""", 400, "\"input\"" },
        { """{"task": "t", "examples": [{"input": "a", "output": ["b"]}]}""", 400, "\"output\"" },
        { """{"task": "t", "examples": [EX], "budget": -1}""", 400, "budget" },
        { """{"task": "t", "examples": [EX], "budget": 1e999}""", 400, "budget" },
        { """{"task": "t", "examples": [EX], "budget": 2.5}""", 400, "budget" },
        { """{"task": "t", "examples": [EX], "budget": 99999999999}""", 400, "budget" },
        { """{"task": "t", "examples": [EX], "seed": "x"}""", 400, "\"seed\"" },
        { """{"task": "t", "examples": [EX], "l1": "NaN"}""", 400, "l1" },
        { """{"task": "t", "examples": [EX], "l1": -1}""", 400, "l1" },
        { """{"task": "t", "examples": [EX], "k": -3}""", 400, "k" },
        { """{"task": "t", "examples": [EX], "k": 100000}""", 400, "k" },
        { """{"task": "t", "examples": [EX], "optimizer": 5}""", 400, "\"optimizer\"" },
        { """{"task": "t", "examples": [EX], "optimizer": "../cobyla"}""", 400, "optimizer" },
        { """{"task": "t", "examples": [EX], "modules": "lora_0"}""", 400, "\"modules\"" },
        { """{"task": "t", "examples": [EX], "modules": [1]}""", 400, "\"modules\"" },
        { """{"task": "t", "examples": [EX], "modules": []}""", 400, null },
        { """{"task": "t", "examples": [EX], "base": "../../etc"}""", 400, "base" },
        { """{"task": "t", "examples": [EX], "base": 7}""", 400, "\"base\"" },
        { """{"task": "t", "examples_blob": "x/../y.jsonl"}""", 400, "invalid hub examples file name" },
        { """{"task": "t", "examples_blob": 3}""", 400, "\"examples_blob\"" },
        { """{"task": "t", "examples": [EX], "task": "u"}""", 400, "not valid JSON" },
        { """{"task": "t", "examples": [EX], "budget": 3, "budget": 400000}""", 400, "not valid JSON" },
        // JSON the parser itself refuses.
        { "{\"task\": \"t\", \"examples\": [EX], \"budget\": NaN}", 400, "not valid JSON" },
        { "{\"task\": \"t\", \"examples\": [EX],}", 400, "not valid JSON" },
        { "{'task': 't'}", 400, "not valid JSON" },
        { "DEEP", 400, "not valid JSON" },
        { "\"just a string\"", 400, "must be a JSON object" },
        { "null", 400, "must be a JSON object" },
        { "   ", 400, "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(HostileBodies))]
    public async Task A_hostile_body_is_refused_with_a_message_and_starts_nothing(string body, int status, string? message)
    {
        body = body.Replace("EX", Example).Replace("TASKLONG", new string('t', 300))
            .Replace("DEEP", new string('[', 100_000) + new string(']', 100_000));
        await AssertRefused(HttpApiTests.Request("POST", "/api/compositions", body), status, message);
    }

    public static TheoryData<string?> WrongContentTypes => new()
    {
        "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/octet-stream", "image/png", "text/html; charset=utf-8",
    };

    [Theory]
    [MemberData(nameof(WrongContentTypes))]
    public async Task A_body_that_is_not_json_by_content_type_is_415(string? contentType) =>
        await AssertRefused(Raw(Encoding.UTF8.GetBytes($$"""{"task": "t", "examples": [{{Example}}]}"""), contentType), 415, "must be JSON");

    [Fact]
    public async Task A_body_declared_larger_than_the_limit_is_413_before_it_is_read()
    {
        var limit = hub.Options.MaxExamplesBytes * 2;
        var body = new NotReadable();
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Body = body;
        context.Request.ContentLength = limit + 1;
        context.Request.ContentType = "application/json";
        await AssertRefused(context.Request, 413, $"{limit + 1} bytes");
        Assert.Equal(0, body.Reads);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_huge_body_without_a_length_is_cut_off_at_the_limit_with_413(bool garbage)
    {
        var limit = hub.Options.MaxExamplesBytes * 2;
        var huge = garbage ? new byte[limit * 3] : Encoding.UTF8.GetBytes("{\"task\": \"t\", \"examples\": [" + string.Join(",", Enumerable.Repeat(Example, (int)(limit / 20))) + "]}");
        await AssertRefused(Raw(huge, "application/json", declaredLength: null), 413, "larger than");
    }

    [Theory]
    [InlineData(new byte[] { 0xff, 0xfe, 0x7b, 0x7d })]
    [InlineData(new byte[] { 0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d })]
    [InlineData(new byte[] { 0x00, 0x00, 0x00 })]
    public async Task A_body_that_is_not_utf8_is_400(byte[] body) =>
        await AssertRefused(Raw(body, "application/json"), 400, null);

    public static TheoryData<string, string> HostileGenerateBodies => new()
    {
        { """{"inputs": "a"}""", "\"inputs\"" },
        { """{"inputs": []}""", "\"inputs\"" },
        { """{"inputs": [null]}""", "list of strings" },
        { """{"inputs": ["a"], "max_new_tokens": -5}""", "max_new_tokens" },
        { """{"inputs": ["a"], "max_new_tokens": 1e999}""", "max_new_tokens" },
        { """{"inputs": ["a"], "max_new_tokens": "10"}""", "max_new_tokens" },
        { "[\"a\"]", "must be a JSON object" },
    };

    [Theory]
    [MemberData(nameof(HostileGenerateBodies))]
    public async Task Generate_refuses_hostile_bodies(string body, string message)
    {
        var (status, answer) = HttpApiTests.Read(await Hub.Generate(HttpApiTests.Request("POST", "/api/adapters/any/generate", body), "any", default));
        Assert.Equal(400, status);
        Assert.Contains(message, answer!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Generate_refuses_too_many_inputs()
    {
        var inputs = new JsonArray(Enumerable.Range(0, hub.Options.MaxGenerateInputs + 1).Select(i => (JsonNode)JsonValue.Create($"x{i}")).ToArray());
        var (status, answer) = HttpApiTests.Read(await Hub.Generate(HttpApiTests.Request("POST", "/api/adapters/any/generate",
            new JsonObject { ["inputs"] = inputs }.ToJsonString()), "any", default));
        Assert.Equal(400, status);
        Assert.Contains("inputs", answer!["error"]!.GetValue<string>());
    }

    public static TheoryData<string> HostileBlobNames => new()
    {
        "", " ", "a b", "t\n", "t\0x", "ünïcode", "-dash", "_under", "ends.", "a:b", "a*b", "%2e%2e", "x/../y", "nul.x", "LPT1",
        new string('a', 200),
    };

    [Theory]
    [MemberData(nameof(HostileBlobNames))]
    public async Task A_dropped_blob_with_a_hostile_name_is_ignored_and_writes_nothing(string task)
    {
        var before = (await hub.Store.ListAsync(HubArea.Examples)).Select(e => e.Name).ToList();
        var instances = await Instances();
        var result = await hub.Intake.FromBlobAsync(hub.Client, task, new MemoryStream(FunctionsHub.Jsonl(FunctionsHub.Examples)));
        Assert.Null(result.InstanceId);
        Assert.Null(result.ErrorFile);
        Assert.Contains("not a valid task name", result.Error);
        Assert.Equal(before, (await hub.Store.ListAsync(HubArea.Examples)).Select(e => e.Name).ToList());
        Assert.Equal(instances, await Instances());
    }

    public static TheoryData<string, string, string?> HostileBlobs => new()
    {
        // name, examples file, sidecar
        { "h-array-line", "[1, 2]\n", null },
        { "h-string-line", "\"just text\"\n", null },
        { "h-null-line", "null\n", null },
        { "h-number-input", """{"input": 5, "output": "b"}""" + "\n", null },
        { "h-nested-output", """{"input": "a", "output": {"x": 1}}""" + "\n", null },
        { "h-deep", new string('[', 10_000) + "\n", null },
        { "h-binary", "\u0000\u0001\u0002\u0003", null },
        { "h-sidecar-array", Example + "\n", "[]" },
        { "h-sidecar-null", Example + "\n", "null" },
        { "h-sidecar-budget-negative", Example + "\n", """{"budget": -1}""" },
        { "h-sidecar-budget-huge", Example + "\n", """{"budget": 1e999}""" },
        { "h-sidecar-seed-text", Example + "\n", """{"seed": "x"}""" },
        { "h-sidecar-l1-nan", Example + "\n", """{"l1": "NaN"}""" },
        { "h-sidecar-modules-string", Example + "\n", """{"modules": "lora_0"}""" },
        { "h-sidecar-modules-path", Example + "\n", """{"modules": ["../lora_0"]}""" },
        { "h-sidecar-base-path", Example + "\n", """{"base": "../../etc"}""" },
        { "h-sidecar-deep", Example + "\n", new string('[', 10_000) },
        { "h-sidecar-binary", Example + "\n", "\u0000\u00ff" },
        { "h-sidecar-task", Example + "\n", """{"task": "other"}""" },
        { "h-sidecar-examples", Example + "\n", """{"examples": [{"input": "x", "output": "y"}]}""" },
        { "h-sidecar-duplicate", Example + "\n", """{"budget": 3, "budget": 4}""" },
    };

    [Theory]
    [MemberData(nameof(HostileBlobs))]
    public async Task A_hostile_dropped_file_gets_an_error_file_and_starts_nothing(string task, string examples, string? sidecar)
    {
        var bytes = Encoding.UTF8.GetBytes(examples);
        if (sidecar is not null) await hub.Store.WriteFileAsync(HubArea.Examples, $"{task}.json", Encoding.UTF8.GetBytes(sidecar));
        await hub.Store.WriteFileAsync(HubArea.Examples, $"{task}.jsonl", bytes);
        var instances = await Instances();
        var result = await hub.Intake.FromBlobAsync(hub.Client, task, new MemoryStream(bytes));
        Assert.Null(result.InstanceId);
        Assert.False(string.IsNullOrWhiteSpace(result.Error));
        var error = await hub.Store.ReadFileAsync(HubArea.Examples, $"{task}.error.json");
        Assert.NotNull(error);
        var report = JsonNode.Parse(error.Content)!;
        Assert.StartsWith($"examples/{task}.json", report["file"]!.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(report["error"]!.GetValue<string>()));
        Assert.Equal(instances, await Instances());
        Assert.Equal(bytes, (await hub.Store.ReadFileAsync(HubArea.Examples, $"{task}.jsonl"))!.Content);
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Adapters, $"{task}/lorahub.json"));
    }

    // A duplicate key in an example line is refused by the examples parser: the trigger writes .error.json.
    [Fact]
    public Task A_dropped_file_with_a_duplicate_key_gets_an_error_file() =>
        A_hostile_dropped_file_gets_an_error_file_and_starts_nothing("h-duplicate-key-line", """{"input": "a", "input": "b", "output": "c"}""" + "\n", null);

    /// <summary>A body stream that counts reads: a declared oversize body must be refused without reading it.</summary>
    private sealed class NotReadable : MemoryStream
    {
        public int Reads { get; private set; }
        public override int Read(byte[] buffer, int offset, int count) { Reads++; return 0; }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) { Reads++; return ValueTask.FromResult(0); }
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) { Reads++; return Task.FromResult(0); }
    }
}
