using System.Text;
using System.Text.Json.Nodes;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Requests;
using LoraHub.Functions.Triggers;
using LoraHub.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>The blob trigger function called directly, as the host calls it when examples/{task}.jsonl lands.</summary>
[Collection(FunctionsCollection.Name)]
public sealed class ExamplesBlobTriggerTests(FunctionsHub hub)
{
    private ExamplesBlobTrigger Trigger => new(hub.Intake);

    /// <summary>Uploads the files like a user would, then fires the trigger with the blob's content.</summary>
    private async Task DropAsync(string task, byte[] examples, string? sidecar = null)
    {
        if (sidecar is not null) await hub.Store.WriteFileAsync(HubArea.Examples, $"{task}.json", Encoding.UTF8.GetBytes(sidecar));
        await hub.Store.WriteFileAsync(HubArea.Examples, $"{task}.jsonl", examples);
        var stored = await hub.Store.ReadFileAsync(HubArea.Examples, $"{task}.jsonl");
        using var content = new MemoryStream(stored!.Content);
        await Trigger.Run(content, task, hub.Client, CancellationToken.None);
    }

    private const string SmallRun = """{"base": "tiny-t5", "modules": ["lora_1", "lora_2"], "budget": 3, "optimizer": "random", "seed": 5}""";

