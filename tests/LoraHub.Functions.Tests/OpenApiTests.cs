using System.Net.Http.Json;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using LoraHub.Storage;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// GET /api/openapi.json describes the HTTP API: its paths and methods are exactly the HTTP routes of the build's
/// functions.metadata (operationId = function name), and real responses of the app served over HTTP have documented
/// status codes, content types and the schemas' required fields and types.
/// </summary>
[Collection(FunctionsCollection.Name)]
public sealed class OpenApiTests(FunctionsHub hub)
{
    private const string Key = "openapi-key";

    private static JsonArray Metadata()
    {
        var output = typeof(OpenApiTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "FunctionsOutput").Value!;
        return JsonNode.Parse(File.ReadAllText(Path.Combine(output, "functions.metadata")))!.AsArray();
    }

    [Fact]
    public async Task The_document_matches_the_routes_and_the_real_responses()
    {
        await using var server = await FunctionsServer.StartAsync(hub, Key);
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Add("x-functions-key", Key);
        var doc = JsonNode.Parse(await http.GetStringAsync(server.Api + "/openapi.json"))!;
        Assert.Equal(server.Api, doc["servers"]![0]!["url"]!.GetValue<string>());

        // Paths and methods = the HTTP triggers in functions.metadata.
        var routes = Metadata().Select(f => f!.AsObject())
            .SelectMany(f => f["bindings"]!.AsArray().Where(b => b!["type"]!.GetValue<string>() == "httpTrigger")
                .SelectMany(b => b!["methods"]!.AsArray().Select(m => $"{m!.GetValue<string>()} /{b["route"]!.GetValue<string>()} {f["name"]!.GetValue<string>()}")))
            .Order().ToList();
        var documented = doc["paths"]!.AsObject()
            .SelectMany(p => p.Value!.AsObject().Select(op => $"{op.Key} {p.Key} {op.Value!["operationId"]!.GetValue<string>()}"))
            .Order().ToList();
        Assert.Equal(routes, documented);

        // Real responses.
        var exercised = new HashSet<string>();
        async Task<HttpResponseMessage> Check(HttpMethod method, string path, string template, HttpContent? content = null)
        {
            var response = await http.SendAsync(new HttpRequestMessage(method, server.Api + path) { Content = content });
            var operation = doc["paths"]![template]![method.Method.ToLowerInvariant()]!;
            var status = ((int)response.StatusCode).ToString();
            var documentedResponse = operation["responses"]![status] ?? throw new Xunit.Sdk.XunitException($"{method} {path}: {status} is not documented");
            documentedResponse = Resolve(doc, documentedResponse);
            var type = response.Content.Headers.ContentType?.MediaType ?? "";
            var contentSpec = documentedResponse["content"]?[type] ?? throw new Xunit.Sdk.XunitException($"{method} {path} {status}: content type {type} is not documented");
            if (type == "application/json") Validate(doc, contentSpec["schema"]!, JsonNode.Parse(await response.Content.ReadAsStringAsync()), $"{method} {path} {status}");
            exercised.Add($"{method.Method.ToLowerInvariant()} {template} {status}");
            return response;
        }
        static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

        await Check(HttpMethod.Get, "/health", "/health");
        await Check(HttpMethod.Get, "/openapi.json", "/openapi.json");
        await Check(HttpMethod.Get, "/ui", "/ui");
        await Check(HttpMethod.Get, "/modules", "/modules");
        var body = """{"task": "openapi", "examples": [{"input": "Is the sky blue? yes or no", "output": "yes"}], "modules": ["lora_1"], "budget": 2, "optimizer": "cobyla"}""";
        var started = await (await Check(HttpMethod.Post, "/compositions", "/compositions", Json(body))).Content.ReadFromJsonAsync<JsonObject>();
        var id = started!["id"]!.GetValue<string>();
        await Check(HttpMethod.Post, "/compositions", "/compositions", Json("{\"task\": 1}"));
        await Check(HttpMethod.Post, "/compositions", "/compositions", Json("""{"task": "t", "examples_blob": "absent.jsonl"}"""));
        await Check(HttpMethod.Post, "/compositions", "/compositions", new StringContent(new string('x', 3 << 20), Encoding.UTF8, "application/json"));
        await Check(HttpMethod.Post, "/compositions", "/compositions", new StringContent("task=x", Encoding.UTF8, "text/plain"));
        await hub.WaitAsync(id);
        await Check(HttpMethod.Get, "/compositions", "/compositions");
        await Check(HttpMethod.Get, $"/compositions/{id}", "/compositions/{id}");
        await Check(HttpMethod.Get, "/compositions/nothing-0123456789abcdef", "/compositions/{id}");
        await Check(HttpMethod.Get, "/compositions/x", "/compositions/{id}");
        await Check(HttpMethod.Delete, $"/compositions/{id}", "/compositions/{id}");
        await Check(HttpMethod.Delete, "/compositions/nothing-0123456789abcdef", "/compositions/{id}");
        await Check(HttpMethod.Delete, "/compositions/x", "/compositions/{id}");
        await Check(HttpMethod.Get, "/adapters/openapi", "/adapters/{task}");
        await Check(HttpMethod.Get, "/adapters/none-such", "/adapters/{task}");
        await Check(HttpMethod.Get, "/adapters/a..b", "/adapters/{task}");
        var png = await Check(HttpMethod.Get, "/adapters/openapi/report.png", "/adapters/{task}/report.png");
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], (await png.Content.ReadAsByteArrayAsync())[..4]);
        await Check(HttpMethod.Get, "/adapters/none-such/report.png", "/adapters/{task}/report.png");
        await Check(HttpMethod.Get, "/adapters/a..b/report.png", "/adapters/{task}/report.png");
        await Check(HttpMethod.Post, "/adapters/openapi/generate", "/adapters/{task}/generate", Json("""{"inputs": ["a"], "max_new_tokens": 3}"""));
        await Check(HttpMethod.Post, "/adapters/openapi/generate", "/adapters/{task}/generate", Json("{}"));
        await Check(HttpMethod.Post, "/adapters/none-such/generate", "/adapters/{task}/generate", Json("""{"inputs": ["a"]}"""));
        await Check(HttpMethod.Post, "/adapters/openapi/generate", "/adapters/{task}/generate", new StringContent("x", Encoding.UTF8, "text/plain"));
        await Check(HttpMethod.Post, "/evaluate", "/evaluate", Json("""{"baseModel": "tiny-t5", "modules": ["lora_0"], "examples": [{"input": "a", "output": "b"}], "candidates": [[0.5]], "l1": 0.05, "maxTokens": 2048}"""));
        await Check(HttpMethod.Post, "/evaluate", "/evaluate", Json("{}"));
        await Check(HttpMethod.Post, "/evaluate", "/evaluate", new StringContent("x", Encoding.UTF8, "text/plain"));

        // Every documented operation was called, and every status code seen is documented (Check fails otherwise).
        var operations = documented.Select(d => string.Join(' ', d.Split(' ')[..2])).ToList();
        Assert.All(operations, op => Assert.Contains(exercised, e => e.StartsWith(op + " ", StringComparison.Ordinal)));
        foreach (var expected in new[] { "post /compositions 202", "post /compositions 400", "post /compositions 404", "post /compositions 413", "post /compositions 415",
                     "get /compositions/{id} 404", "get /compositions/{id} 400", "delete /compositions/{id} 409", "get /adapters/{task}/report.png 200",
                     "get /adapters/{task}/report.png 404", "post /adapters/{task}/generate 200", "post /evaluate 200", "post /evaluate 400" })
            Assert.Contains(expected, exercised);
    }

    private static JsonNode Resolve(JsonNode doc, JsonNode node)
    {
        while (node["$ref"] is { } reference)
        {
            var target = doc;
            foreach (var part in reference.GetValue<string>().TrimStart('#', '/').Split('/')) target = target[part]!;
            node = target;
        }
        return node;
    }

    /// <summary>The subset of JSON Schema the document uses: $ref, type, nullable, enum, required, properties, items.</summary>
    private static void Validate(JsonNode doc, JsonNode schema, JsonNode? value, string where)
    {
        schema = Resolve(doc, schema);
        if (value is null)
        {
            Assert.True(schema["nullable"]?.GetValue<bool>() == true || schema["type"] is null, $"{where}: null where {schema.ToJsonString()}");
            return;
        }
        switch (schema["type"]?.GetValue<string>())
        {
            case "object":
                var obj = Assert.IsType<JsonObject>(value);
                foreach (var name in schema["required"]?.AsArray().Select(r => r!.GetValue<string>()) ?? [])
                    Assert.True(obj.ContainsKey(name), $"{where}: required field \"{name}\" missing in {obj.ToJsonString()[..Math.Min(300, obj.ToJsonString().Length)]}");
                foreach (var (name, sub) in schema["properties"]?.AsObject() ?? [])
                    if (obj.TryGetPropertyValue(name, out var field)) Validate(doc, sub!, field, $"{where}.{name}");
                break;
            case "array":
                foreach (var item in Assert.IsType<JsonArray>(value)) Validate(doc, schema["items"]!, item, $"{where}[]");
                break;
            case "string":
                Assert.Equal(System.Text.Json.JsonValueKind.String, value.GetValueKind());
                if (schema["enum"] is JsonArray e) Assert.Contains(value.GetValue<string>(), e.Select(x => x!.GetValue<string>()));
                break;
            case "number":
                Assert.Equal(System.Text.Json.JsonValueKind.Number, value.GetValueKind());
                break;
            case "integer":
                Assert.Equal(System.Text.Json.JsonValueKind.Number, value.GetValueKind());
                Assert.Equal(Math.Floor(value.GetValue<double>()), value.GetValue<double>());
                break;
            case "boolean":
                Assert.Contains(value.GetValueKind(), new[] { System.Text.Json.JsonValueKind.True, System.Text.Json.JsonValueKind.False });
                break;
        }
    }
}
