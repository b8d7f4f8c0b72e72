using System.Text;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Requests;
using LoraHub.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// Request validation without a host: CompositionSpec's settings (types, ranges at their edges, defaults), its checks
/// against a real local hub, and ExampleIntake's refusals (error file, line, nothing started). Fast: no Azurite.
/// </summary>
public sealed class RequestValidationTests : IDisposable
{
    private static readonly IReadOnlyList<Example> Two = [new("a", "b"), new("c", "d")];
    private static readonly LoraHubOptions Limits = new() { MaxBudget = 100, MaxExamples = 2, MaxExamplesBytes = 200 };
    private readonly string root = Directory.CreateTempSubdirectory("lorahub-requests-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static CompositionRequest Build(string settingsJson, IReadOnlyList<Example>? examples = null, IReadOnlyCollection<string>? extra = null) =>
        CompositionSpec.Build("task", JsonNode.Parse(settingsJson)!.AsObject(), examples ?? Two, "src", "where", Limits, extra);

    private static string Refusal(string settingsJson, IReadOnlyList<Example>? examples = null)
    {
        var e = Assert.Throws<RequestException>(() => Build(settingsJson, examples));
        Assert.StartsWith("where: ", e.Message);
        Assert.Equal("where", e.File);
        Assert.Equal(400, e.Status);
        return e.Message;
    }

    [Fact]
    public void No_settings_give_the_reference_defaults()
    {
        var r = CompositionSpec.Build("task", null, Two, "examples/task.jsonl", "task.jsonl", Limits);
        Assert.Equal(("task", "", (IReadOnlyList<string>?)null, (int?)null, 40, LoraHub.Core.Optimization.Optimizers.Default, "lorahub", 0), (r.Task, r.BaseModel, r.Modules, r.Settings.K, r.Settings.Budget, r.Settings.Optimizer, r.Settings.Merge, r.Settings.Seed));
        Assert.Equal((0.05, -1.5, 1.5, 0.5, (int?)null, 4, 2048), (r.Settings.L1, r.Settings.Lower, r.Settings.Upper, r.Settings.InitialStep, r.Settings.Population, r.ChunkSize, r.Settings.MaxTokens));
        Assert.Equal("examples/task.jsonl", r.Source);
        Assert.Same(Two, r.Examples);
    }

    [Fact]
    public void Every_setting_is_read_into_the_request()
    {
        var r = Build("""
            {"base": "flan-t5", "modules": ["m1", "m0"], "budget": 100, "optimizer": "cmaes", "merge": "linear", "seed": -7,
             "l1": 0, "population": 10000, "chunk_size": 1024, "max_tokens": 2, "lower": -100, "upper": 100, "initial_step": 1e-9}
            """);
        Assert.Equal(("flan-t5", 100, "cmaes", "linear", -7), (r.BaseModel, r.Settings.Budget, r.Settings.Optimizer, r.Settings.Merge, r.Settings.Seed));
        Assert.Equal(["m1", "m0"], r.Modules); // the order given is kept
        Assert.Equal((0.0, 10000, 1024, 2, -100.0, 100.0, 1e-9), (r.Settings.L1, r.Settings.Population!.Value, r.ChunkSize, r.Settings.MaxTokens, r.Settings.Lower, r.Settings.Upper, r.Settings.InitialStep));
        Assert.Equal(1000, Build("""{"k": 1000, "l1": 1000, "initial_step": 100}""").Settings.K);
        Assert.Equal(1, Build("""{"k": 1, "budget": 1, "population": 1, "chunk_size": 1, "seed": 2147483647}""").Settings.K);
        Assert.Equal(int.MinValue, Build("""{"seed": -2147483648}""").Settings.Seed);
        Assert.Equal(3, Build("""{"k": 3.0}""").Settings.K); // a whole number written as a float is whole
    }

    [Theory]
    [InlineData("""{"k": 0}""", "k must be at least 1 (got 0)")]
    [InlineData("""{"k": 100001}""", "k must be at most 100000 (got 100001)")]
    [InlineData("""{"budget": 101}""", "budget = 101 is outside [1, 100]")]
    [InlineData("""{"budget": 0}""", "budget must be at least 1 (got 0)")]
    [InlineData("""{"population": 0}""", "population must be at least 1 (got 0)")]
    [InlineData("""{"population": 100001}""", "population must be at most 100000 (got 100001)")]
    [InlineData("""{"chunk_size": 1025}""", "chunk_size = 1025 is outside [1, 1024]")]
    [InlineData("""{"max_tokens": 1}""", "max_tokens must be at least 2 (got 1)")]
    [InlineData("""{"max_tokens": 1048577}""", "max_tokens must be at most 1048576 (got 1048577)")]
    [InlineData("""{"seed": 2147483648}""", "\"seed\" = 2147483648 is outside")]
    [InlineData("""{"l1": -0.001}""", "l1 must be at least 0 (got -0.001)")]
    [InlineData("""{"l1": 1000000.5}""", "l1 must be at most 1000000 (got 1000000.5)")]
    [InlineData("""{"lower": -100.5}""", "lower must be at least -100 (got -100.5)")]
    [InlineData("""{"upper": 100.5}""", "upper must be at most 100 (got 100.5)")]
    [InlineData("""{"initial_step": 0}""", "initial_step must be at least")]
    [InlineData("""{"initial_step": 100.5}""", "initial_step must be at most 100 (got 100.5)")]
    [InlineData("""{"k": 2.5}""", "\"k\" must be a whole number")]
    [InlineData("""{"seed": "1"}""", "\"seed\" must be a whole number")]
    [InlineData("""{"budget": [1]}""", "\"budget\" must be a whole number")]
    [InlineData("""{"l1": "0.1"}""", "\"l1\" must be a number")]
    [InlineData("""{"lower": {}}""", "\"lower\" must be a number")]
    [InlineData("""{"base": 3}""", "\"base\" must be a string")]
    [InlineData("""{"optimizer": true}""", "\"optimizer\" must be a string")]
    [InlineData("""{"modules": "m1"}""", "\"modules\" must be a list of strings")]
    [InlineData("""{"modules": ["m1", 2]}""", "\"modules\" must be a list of strings")]
    [InlineData("""{"modules": []}""", "\"modules\" is empty")]
    [InlineData("""{"modules": ["m1", "m2", "m1"]}""", "module \"m1\" is listed twice")]
    [InlineData("""{"modules": ["a/b"]}""", "module name")]
    [InlineData("""{"base": ".hidden"}""", "base model name")]
    [InlineData("""{"modules": ["m1"], "k": 1}""", "not both")]
    [InlineData("""{"merge": "ties"}""", "unknown merge 'ties' (known: lorahub, linear)")]
    [InlineData("""{"optimizer": "adam"}""", "unknown optimizer 'adam' (known: ")]
    [InlineData("""{"lower": 1, "upper": 1}""", "weight bounds [1, 1] are empty")]
    [InlineData("""{"lower": 2}""", "weight bounds [2, 1.5] are empty")]
    [InlineData("""{"colour": "red"}""", "unknown setting \"colour\" (known: base, modules, k, selection, budget")]
    public void A_bad_setting_is_refused_naming_the_key_and_the_problem(string settings, string problem)
    {
        Assert.Contains(problem, Refusal(settings));
    }

    [Fact]
    public void Extra_keys_are_accepted_only_when_the_caller_handles_them_and_are_listed_as_known()
    {
        Assert.Equal(7, Build("""{"task": "t", "budget": 7}""", extra: ["task", "examples"]).Settings.Budget);
        var e = Assert.Throws<RequestException>(() => Build("""{"taks": "t"}""", extra: ["task", "examples"]));
        Assert.Contains("unknown setting \"taks\"", e.Message);
        Assert.EndsWith("initial_step, task, examples)", e.Message);
    }

    [Fact]
    public void At_most_the_limit_of_examples_is_accepted()
    {
        Assert.Equal(2, Build("{}", Two).Examples.Count);
        Assert.Contains("3 examples (at most 2)", Refusal("{}", [.. Two, new Example("e", "f")]));
    }

    [Fact]
    public void A_settings_file_may_have_comments_and_trailing_commas_and_must_be_an_object()
    {
        var settings = CompositionSpec.ParseSettingsFile("// budget for the demo\n{\"budget\": 5, /* small */ \"k\": 2,}\n", "t.json");
        Assert.Equal(5, settings["budget"]!.GetValue<int>());

        var bad = Assert.Throws<RequestException>(() => CompositionSpec.ParseSettingsFile("{\n\"budget\": 5\n\"k\": 2}", "t.json"));
        Assert.StartsWith("t.json is not valid JSON", bad.Message);
        Assert.Equal(("t.json", 3), (bad.File, bad.Line));

        var notObject = Assert.Throws<RequestException>(() => CompositionSpec.ParseSettingsFile("[1]", "t.json"));
        Assert.Contains("t.json must hold a JSON object of settings (base, modules, k", notObject.Message);
        Assert.Equal("t.json", notObject.File);
        Assert.Null(notObject.Line);

        // A key given twice is refused, not silently read as its last value.
        var twice = Assert.Throws<RequestException>(() => CompositionSpec.ParseSettingsFile("{\"budget\": 5,\n\"budget\": 50}", "t.json"));
        Assert.StartsWith("t.json is not valid JSON", twice.Message);
        Assert.Contains("budget", twice.Message);
        Assert.Equal("t.json", twice.File);
    }

    private async Task<LocalHubStore> HubAsync(string[] models, string[] modules)
    {
        var store = new LocalHubStore(Path.Combine(root, "hub"));
        foreach (var (area, names, marker) in new[] { (HubArea.Models, models, "config.json"), (HubArea.Modules, modules, "adapter_config.json") })
        {
            foreach (var name in names)
            {
                var folder = Directory.CreateTempSubdirectory("lorahub-item-").FullName;
                await File.WriteAllTextAsync(Path.Combine(folder, marker), "{}");
                await store.PublishFolderAsync(area, name, folder, marker);
                Directory.Delete(folder, recursive: true);
            }
        }
        return store;
    }

    private static CompositionRequest Request(string? baseModel = null, IReadOnlyList<string>? modules = null, int? k = null) =>
        new() { Task = "t", BaseModel = baseModel ?? "", Modules = modules, Settings = new LoraHub.Core.Composition.CompositionSettings { K = k }, Examples = Two };

    private static async Task<string> HubRefusal(IHubStore store, CompositionRequest request)
    {
        var e = await Assert.ThrowsAsync<RequestException>(() => CompositionSpec.CheckAgainstHubAsync(request, store, "where", default));
        Assert.StartsWith("where: ", e.Message);
        Assert.Equal("where", e.File);
        return e.Message;
    }

    [Fact]
    public async Task The_hubs_only_model_is_the_default_base_and_a_named_one_must_exist()
    {
        var one = await HubAsync(["t5"], ["m0", "m1"]);
        Assert.Equal("t5", (await CompositionSpec.CheckAgainstHubAsync(Request(), one, "where", default)).BaseModel);
        Assert.Equal("t5", (await CompositionSpec.CheckAgainstHubAsync(Request("t5", k: 2), one, "where", default)).BaseModel);
        Assert.Contains("base model \"T5\" is not in the hub (models/: t5)", await HubRefusal(one, Request("T5")));
        Assert.Contains("cannot pick k = 3 modules from a pool of 2", await HubRefusal(one, Request(k: 3)));
    }

    [Fact]
    public async Task Without_a_base_the_hub_must_hold_exactly_one_model()
    {
        Assert.Contains("the hub has no base model (models/ is empty)", await HubRefusal(await HubAsync([], ["m0"]), Request()));
        Directory.Delete(Path.Combine(root, "hub"), recursive: true);
        var two = await HubAsync(["llama", "t5"], ["m0"]);
        Assert.Contains("name the base model with \"base\" (the hub has 2: llama, t5)", await HubRefusal(two, Request()));
    }

    [Fact]
    public async Task Named_modules_must_all_be_in_the_hub_and_the_message_lists_the_pool()
    {
        var names = Enumerable.Range(0, 12).Select(i => $"m{i:00}").ToArray();
        var store = await HubAsync(["t5"], names);
        var ok = await CompositionSpec.CheckAgainstHubAsync(Request(modules: ["m11", "m00"]), store, "where", default);
        Assert.Equal(["m11", "m00"], ok.Modules);
        Assert.Contains("module \"ghost\" not in the hub (modules/: m00, m01, m02, m03, m04, m05, m06, m07, m08, m09, ... (12 in all))",
            await HubRefusal(store, Request(modules: ["m00", "ghost"])));
        Assert.Contains("modules \"a\", \"b\" not in the hub", await HubRefusal(store, Request(modules: ["a", "m01", "b"])));
    }

    [Fact]
    public async Task A_pool_of_ten_is_listed_whole()
    {
        var store = await HubAsync(["t5"], Enumerable.Range(0, 10).Select(i => $"m{i}").ToArray());
        Assert.EndsWith("(modules/: m0, m1, m2, m3, m4, m5, m6, m7, m8, m9)", await HubRefusal(store, Request(modules: ["x"])));
    }

    [Fact]
    public async Task An_empty_pool_is_refused_for_random_selection()
    {
        var store = await HubAsync(["t5"], []);
        Assert.Contains("the hub has no modules (modules/ is empty)", await HubRefusal(store, Request()));
        Assert.Contains("(modules/: none)", await HubRefusal(store, Request(modules: ["m0"])));
    }

    [Fact]
    public async Task Without_a_sidecar_a_hub_problem_is_reported_against_the_examples_file()
    {
        var store = await HubAsync([], ["m0"]);
        var result = await Intake(store).FromBlobAsync(null!, "solo", Text("{\"input\": \"a\", \"output\": \"b\"}\n"));
        Assert.Contains("solo.jsonl: the hub has no base model", result.Error);
        var report = JsonNode.Parse((await store.ReadFileAsync(HubArea.Examples, "solo.error.json"))!.Content)!.AsObject();
        Assert.Equal("examples/solo.jsonl", report["file"]!.GetValue<string>());
    }

    /// <summary>Exactly at the size limit is accepted: these stop later, at the base model the request names.</summary>
    [Fact]
    public async Task Examples_of_exactly_the_size_limit_are_accepted()
    {
        var store = await HubAsync(["t5"], ["m0"]);
        var line = "{\"input\": \"a\", \"output\": \"b\"}\n";
        var atLimit = line + line + new string(' ', 140); // 200 bytes
        Assert.Equal(200, Encoding.UTF8.GetByteCount(atLimit));
        var sidecar = "{\"base\": \"t4\"}";
        await store.WriteFileAsync(HubArea.Examples, "edge.json", Encoding.UTF8.GetBytes(sidecar));
        var blob = await Intake(store).FromBlobAsync(null!, "edge", Text(atLimit));
        Assert.Contains("base model \"t4\"", blob.Error);

        await store.WriteFileAsync(HubArea.Examples, "edge.jsonl", Encoding.UTF8.GetBytes(atLimit));
        var stored = await Assert.ThrowsAsync<RequestException>(() => Intake(store).FromHttpAsync(null!,
            JsonNode.Parse("""{"task": "t", "base": "t4", "examples_blob": "edge.jsonl"}""")!.AsObject()));
        Assert.Contains("base model \"t4\"", stored.Message);

        // Inline: {"examples":[{"input":"…","output":"b"}]} is 40 bytes plus the input; 160 characters make 200.
        var inline = JsonNode.Parse($$"""{"task": "t", "base": "t4", "examples": [{"input": "{{new string('a', 160)}}", "output": "b"}]}""")!.AsObject();
        var e = await Assert.ThrowsAsync<RequestException>(() => Intake(store).FromHttpAsync(null!, inline));
        Assert.Contains("base model \"t4\"", e.Message);
    }

    private ExampleIntake Intake(IHubStore store) => new(store, new CompositionStarter(NullLogger<CompositionStarter>.Instance),
        Options.Create(Limits), NullLogger<ExampleIntake>.Instance);

    // Every case below is refused before anything is started, so no Durable client is needed (one would be used only after).
    private static Stream Text(string s) => new MemoryStream(Encoding.UTF8.GetBytes(s));

    [Fact]
    public async Task A_task_name_with_path_tricks_is_ignored_without_writing_anything()
    {
        var store = await HubAsync(["t5"], ["m0"]);
        var result = await Intake(store).FromBlobAsync(null!, "../evil", Text("{\"input\": \"a\", \"output\": \"b\"}"));
        Assert.Equal((null, false, null), (result.InstanceId, result.Started, result.ErrorFile));
        Assert.Matches(@"^examples/\.\./evil\.jsonl: not a valid task name \(.*task name.+\); the file is ignored$", result.Error);
        Assert.Empty(await store.ListAsync(HubArea.Examples));
    }

    [Theory]
    [InlineData("{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"c\"}\n", null, "bad.jsonl", 2, "no \"output\" field")]
    [InlineData("{\"input\": \"a\", \"output\": \"b\"}\n", "{\"budget\": 0}", "bad.json", null, "budget must be at least 1 (got 0)")]
    [InlineData("{\"input\": \"a\", \"output\": \"b\"}\n", "{\n\"budget\": }", "bad.json", 2, "not valid JSON")]
    [InlineData("{\"input\": \"a\", \"output\": \"b\"}\n", "{\"base\": \"missing\"}", "bad.json", null, "base model \"missing\" is not in the hub")]
    [InlineData("\n\n", null, "bad.jsonl", null, "empty")]
    public async Task A_bad_file_gets_an_error_file_naming_the_file_and_line(string examples, string? sidecar, string file, int? line, string problem)
    {
        var store = await HubAsync(["t5"], ["m0"]);
        if (sidecar is not null) await store.WriteFileAsync(HubArea.Examples, "bad.json", Encoding.UTF8.GetBytes(sidecar));
        var result = await Intake(store).FromBlobAsync(null!, "bad", Text(examples));
        Assert.Equal((null, false, "bad.error.json"), (result.InstanceId, result.Started, result.ErrorFile));
        Assert.Contains(problem, result.Error);
        var report = JsonNode.Parse((await store.ReadFileAsync(HubArea.Examples, "bad.error.json"))!.Content)!.AsObject();
        Assert.Equal(result.Error, report["error"]!.GetValue<string>());
        Assert.Equal($"examples/{file}", report["file"]!.GetValue<string>());
        Assert.Equal(line, report["line"]?.GetValue<int>());
        Assert.Equal("bad", report["task"]!.GetValue<string>());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$", report["time"]!.GetValue<string>()); // ISO 8601, round-trip
        Assert.True(DateTimeOffset.UtcNow - DateTimeOffset.Parse(report["time"]!.GetValue<string>()) < TimeSpan.FromMinutes(5));
        Assert.Contains('\n', Encoding.UTF8.GetString((await store.ReadFileAsync(HubArea.Examples, "bad.error.json"))!.Content)); // for people
    }

    [Fact]
    public async Task Oversized_or_non_UTF8_examples_are_refused_with_an_error_file()
    {
        var store = await HubAsync(["t5"], ["m0"]);
        var line = "{\"input\": \"a\", \"output\": \"b\"}\n";
        var big = await Intake(store).FromBlobAsync(null!, "big", Text(string.Concat(Enumerable.Repeat(line, 7)))); // 210 bytes > 200
        Assert.Contains("examples/big.jsonl is larger than 200 bytes", big.Error);
        var binary = await Intake(store).FromBlobAsync(null!, "bin", new MemoryStream([0x7b, 0xff, 0xfe, 0x7d]));
        Assert.Contains("bin.jsonl is not UTF-8 text", binary.Error);
        Assert.NotNull(await store.ReadFileAsync(HubArea.Examples, "bin.error.json"));
    }

    [Theory]
    [InlineData("""{"task": "t", "examples": "a.jsonl"}""", "\"examples\" must be a list", 400)]
    [InlineData("""{"task": "t", "examples_blob": 5}""", "\"examples\" must be a list", 400)]
    [InlineData("""{"task": "t", "examples": [{"input": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "output": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]}""", "larger than 200 bytes", 413)]
    [InlineData("""{"task": "t", "examples_blob": "big.jsonl"}""", "examples/big.jsonl is 300 bytes (at most 200)", 413)]
    [InlineData("""{"task": "t", "examples_blob": "lines.jsonl"}""", "lines.jsonl: line 2", 400)]
    [InlineData("""{"task": "t", "examples": [{"input": "a", "output": "b"}], "budget": 1000}""", "request body: budget = 1000 is outside", 400)]
    [InlineData("""{"task": "../t", "examples": [{"input": "a", "output": "b"}]}""", "task name", 400)]
    [InlineData("""{"task": "t", "examples": [{"input": "a"}]}""", "examples: examples[0]: no \"output\" field", 400)]
    [InlineData("""{"task": "t", "examples_blob": "../x.jsonl"}""", "request body: \"examples_blob\": ", 400)]
    public async Task A_bad_request_is_refused_with_its_status(string body, string problem, int status)
    {
        var store = await HubAsync(["t5"], ["m0"]);
        await store.WriteFileAsync(HubArea.Examples, "big.jsonl", new byte[300]);
        await store.WriteFileAsync(HubArea.Examples, "lines.jsonl", Encoding.UTF8.GetBytes("{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": 1, \"output\": \"b\"}\n"));
        var e = await Assert.ThrowsAsync<RequestException>(() => Intake(store).FromHttpAsync(null!, JsonNode.Parse(body)!.AsObject()));
        Assert.Contains(problem, e.Message);
        Assert.Equal(status, e.Status);
    }

    [Fact]
    public void Instance_ids_depend_on_task_examples_and_sidecar_only()
    {
        var a = InstanceIds.ForFiles("t", "ex"u8, "side"u8);
        Assert.Matches("^t-[0-9a-f]{16}$", a);
        Assert.Equal(a, InstanceIds.ForFiles("t", "ex"u8, "side"u8));
        Assert.NotEqual(a, InstanceIds.ForFiles("t", "ex"u8, "sidf"u8));
        Assert.NotEqual(a, InstanceIds.ForFiles("t", "exs"u8, "ide"u8)); // the separator keeps the two files apart
        Assert.NotEqual(a, InstanceIds.ForFiles("u", "ex"u8, "side"u8));
        Assert.NotEqual(a, InstanceIds.ForFiles("t", "ey"u8, "side"u8));
        // sha256("") is e3b0c44298fc1c14...
        Assert.Equal("t-e3b0c44298fc1c14", InstanceIds.ForRequest("t", []));
        Assert.True(InstanceIds.LooksValid(a));
        Assert.False(InstanceIds.LooksValid(null));
        Assert.False(InstanceIds.LooksValid("t-0123456789abcde")); // 17 characters: too short
        Assert.True(InstanceIds.LooksValid("t-0123456789abcdef"));
        Assert.True(InstanceIds.LooksValid(new string('a', 256)));
        Assert.False(InstanceIds.LooksValid(new string('a', 257)));
        Assert.False(InstanceIds.LooksValid("t-0123456789abcdef/x"));
        Assert.True(InstanceIds.LooksValid("t_x.y-0123456789abcdef"));
    }
}
