using System.Text;
using System.Text.Json.Nodes;
using LoraHub.Functions.Engine;
using LoraHub.Functions.Triggers;
using LoraHub.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>The HTTP functions called directly with DefaultHttpContext requests, as the ASP.NET Core integration calls them.</summary>
[Collection(FunctionsCollection.Name)]
public sealed class HttpApiTests(FunctionsHub hub)
{
    private CompositionsApi Compositions => hub.Services.GetRequiredService<CompositionsApi>();
    private HubApi Hub => hub.Services.GetRequiredService<HubApi>();

    internal static HttpRequest Request(string method, string path, string? body = null, string contentType = "application/json")
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("localhost", 7071);
        context.Request.Path = path;
        if (body is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Request.Body = new MemoryStream(bytes);
            context.Request.ContentLength = bytes.Length;
            context.Request.ContentType = contentType;
        }
        return context.Request;
    }

    internal static (int Status, JsonNode? Body) Read(IActionResult result)
    {
        var content = Assert.IsType<ContentResult>(result);
        return (content.StatusCode ?? 200, content.Content is { Length: > 0 } c ? JsonNode.Parse(c) : null);
    }

    private static string Body(string task, int budget = 4, string extra = "", string optimizer = "cobyla") => $$"""
        {"task": "{{task}}", "examples": [
          {"input": "Is the sky blue? yes or no", "output": "yes"},
          {"input": "Name a color: ", "output": "red"},
          {"input": "question: what is two plus two? answer:", "output": "four"}],
         "base": "tiny-t5", "k": 2, "budget": {{budget}}, "optimizer": "{{optimizer}}", "seed": 1, "l1": 0.05{{extra}}}
        """;

    [Fact]
    public async Task Post_starts_a_composition_then_get_shows_its_result_and_the_adapter_generates()
    {
        var req = Request("POST", "/api/compositions", Body("http-task"));
        var (status, body) = Read(await Compositions.Start(req, hub.Client, default));
        Assert.Equal(202, status);
        var id = body!["id"]!.GetValue<string>();
        Assert.Matches("^http-task-[0-9a-f]{16}$", id);
        Assert.True(body["started"]!.GetValue<bool>());
        Assert.Equal($"http://localhost:7071/api/compositions/{id}", body["links"]!["status"]!.GetValue<string>());
        Assert.Equal("http://localhost:7071/api/adapters/http-task", body["links"]!["adapter"]!.GetValue<string>());
        Assert.Equal($"http://localhost:7071/api/compositions/{id}", req.HttpContext.Response.Headers.Location.ToString());

        await hub.WaitAsync(id);
        var (getStatus, got) = Read(await Compositions.Get(Request("GET", $"/api/compositions/{id}"), id, hub.Client, default));
        Assert.Equal(200, getStatus);
        Assert.Equal("Completed", got!["status"]!.GetValue<string>());
        Assert.Equal(4, got["progress"]!["evaluations"]!.GetValue<int>());
        Assert.Equal(4, got["progress"]!["budget"]!.GetValue<int>());
        Assert.Equal("adapters/http-task", got["result"]!["adapter_path"]!.GetValue<string>());
        Assert.Equal(2, got["result"]!["weights"]!.AsArray().Count);

        var (adapterStatus, record) = Read(await Hub.GetAdapter(Request("GET", "/api/adapters/http-task"), "http-task", default));
        Assert.Equal(200, adapterStatus);
        Assert.Equal("tiny-t5", record!["base_model"]!.GetValue<string>());
        Assert.Equal(4, record["history"]!.AsArray().Count);

        var gen = Request("POST", "/api/adapters/http-task/generate", """{"inputs": ["Is the sky blue? yes or no", "Name a color: "], "max_new_tokens": 5}""");
        var (genStatus, generated) = Read(await Hub.Generate(gen, "http-task", default));
        Assert.Equal(200, genStatus);
        var outputs = generated!["outputs"]!.AsArray();
        Assert.Equal(2, outputs.Count);
        Assert.All(outputs, o => Assert.IsType<string>(o!.GetValue<string>()));
    }

    [Fact]
    public async Task The_same_post_twice_gives_the_same_instance_and_starts_it_once()
    {
        var (_, first) = Read(await Compositions.Start(Request("POST", "/api/compositions", Body("http-twice")), hub.Client, default));
        var (status, second) = Read(await Compositions.Start(Request("POST", "/api/compositions", Body("http-twice")), hub.Client, default));
        Assert.Equal(202, status);
        Assert.Equal(first!["id"]!.GetValue<string>(), second!["id"]!.GetValue<string>());
        Assert.True(first["started"]!.GetValue<bool>());
        Assert.False(second["started"]!.GetValue<bool>());
        var (_, other) = Read(await Compositions.Start(Request("POST", "/api/compositions", Body("http-twice", budget: 5)), hub.Client, default));
        Assert.NotEqual(first["id"]!.GetValue<string>(), other!["id"]!.GetValue<string>());
        var a = await hub.WaitAsync(first["id"]!.GetValue<string>());
        var b = await hub.WaitAsync(other["id"]!.GetValue<string>());
        Assert.Equal(OrchestrationRuntimeStatus.Completed, a.RuntimeStatus);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, b.RuntimeStatus);
    }

    [Fact]
    public async Task Post_with_an_examples_blob_reads_the_examples_from_the_hub()
    {
        await hub.Store.WriteFileAsync(HubArea.Examples, "from-blob-source.jsonl", FunctionsHub.Jsonl(FunctionsHub.Examples.Take(2)));
        var body = """{"task": "from-blob", "examples_blob": "from-blob-source.jsonl", "modules": ["lora_2"], "budget": 2}""";
        var (status, started) = Read(await Compositions.Start(Request("POST", "/api/compositions", body), hub.Client, default));
        Assert.Equal(202, status);
        var done = await hub.WaitAsync(started!["id"]!.GetValue<string>());
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        var request = done.ReadInputAs<Contracts.CompositionRequest>()!;
        Assert.Equal(2, request.Examples.Count);
        Assert.Equal("examples/from-blob-source.jsonl", request.Source);
        Assert.Equal("tiny-t5", request.BaseModel); // the hub's only model, when none is named
    }

    [Fact]
    public async Task Delete_terminates_a_running_composition()
    {
        var (_, started) = Read(await Compositions.Start(Request("POST", "/api/compositions", Body("http-long", budget: 1000, extra: ", \"chunk_size\": 1", optimizer: "random")), hub.Client, default));
        var id = started!["id"]!.GetValue<string>();
        await hub.Client.WaitForInstanceStartAsync(id);
        var (status, _) = Read(await Compositions.Terminate(Request("DELETE", $"/api/compositions/{id}"), id, hub.Client, default));
        Assert.Equal(202, status);
        var done = await hub.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Terminated, done.RuntimeStatus);
        var (again, message) = Read(await Compositions.Terminate(Request("DELETE", $"/api/compositions/{id}"), id, hub.Client, default));
        Assert.Equal(409, again);
        Assert.Contains("already ended", message!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Unknown_compositions_and_adapters_are_404_and_bad_ids_400()
    {
        Assert.Equal(404, Read(await Compositions.Get(Request("GET", "/api/compositions/x"), "nothing-0123456789abcdef", hub.Client, default)).Status);
        Assert.Equal(404, Read(await Compositions.Terminate(Request("DELETE", "/api/compositions/x"), "nothing-0123456789abcdef", hub.Client, default)).Status);
        Assert.Equal(400, Read(await Compositions.Get(Request("GET", "/api/compositions/x"), "../../etc/passwd", hub.Client, default)).Status);
        Assert.Equal(404, Read(await Hub.GetAdapter(Request("GET", "/api/adapters/none"), "none", default)).Status);
        Assert.Equal(400, Read(await Hub.GetAdapter(Request("GET", "/api/adapters/x"), "..", default)).Status);
        Assert.Equal(404, Read(await Hub.Generate(Request("POST", "/api/adapters/none/generate", """{"inputs": ["a"]}"""), "none", default)).Status);
    }

    [Fact]
    public async Task Modules_lists_the_pool_and_health_answers()
    {
        var (status, body) = Read(await Hub.ListModules(Request("GET", "/api/modules"), default));
        Assert.Equal(200, status);
        Assert.Equal(FunctionsHub.Modules, body!["modules"]!.AsArray().Select(m => m!["name"]!.GetValue<string>()));
        var (health, h) = Read(Hub.Health(Request("GET", "/api/health")));
        Assert.Equal(200, health);
        Assert.Equal("blob", h!["store"]!.GetValue<string>());
    }

    public static TheoryData<string, string, int, string> BadBodies => new()
    {
        { "not json", "application/json", 400, "not valid JSON" },
        { "", "application/json", 400, "empty" },
        { "[1, 2]", "application/json", 400, "must be a JSON object" },
        { "task=x", "application/x-www-form-urlencoded", 415, "must be JSON" },
        { """{"examples": [{"input": "a", "output": "b"}]}""", "application/json", 400, "\"task\" is missing" },
        { """{"task": "t"}""", "application/json", 400, "give the examples inline" },
        { """{"task": 5, "examples": []}""", "application/json", 400, "\"task\" must be a string" },
        { """{"task": "../t", "examples": [{"input": "a", "output": "b"}]}""", "application/json", 400, "invalid hub task name" },
        { """{"task": "t/u", "examples": [{"input": "a", "output": "b"}]}""", "application/json", 400, "path separator" },
        { """{"task": "t", "examples": [{"input": "a"}]}""", "application/json", 400, "no \"output\" field" },
        { """{"task": "t", "examples": []}""", "application/json", 400, "\"examples\" is empty" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "examples_blob": "t.jsonl"}""", "application/json", 400, "not both" },
        { """{"task": "t", "examples_blob": "../secret.jsonl"}""", "application/json", 400, "invalid hub examples file name" },
        { """{"task": "t", "examples_blob": "absent.jsonl"}""", "application/json", 404, "does not exist" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "modules": ["lora_0", "ghost"]}""", "application/json", 400, "\"ghost\" not in the hub" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "modules": ["../lora_0"]}""", "application/json", 400, "invalid hub module name" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "base": "nope"}""", "application/json", 400, "base model \"nope\" is not in the hub" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "budget": 0}""", "application/json", 400, "budget must be at least 1 (got 0)" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "budget": "many"}""", "application/json", 400, "\"budget\" must be a whole number" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "modules": ["lora_0"], "k": 1}""", "application/json", 400, "not both" },
        { """{"task": "t", "examples": [{"input": "a", "output": "b"}], "colour": "red"}""", "application/json", 400, "unknown setting \"colour\"" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task A_bad_body_is_a_4xx_with_a_message_and_starts_nothing(string body, string contentType, int expected, string message)
    {
        var before = (await hub.Client.GetAllInstancesAsync().ToListAsync()).Count;
        var (status, answer) = Read(await Compositions.Start(Request("POST", "/api/compositions", body, contentType), hub.Client, default));
        Assert.Equal(expected, status);
        Assert.Contains(message, answer!["error"]!.GetValue<string>());
        Assert.Equal(before, (await hub.Client.GetAllInstancesAsync().ToListAsync()).Count);
    }

    [Fact]
    public async Task Generate_refuses_bad_bodies()
    {
        foreach (var (body, message) in new[]
        {
            ("{}", "\"inputs\" must be a non-empty list"),
            ("""{"inputs": [1]}""", "list of strings"),
            ("""{"inputs": ["a"], "max_new_tokens": 0}""", "max_new_tokens"),
            ("nope", "not valid JSON"),
        })
        {
            var (status, answer) = Read(await Hub.Generate(Request("POST", "/api/adapters/any/generate", body), "any", default));
            Assert.Equal(400, status);
            Assert.Contains(message, answer!["error"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task The_evaluate_endpoint_and_the_remote_evaluator_score_like_the_local_engine()
    {
        var input = new Contracts.EvaluateCandidatesInput("tiny-t5", ["lora_0", "lora_1"], FunctionsHub.Examples,
            [[0.0, 0.0], [0.5, -0.25], [1.5, 1.5]], 0.05, 2048);
        var local = await hub.Services.GetRequiredService<LocalCandidateEvaluator>().EvaluateAsync(input);
        var api = hub.Services.GetRequiredService<EvaluatorApi>();
        using var http = new HttpClient(new FunctionHandler(api));
        var remote = new RemoteCandidateEvaluator(http, Microsoft.Extensions.Options.Options.Create(new LoraHubOptions { EvaluatorUrl = "http://gpu.local", EvaluatorKey = "k" }));
        var scores = await remote.EvaluateAsync(input);
        Assert.Equal(local.Scores, scores.Scores);
        Assert.Equal(3, scores.Scores.Count);
    }

    /// <summary>Routes HttpClient requests to the EvaluateCandidatesHttp function (what the GPU app serves).</summary>
    private sealed class FunctionHandler(EvaluatorApi api) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Assert.Equal("http://gpu.local/api/evaluate", request.RequestUri!.ToString());
            Assert.Equal("k", request.Headers.GetValues("x-functions-key").Single());
            var req = Request("POST", "/api/evaluate", await request.Content!.ReadAsStringAsync(ct));
            var result = Assert.IsType<ContentResult>(await api.Evaluate(req, ct));
            return new HttpResponseMessage((System.Net.HttpStatusCode)(result.StatusCode ?? 200))
            {
                Content = new StringContent(result.Content ?? "", Encoding.UTF8, "application/json"),
            };
        }
    }
}
