using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Requests;
using LoraHub.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// Starting compositions on the real Durable engine: an instance id runs once while it exists (pending, running or
/// completed) and is started afresh after a failure or a termination; an HTTP request runs under the id of its content.
/// </summary>
[Collection(FunctionsCollection.Name)]
public sealed class CompositionStartTests(FunctionsHub hub)
{
    private CompositionStarter Starter => hub.Services.GetRequiredService<CompositionStarter>();

    [Fact]
    public async Task An_instance_that_exists_is_left_alone_and_its_status_reported()
    {
        const string id = "start-once-0123456789abcdef";
        var request = FunctionsHub.Request("start-once", budget: 3, optimizer: "random", modules: ["lora_0"]);
        Assert.Equal(new StartOutcome(id, true, null), await Starter.StartAsync(hub.Client, request, id));

        var meanwhile = await Starter.StartAsync(hub.Client, request with { Settings = request.Settings with { Budget = 4 } }, id);
        Assert.Equal((id, false), (meanwhile.InstanceId, meanwhile.Started));
        Assert.NotNull(meanwhile.ExistingStatus);

        var done = await hub.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(new StartOutcome(id, false, OrchestrationRuntimeStatus.Completed), await Starter.StartAsync(hub.Client, request, id));
        // Still the first request's composition: nothing was started over it.
        Assert.Equal(3, done.ReadInputAs<CompositionRequest>()!.Settings.Budget);
        Assert.Equal(3, (await hub.Client.GetInstanceAsync(id, getInputsAndOutputs: true))!.ReadOutputAs<CompositionOutcome>()!.Evaluations);
    }

    [Fact]
    public async Task A_failed_instance_is_started_again_with_the_new_request()
    {
        const string id = "start-failed-0123456789abcdef";
        var failed = await hub.RunAsync(FunctionsHub.Request("start-failed", modules: ["gone"]), id);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, failed.RuntimeStatus);

        var request = FunctionsHub.Request("start-failed", budget: 2, optimizer: "random", modules: ["lora_2"]);
        Assert.Equal(new StartOutcome(id, true, null), await Starter.StartAsync(hub.Client, request, id));
        var done = await hub.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(["lora_2"], done.ReadInputAs<CompositionRequest>()!.Modules);
    }

    [Fact]
    public async Task A_terminated_instance_is_started_again()
    {
        const string id = "start-terminated-0123456789abcdef";
        var request = FunctionsHub.Request("start-terminated", budget: 2, optimizer: "random", modules: ["lora_1"]);
        // The first run is terminated while its last activity is in flight, at a task id the second run never reaches:
        // the in-process test host keys activities by instance and task id, so a second run that scheduled the same id
        // while the first's call was still out would wait forever (Azure Storage tells the executions apart).
        var publishing = hub.Faults.HoldNext(nameof(Activities.MaterializeAdapter));
        try
        {
            await hub.Client.ScheduleNewOrchestrationInstanceAsync(nameof(Orchestration.ComposeOrchestrator),
                request with { Settings = request.Settings with { Budget = 8 }, ChunkSize = 1 }, new Microsoft.DurableTask.StartOrchestrationOptions(id));
            await publishing.Reached.WaitAsync(TimeSpan.FromSeconds(90));
            await hub.Client.TerminateInstanceAsync(id);
            Assert.Equal(OrchestrationRuntimeStatus.Terminated, (await hub.WaitAsync(id)).RuntimeStatus);

            Assert.Equal(new StartOutcome(id, true, null), await Starter.StartAsync(hub.Client, request, id));
            var done = await hub.WaitAsync(id);
            Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
            Assert.Equal(2, done.ReadOutputAs<CompositionOutcome>()!.Evaluations);
        }
        finally
        {
            publishing.Release();
        }
    }

    [Fact]
    public async Task The_same_examples_inline_or_from_a_blob_are_one_composition_recording_where_they_came_from()
    {
        // Parsed from text, as the HTTP trigger reads a body.
        var examples = JsonSerializer.Serialize(FunctionsHub.Examples.Take(2).Select(e => new { input = e.Input, output = e.Output }));
        JsonObject Body(string extra) => JsonNode.Parse($$"""{"task": "start-http", "examples": {{examples}}, "modules": ["lora_1"], "budget": 2, "optimizer": "random"{{extra}}}""")!.AsObject();
        var inline = Body("");
        var (request, outcome) = await hub.Intake.FromHttpAsync(hub.Client, inline);
        Assert.True(outcome.Started);
        Assert.Equal("http", request.Source);
        Assert.Equal(FunctionsHub.BaseModel, request.BaseModel); // the hub's only model
        Assert.Equal(FunctionsHub.Examples.Take(2), request.Examples);
        Assert.Matches("^start-http-[0-9a-f]{16}$", outcome.InstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await hub.WaitAsync(outcome.InstanceId)).RuntimeStatus);

        await hub.Store.WriteFileAsync(HubArea.Examples, "start-http-examples.jsonl", FunctionsHub.Jsonl(FunctionsHub.Examples.Take(2)));
        var fromBlob = Body("");
        fromBlob.Remove("examples");
        fromBlob["examples_blob"] = "start-http-examples.jsonl";
        var (blobRequest, again) = await hub.Intake.FromHttpAsync(hub.Client, fromBlob);
        Assert.Equal("examples/start-http-examples.jsonl", blobRequest.Source);
        Assert.Equal(new StartOutcome(outcome.InstanceId, false, OrchestrationRuntimeStatus.Completed), again);

        // Any change of the settings is another composition.
        var (_, other) = await hub.Intake.FromHttpAsync(hub.Client, Body(", \"seed\": 1"));
        Assert.True(other.Started);
        Assert.NotEqual(outcome.InstanceId, other.InstanceId);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await hub.WaitAsync(other.InstanceId)).RuntimeStatus);
    }

    [Fact]
    public async Task A_dropped_file_that_starts_reports_no_error_and_clears_the_old_one()
    {
        await hub.Store.WriteFileAsync(HubArea.Examples, "start-drop.error.json", "{}"u8.ToArray());
        await hub.Store.WriteFileAsync(HubArea.Examples, "start-drop.json", """{"modules": ["lora_0"], "budget": 2, "optimizer": "random"}"""u8.ToArray());
        var examples = FunctionsHub.Jsonl(FunctionsHub.Examples.Take(3));
        var result = await hub.Intake.FromBlobAsync(hub.Client, "start-drop", new MemoryStream(examples));
        Assert.Equal((true, null, null), (result.Started, result.Error, result.ErrorFile));
        Assert.Equal(InstanceIds.ForFiles("start-drop", examples, """{"modules": ["lora_0"], "budget": 2, "optimizer": "random"}"""u8), result.InstanceId);
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Examples, "start-drop.error.json"));
        var done = await hub.WaitAsync(result.InstanceId!);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(("examples/start-drop.jsonl", 3), (done.ReadInputAs<CompositionRequest>()!.Source, done.ReadInputAs<CompositionRequest>()!.Examples.Count));
    }
}
