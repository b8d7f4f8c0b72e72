using System.Diagnostics;
using System.Text.Json;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Functions.Activities;
using LoraHub.Functions.Contracts;
using LoraHub.Storage;
using Microsoft.DurableTask.Client;
using LoraHub.Functions.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace LoraHub.Functions.Tests;

[Collection(FunctionsCollection.Name)]
public sealed class ComposeOrchestratorTests(FunctionsHub hub)
{
    [Fact]
    public async Task Composes_end_to_end_and_publishes_an_adapter_whose_loss_is_the_recorded_best()
    {
        var instance = await hub.RunAsync(FunctionsHub.Request("e2e", budget: 8), "e2e-run");
        Assert.Equal(OrchestrationRuntimeStatus.Completed, instance.RuntimeStatus);
        var outcome = instance.ReadOutputAs<CompositionOutcome>()!;
        Assert.Equal("adapters/e2e", outcome.AdapterPath);
        Assert.Equal(8, outcome.Evaluations);
        Assert.Equal(FunctionsHub.Modules, outcome.Modules);
        var status = JsonDocument.Parse(instance.SerializedCustomStatus!).RootElement;
        Assert.Equal("done", status.GetProperty("phase").GetString());
        Assert.Equal(8, status.GetProperty("evaluations").GetInt32());
        Assert.Equal(outcome.BestObjective, status.GetProperty("best_objective").GetDouble());

        // The published adapter: every file, lorahub.json last (the marker), loadable from the hub.
        var listed = (await hub.Store.ListAsync(HubArea.Adapters)).Select(a => a.Name);
        Assert.Contains("e2e", listed);
        var adapter = await hub.Store.MaterializeAsync(HubArea.Adapters, "e2e");
        foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors", "lorahub.json", "report.png" })
            Assert.True(File.Exists(Path.Combine(adapter.LocalPath, f)), $"{f} was published");
        var record = CompositionRecord.Load(Path.Combine(adapter.LocalPath, "lorahub.json"));
        Assert.Equal(8, record.History.Count);
        Assert.Equal(outcome.Weights, record.Weights);
        Assert.Equal(record.History.Min(h => h.Objective), record.Best!.Objective);
        Assert.Equal(outcome.BestObjective, record.Best.Objective);
        Assert.Equal("tiny-t5", record.BaseModel);
        Assert.Equal(FunctionsHub.Modules, record.Modules.Select(m => m.Name));
        Assert.True(record.Best.Objective < record.History[0].Objective, "the search improved on w = 0");

        // The versions seen at selection travel with every later activity (a warm worker then asks the hub nothing).
        var calls = hub.Recorder.For("e2e-run");
        var versions = JsonSerializer.Deserialize<SelectedModules>(calls.Single(c => c.Activity == nameof(SelectModules)).Output)!.Versions;
        Assert.NotNull(versions);
        Assert.Equal(FunctionsHub.Modules.Length, versions.Modules.Count);
        foreach (var (activity, input, _) in calls.Where(c => c.Activity is not (nameof(SelectModules) or nameof(ListPool))))
        {
            var pinned = activity == nameof(EvaluateCandidates)
                ? JsonSerializer.Deserialize<EvaluateCandidatesInput>(input)!.Versions
                : JsonSerializer.Deserialize<MaterializeAdapterInput>(input)!.Versions;
            Assert.Equal(versions.BaseModel, pinned?.BaseModel);
            Assert.Equal(versions.Modules, pinned?.Modules);
        }

        // Scored on its own (weight 1), the adapter gives the loss recorded as the best.
        using var model = ModelLoader.LoadSeq2Seq(FunctionsHub.TinyT5);
        using var module = LoraModule.Load(adapter.LocalPath);
        using var composed = new ComposedModel(model, [module]);
        composed.SetWeights([1.0]);
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, ModelLoader.LoadTokenizer(FunctionsHub.TinyT5), FunctionsHub.Examples, out _);
        var loss = Seq2Seq.ExampleLosses(model, tokenized).Average();
        Assert.InRange(Math.Abs(loss - record.Best.Loss), 0, 1e-4);
    }

    [Fact]
    public async Task A_linear_merge_composition_publishes_the_cat_layout_and_scores_its_recorded_loss()
    {
        var request = FunctionsHub.Request("linear-e2e", budget: 6);
        request = request with { Settings = request.Settings with { Merge = "linear" } };
        var instance = await hub.RunAsync(request, "linear-e2e-run");
        Assert.Equal(OrchestrationRuntimeStatus.Completed, instance.RuntimeStatus);
        var adapter = await hub.Store.MaterializeAsync(HubArea.Adapters, "linear-e2e");
        var record = CompositionRecord.Load(Path.Combine(adapter.LocalPath, "lorahub.json"));
        Assert.Equal("linear", record.Merge);
        using var module = LoraModule.Load(adapter.LocalPath);
        Assert.Equal(3 * 4, module.Rank); // rank Σ r_i of the three rank-4 modules
        using var model = ModelLoader.LoadSeq2Seq(FunctionsHub.TinyT5);
        using var composed = new ComposedModel(model, [module]);
        composed.SetWeights([1.0]);
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, ModelLoader.LoadTokenizer(FunctionsHub.TinyT5), FunctionsHub.Examples, out _);
        Assert.InRange(Math.Abs(Seq2Seq.ExampleLosses(model, tokenized).Average() - record.Best!.Loss), 0, 1e-5);
    }

    [Fact]
    public async Task Two_runs_of_the_same_request_give_bit_identical_weights_and_history()
    {
        var request = FunctionsHub.Request("twice", budget: 8, optimizer: "cmaes", seed: 7, k: 2);
        var first = (await hub.RunAsync(request, "twice-a")).ReadOutputAs<CompositionOutcome>()!;
        var firstRecord = await Record("twice");
        var second = (await hub.RunAsync(request, "twice-b")).ReadOutputAs<CompositionOutcome>()!;
        var secondRecord = await Record("twice");
        Assert.Equal(first.Modules, second.Modules);
        Assert.Equal(BitsOf(first.Weights), BitsOf(second.Weights));
        Assert.Equal(first.BestObjective, second.BestObjective);
        Assert.Equal(firstRecord.History.Select(h => BitsOf(h.Weights)), secondRecord.History.Select(h => BitsOf(h.Weights)));
        Assert.Equal(firstRecord.History.Select(h => h.Objective), secondRecord.History.Select(h => h.Objective));
    }

    [Fact]
    public async Task Replaying_the_orchestrator_on_its_recorded_history_asks_the_same_candidates_and_ends_the_same()
    {
        var request = FunctionsHub.Request("replay", budget: 10, optimizer: "cobyla-parallel", chunkSize: 2);
        var outcome = (await hub.RunAsync(request, "replay-run")).ReadOutputAs<CompositionOutcome>()!;
        var recorded = hub.Recorder.For("replay-run");
        Assert.Contains(recorded, c => c.Activity == nameof(EvaluateCandidates));

        // Durable replay re-runs the orchestrator code with the recorded activity results: it must schedule the very
        // same activity inputs and reach the same outcome, without any activity running.
        var replay = new ReplayContext(recorded, "replay-run");
        var replayed = await Orchestration.ComposeOrchestrator.RunAsync(replay, request);
        Assert.Equal(recorded.Count, replay.Scheduled.Count);
        Assert.Equal(recorded.Select(r => ReplayContext.Key(r.Activity, r.Input)).Order(), replay.Scheduled.Select(s => ReplayContext.Key(s.Activity, s.Input)).Order());
        Assert.Equal(JsonSerializer.Serialize(outcome), JsonSerializer.Serialize(replayed));
    }

    [Fact]
    public async Task An_activity_that_fails_once_is_retried_and_the_composition_completes()
    {
        hub.Faults.FailNext(nameof(EvaluateCandidates), 1);
        var before = hub.Faults.Thrown(nameof(EvaluateCandidates));
        var instance = await hub.RunAsync(FunctionsHub.Request("flaky", budget: 5), "flaky-run");
        Assert.Equal(OrchestrationRuntimeStatus.Completed, instance.RuntimeStatus);
        Assert.Equal(before + 1, hub.Faults.Thrown(nameof(EvaluateCandidates)));
        // COBYLA asks one point at a time: 5 evaluations, one of them attempted twice.
        Assert.Equal(6, hub.Recorder.Attempts("flaky-run", nameof(EvaluateCandidates)));
        var outcome = instance.ReadOutputAs<CompositionOutcome>()!;
        Assert.Equal(5, outcome.Evaluations);
        Assert.Equal(5, (await Record("flaky")).History.Count);
    }

    [Fact]
    public async Task A_module_missing_from_the_hub_fails_the_composition_at_once_without_retries()
    {
        var instance = await hub.RunAsync(FunctionsHub.Request("missing", modules: ["lora_0", "nope"]), "missing-run");
        Assert.Equal(OrchestrationRuntimeStatus.Failed, instance.RuntimeStatus);
        Assert.Contains("nope", instance.FailureDetails!.ErrorMessage);
        Assert.Equal(1, hub.Recorder.Attempts("missing-run", nameof(ListPool)));
        Assert.Equal(0, hub.Recorder.Attempts("missing-run", nameof(SelectModules)));
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Adapters, "missing/lorahub.json"));
    }

    [Fact]
    public async Task Twenty_concurrent_compositions_of_different_tasks_each_finish_with_their_own_result()
    {
        var requests = Enumerable.Range(0, 20).Select(i => FunctionsHub.Request($"many-{i}", budget: 3, optimizer: "random", seed: i, k: 1 + i % 3,
            examples: FunctionsHub.Examples.Skip(i % 3).ToList())).ToList();
        var watch = Stopwatch.StartNew();
        foreach (var r in requests)
            await hub.Client.ScheduleNewOrchestrationInstanceAsync(nameof(Orchestration.ComposeOrchestrator), r, new Microsoft.DurableTask.StartOrchestrationOptions($"{r.Task}-run"));
        var done = await Task.WhenAll(requests.Select(r => hub.WaitAsync($"{r.Task}-run", TimeSpan.FromSeconds(120))));
        Assert.All(done, d => Assert.Equal(OrchestrationRuntimeStatus.Completed, d.RuntimeStatus));
        for (var i = 0; i < requests.Count; i++)
        {
            var outcome = done[i].ReadOutputAs<CompositionOutcome>()!;
            Assert.Equal(requests[i].Task, outcome.Task);
            Assert.Equal(1 + i % 3, outcome.Modules.Count);
            var record = await Record(requests[i].Task);
            Assert.Equal(outcome.Weights, record.Weights);
            Assert.Equal(outcome.Modules, record.Modules.Select(m => m.Name));
            Assert.Equal(requests[i].Examples.Count, record.Examples);
            Assert.Equal(i, record.Seed);
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(90), $"20 compositions took {watch.Elapsed}");
    }

    [Fact]
    public async Task A_publish_overwritten_by_a_concurrent_one_is_detected_and_published_again()
    {
        double[] w = [0.4, -0.3, 0.2];
        var input = new MaterializeAdapterInput(FunctionsHub.Request("race") with { Examples = [] }, FunctionsHub.Modules, w,
            [new Evaluation(1, w, 1.0, 0.01, 1.01)], [], 5, 0, 1);
        // Another composition of the task uploads its adapter_model.safetensors just after ours.
        var store = new InterferingStore(hub.Store, "race/adapter_model.safetensors");
        var activity = new MaterializeAdapter(hub.Services.GetRequiredService<EngineCache>(), store, new NoFaults(), NullLogger<MaterializeAdapter>.Instance);
        await activity.RunAsync(input);
        Assert.Equal(2, store.Publishes);

        var record = await Record("race");
        Assert.Equal(w, record.Weights);
        var published = await hub.Store.ReadFileAsync(HubArea.Adapters, "race/adapter_model.safetensors");
        using var model = ModelLoader.LoadSeq2Seq(FunctionsHub.TinyT5);
        var modules = FunctionsHub.Modules.Select(m => LoraModule.Load(FunctionsHub.ModuleFolder(m), m)).ToList();
        using var temp = new TempFolder();
        using (var composed = new ComposedModel(model, modules))
        using (var merged = composed.Merge(w))
            merged.Save(temp.Path, "tiny-t5");
        foreach (var m in modules) m.Dispose();
        Assert.Equal(File.ReadAllBytes(Path.Combine(temp.Path, "adapter_model.safetensors")), published!.Content);
    }

    /// <summary>A hub store whose first publish is followed by another writer's upload of one file.</summary>
    private sealed class InterferingStore(IHubStore inner, string path) : IHubStore
    {
        public int Publishes;
        public string Kind => inner.Kind;
        public Task<IReadOnlyList<HubItem>> ListAsync(HubArea area, CancellationToken ct = default) => inner.ListAsync(area, ct);
        public Task<StoredFile?> ReadFileAsync(HubArea area, string p, CancellationToken ct = default) => inner.ReadFileAsync(area, p, ct);
        public Task<string> WriteFileAsync(HubArea area, string p, byte[] content, CancellationToken ct = default) => inner.WriteFileAsync(area, p, content, ct);
        public Task<bool> DeleteFileAsync(HubArea area, string p, CancellationToken ct = default) => inner.DeleteFileAsync(area, p, ct);
        public Task<MaterializedItem> MaterializeAsync(HubArea area, string name, CancellationToken ct = default) => inner.MaterializeAsync(area, name, ct);

        public async Task PublishFolderAsync(HubArea area, string name, string localFolder, string commitMarker, CancellationToken ct = default)
        {
            await inner.PublishFolderAsync(area, name, localFolder, commitMarker, ct);
            if (Interlocked.Increment(ref Publishes) == 1) await inner.WriteFileAsync(area, path, [1, 2, 3], ct);
        }
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("lorahub-test-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    private async Task<CompositionRecord> Record(string task)
    {
        var file = await hub.Store.ReadFileAsync(HubArea.Adapters, $"{task}/lorahub.json");
        Assert.NotNull(file);
        return JsonSerializer.Deserialize<CompositionRecord>(file.Content, CompositionRecord.Json)!;
    }

    private static long[] BitsOf(double[] values) => values.Select(BitConverter.DoubleToInt64Bits).ToArray();
}