    [Fact]
    public async Task A_dropped_file_starts_its_composition_with_the_sidecar_settings_under_a_content_id()
    {
        var examples = FunctionsHub.Jsonl(FunctionsHub.Examples);
        await DropAsync("dropped", examples, SmallRun);
        var id = InstanceIds.ForFiles("dropped", examples, Encoding.UTF8.GetBytes(SmallRun));
        Assert.Matches("^dropped-[0-9a-f]{16}$", id);
        var done = await hub.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        var request = done.ReadInputAs<CompositionRequest>()!;
        Assert.Equal(["lora_1", "lora_2"], request.Modules);
        Assert.Equal(3, request.Settings.Budget);
        Assert.Equal("random", request.Settings.Optimizer);
        Assert.Equal(5, request.Settings.Seed);
        Assert.Equal(2, request.Settings.K);
        Assert.Equal("examples/dropped.jsonl", request.Source);
        Assert.Equal(FunctionsHub.Examples, request.Examples);
        var outcome = done.ReadOutputAs<CompositionOutcome>()!;
        Assert.Equal(3, outcome.Evaluations);
        Assert.NotNull(await hub.Store.ReadFileAsync(HubArea.Adapters, "dropped/lorahub.json"));
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Examples, "dropped.error.json"));
    }

    [Fact]
    public async Task The_same_file_twice_runs_once_and_a_changed_file_runs_again()
    {
        var examples = FunctionsHub.Jsonl(FunctionsHub.Examples);
        var first = await hub.Intake.FromBlobAsync(hub.Client, "idem", await Upload("idem", examples, SmallRun));
        var again = await hub.Intake.FromBlobAsync(hub.Client, "idem", await Upload("idem", examples, SmallRun));
        Assert.True(first.Started);
        Assert.False(again.Started);
        Assert.Equal(first.InstanceId, again.InstanceId);
        await hub.WaitAsync(first.InstanceId!);
        var afterCompletion = await hub.Intake.FromBlobAsync(hub.Client, "idem", await Upload("idem", examples, SmallRun));
        Assert.False(afterCompletion.Started);
        Assert.Equal(first.InstanceId, afterCompletion.InstanceId);

        var changed = FunctionsHub.Jsonl(FunctionsHub.Examples.Take(4));
        var second = await hub.Intake.FromBlobAsync(hub.Client, "idem", await Upload("idem", changed, SmallRun));
        Assert.True(second.Started);
        Assert.NotEqual(first.InstanceId, second.InstanceId);
        // A changed sidecar alone is a change too.
        var third = await hub.Intake.FromBlobAsync(hub.Client, "idem", await Upload("idem", changed, SmallRun.Replace("\"seed\": 5", "\"seed\": 6")));
        Assert.True(third.Started);
        Assert.NotEqual(second.InstanceId, third.InstanceId);
        foreach (var id in new[] { second.InstanceId!, third.InstanceId! })
            Assert.Equal(OrchestrationRuntimeStatus.Completed, (await hub.WaitAsync(id)).RuntimeStatus);
    }

    [Fact]
    public async Task A_failed_instance_is_started_again_when_its_content_arrives_again()
    {
        var examples = FunctionsHub.Jsonl(FunctionsHub.Examples.Take(2));
        var id = InstanceIds.ForFiles("retry-me", examples, Encoding.UTF8.GetBytes(SmallRun));
        // The same id failed before (here: a module that vanished from the hub after validation).
        var failed = await hub.RunAsync(FunctionsHub.Request("retry-me", modules: ["gone"]), id);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, failed.RuntimeStatus);

        var result = await hub.Intake.FromBlobAsync(hub.Client, "retry-me", await Upload("retry-me", examples, SmallRun));
        Assert.True(result.Started);
        Assert.Equal(id, result.InstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await hub.WaitAsync(id)).RuntimeStatus);
    }

    private async Task<Stream> Upload(string task, byte[] examples, string sidecar)
    {
        await hub.Store.WriteFileAsync(HubArea.Examples, $"{task}.json", Encoding.UTF8.GetBytes(sidecar));
        await hub.Store.WriteFileAsync(HubArea.Examples, $"{task}.jsonl", examples);
        return new MemoryStream(examples);
    }

    public static TheoryData<string, string, string?, string, int?> BadFiles => new()
    {
        // task, examples, sidecar, expected message part, expected line
        { "bad-json", "{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"c\", \"output\": \n", null, "line 2 is not valid JSON", 2 },
        { "bad-field", "{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"c\"}\n", null, "line 2: no \"output\" field", 2 },
        { "bad-empty", "", null, "empty", null },
        { "bad-blank", "\n\n  \n", null, "empty", null },
        { "bad-module", "{\"input\": \"a\", \"output\": \"b\"}\n", """{"modules": ["lora_0", "lora_9"]}""", "\"lora_9\" not in the hub", null },
        { "bad-base", "{\"input\": \"a\", \"output\": \"b\"}\n", """{"base": "flan-t5-xxl"}""", "base model \"flan-t5-xxl\" is not in the hub", null },
        { "bad-sidecar", "{\"input\": \"a\", \"output\": \"b\"}\n", "{\"budget\": 3,\n\"seed\": }", "is not valid JSON", 2 },
        { "bad-setting", "{\"input\": \"a\", \"output\": \"b\"}\n", """{"budegt": 3}""", "unknown setting \"budegt\"", null },
        { "bad-k", "{\"input\": \"a\", \"output\": \"b\"}\n", """{"k": 7}""", "k = 7", null },
        { "bad-optimizer", "{\"input\": \"a\", \"output\": \"b\"}\n", """{"optimizer": "adam"}""", "unknown optimizer 'adam'", null },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public async Task A_bad_file_gets_an_error_file_next_to_it_and_starts_nothing_deletes_nothing(string task, string examples, string? sidecar, string message, int? line)
    {
        var bytes = Encoding.UTF8.GetBytes(examples);
        await DropAsync(task, bytes, sidecar);

        var error = await hub.Store.ReadFileAsync(HubArea.Examples, $"{task}.error.json");
        Assert.NotNull(error);
        var report = JsonNode.Parse(error.Content)!;
        Assert.Contains(message, report["error"]!.GetValue<string>());
        Assert.Equal(line, report["line"]?.GetValue<int>());
        Assert.StartsWith($"examples/{task}.json", report["file"]!.GetValue<string>());
        await AssertNothingStartedOrDeleted(task, bytes, sidecar);
    }

    [Fact]
    public async Task A_file_over_the_size_limit_is_refused_without_reading_it_all()
    {
        var big = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"input\": \"" + new string('x', 1000) + "\", \"output\": \"y\"}\n", 1100)));
        Assert.True(big.Length > hub.Options.MaxExamplesBytes);
        await DropAsync("bad-big", big);
        var report = JsonNode.Parse((await hub.Store.ReadFileAsync(HubArea.Examples, "bad-big.error.json"))!.Content)!;
        Assert.Contains("larger than 1048576 bytes", report["error"]!.GetValue<string>());
        await AssertNothingStartedOrDeleted("bad-big", big, null);
    }

    [Theory]
    [InlineData("../evil")]
    [InlineData("sub/dir/task")]
    [InlineData("..")]
    [InlineData("a\\b")]
    [InlineData(".hidden")]
    [InlineData("con")]
    public async Task A_blob_name_with_path_tricks_is_ignored_without_writing_anything(string task)
    {
        var before = (await hub.Store.ListAsync(HubArea.Examples)).Select(e => e.Name).ToList();
        var examples = FunctionsHub.Jsonl(FunctionsHub.Examples);
        var result = await hub.Intake.FromBlobAsync(hub.Client, task, new MemoryStream(examples));
        Assert.Null(result.InstanceId);
        Assert.Null(result.ErrorFile);
        Assert.Contains("not a valid task name", result.Error);
        Assert.Equal(before, (await hub.Store.ListAsync(HubArea.Examples)).Select(e => e.Name).ToList());
        Assert.Null(await hub.Client.GetInstanceAsync(InstanceIds.ForFiles(task, examples, [])));
    }

    [Fact]
    public async Task Fixing_a_bad_file_starts_the_composition_and_clears_the_old_complaint()
    {
        await DropAsync("fixed", Encoding.UTF8.GetBytes("not json\n"), SmallRun);
        Assert.NotNull(await hub.Store.ReadFileAsync(HubArea.Examples, "fixed.error.json"));
        var good = FunctionsHub.Jsonl(FunctionsHub.Examples);
        await DropAsync("fixed", good, SmallRun);
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Examples, "fixed.error.json"));
        var done = await hub.WaitAsync(InstanceIds.ForFiles("fixed", good, Encoding.UTF8.GetBytes(SmallRun)));
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
    }

    [Fact]
    public async Task The_intake_honours_a_smaller_configured_size_limit()
    {
        var intake = new ExampleIntake(hub.Store, new CompositionStarter(NullLogger<CompositionStarter>.Instance),
            Options.Create(new LoraHubOptions { MaxExamplesBytes = 100 }), NullLogger<ExampleIntake>.Instance);
        var examples = FunctionsHub.Jsonl(FunctionsHub.Examples);
        await hub.Store.WriteFileAsync(HubArea.Examples, "bad-limit.jsonl", examples);
        var result = await intake.FromBlobAsync(hub.Client, "bad-limit", new MemoryStream(examples));
        Assert.Contains("larger than 100 bytes", result.Error);
        await AssertNothingStartedOrDeleted("bad-limit", examples, null);
    }

    private async Task AssertNothingStartedOrDeleted(string task, byte[] examples, string? sidecar)
    {
        var id = InstanceIds.ForFiles(task, examples, sidecar is null ? [] : Encoding.UTF8.GetBytes(sidecar));
        Assert.Null(await hub.Client.GetInstanceAsync(id));
        Assert.Equal(examples, (await hub.Store.ReadFileAsync(HubArea.Examples, $"{task}.jsonl"))?.Content);
        if (sidecar is not null) Assert.Equal(sidecar, Encoding.UTF8.GetString((await hub.Store.ReadFileAsync(HubArea.Examples, $"{task}.json"))!.Content));
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Adapters, $"{task}/lorahub.json"));
    }
}
