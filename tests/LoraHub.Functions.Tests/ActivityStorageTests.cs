using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Functions.Activities;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Storage;
using LoraHub.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// A blob hub of its own for the activity tests (real Azurite, no Durable host: the activities are called directly,
/// as a worker would): models/tiny-t5, modules lora_0..2, and seed_a/seed_b, two modules whose training records name
/// different A init seeds. Separate from <see cref="FunctionsHub"/> so these extra modules do not change its pool.
/// </summary>
public sealed class ActivityBlobHub : IAsyncLifetime
{
    public static readonly string[] PoolSorted = ["lora_0", "lora_1", "lora_2", "seed_a", "seed_b"];

    public AzuriteFixture Azurite { get; private set; } = null!;
    public ServiceProvider Services { get; private set; } = null!;
    public IHubStore Store => Services.GetRequiredService<IHubStore>();
    public TestFaults Faults { get; } = new();
    private readonly string cacheRoot = Directory.CreateTempSubdirectory("lorahub-activity-cache-").FullName;
    private readonly string staging = Directory.CreateTempSubdirectory("lorahub-activity-modules-").FullName;

    public async Task InitializeAsync()
    {
        Azurite = new AzuriteFixture();
        Services = FunctionsHub.BuildServices(Azurite.ConnectionString, cacheRoot, Faults);

        // Published out of name order: the pool's order is the activity's, not the upload's.
        foreach (var (name, from, seed) in new[] { ("seed_b", "lora_1", 2), ("seed_a", "lora_0", 1) })
        {
            var folder = Path.Combine(staging, name);
            Directory.CreateDirectory(folder);
            foreach (var f in Directory.GetFiles(FunctionsHub.ModuleFolder(from))) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
            await File.WriteAllTextAsync(Path.Combine(folder, "lorahub-train.json"), $$"""{"init_seed": {{seed}}}""");
            await Store.PublishFolderAsync(HubArea.Modules, name, folder, "adapter_config.json");
        }
        foreach (var m in FunctionsHub.Modules.Reverse()) await Store.PublishFolderAsync(HubArea.Modules, m, FunctionsHub.ModuleFolder(m), "adapter_config.json");
        await Store.PublishFolderAsync(HubArea.Models, FunctionsHub.BaseModel, FunctionsHub.TinyT5, "config.json");
    }

    public async Task DisposeAsync()
    {
        if (Services is not null) await Services.DisposeAsync();
        Azurite?.Dispose();
        foreach (var d in new[] { cacheRoot, staging })
            try { Directory.Delete(d, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// The four activities against a real blob hub: the pool they list, the input errors they raise (which the
/// orchestrator does not retry), the versions and warnings SelectModules reports, and what MaterializeAdapter leaves
/// in adapters/{task}/, including when another composition of the task publishes at the same time.
/// </summary>
public sealed class ActivityStorageTests(ActivityBlobHub hub) : IClassFixture<ActivityBlobHub>
{
    private static readonly string[] AdapterFiles = ["adapter_config.json", "adapter_model.safetensors", "lorahub.json", "report.png"];

    private T Activity<T>() where T : notnull => hub.Services.GetRequiredService<T>();

    // ---- ListPool

    [Fact]
    public async Task Without_named_modules_the_pool_is_every_hub_module_sorted_by_name()
    {
        Assert.Equal(ActivityBlobHub.PoolSorted, (await Activity<ListPool>().RunAsync(new ListPoolInput(null))).Names);
        // An empty list names nothing: the whole pool, as without a list.
        Assert.Equal(ActivityBlobHub.PoolSorted, (await Activity<ListPool>().RunAsync(new ListPoolInput([]))).Names);
    }

    [Fact]
    public async Task Named_modules_are_the_pool_in_the_order_given()
    {
        Assert.Equal(["seed_b", "lora_0"], (await Activity<ListPool>().RunAsync(new ListPoolInput(["seed_b", "lora_0"]))).Names);
        Assert.Equal(["lora_1"], (await Activity<ListPool>().RunAsync(new ListPoolInput(["lora_1"]))).Names);
    }

    [Fact]
    public async Task Every_named_module_missing_from_the_hub_is_named_in_one_input_error()
    {
        var e = await Assert.ThrowsAsync<CompositionInputException>(() =>
            Activity<ListPool>().RunAsync(new ListPoolInput(["lora_0", "nope", "Lora_1", "lora_2"])));
        Assert.Equal("modules not in the hub: nope, Lora_1", e.Message); // names are case-sensitive
    }

    [Fact]
    public async Task A_hub_without_modules_is_an_input_error()
    {
        var root = Directory.CreateTempSubdirectory("lorahub-empty-hub-").FullName;
        try
        {
            var pool = new ListPool(new LocalHubStore(root), new NoFaults());
            var e = await Assert.ThrowsAsync<CompositionInputException>(() => pool.RunAsync(new ListPoolInput(null)));
            Assert.Equal("the hub's module pool (modules/) is empty", e.Message);
            e = await Assert.ThrowsAsync<CompositionInputException>(() => pool.RunAsync(new ListPoolInput(["lora_0"])));
            Assert.Equal("modules not in the hub: lora_0", e.Message);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    // ---- SelectModules

    private static SelectModulesInput Select(string[] modules, int maxTokens = 2048, string merge = "lorahub", string baseModel = FunctionsHub.BaseModel) =>
        new(baseModel, modules, FunctionsHub.Examples, maxTokens, merge);

    [Fact]
    public async Task Selected_modules_come_back_in_order_with_the_hub_versions_of_model_and_modules()
    {
        var selected = await Activity<SelectModules>().RunAsync(Select(["lora_2", "lora_0"]));
        Assert.Equal(["lora_2", "lora_0"], selected.Names);
        Assert.Empty(selected.Warnings);
        Assert.NotNull(selected.Versions);
        Assert.Equal((await hub.Store.MaterializeAsync(HubArea.Models, FunctionsHub.BaseModel)).Version, selected.Versions.BaseModel);
        Assert.Equal([(await hub.Store.MaterializeAsync(HubArea.Modules, "lora_2")).Version, (await hub.Store.MaterializeAsync(HubArea.Modules, "lora_0")).Version],
            selected.Versions.Modules);
        Assert.NotEqual(selected.Versions.Modules[0], selected.Versions.Modules[1]);
        Assert.InRange(selected.LoadSeconds, 0, 120);
    }

    [Fact]
    public async Task Examples_longer_than_max_tokens_are_reported_as_Core_truncates_them()
    {
        var selected = await Activity<SelectModules>().RunAsync(Select(["lora_0"], maxTokens: 4));
        ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, ModelLoader.LoadTokenizer(FunctionsHub.TinyT5), FunctionsHub.Examples, out var expected, 4);
        Assert.NotEmpty(expected);
        Assert.Equal(expected, selected.Warnings);
        Assert.Contains("example 1: input has", selected.Warnings[0]);
        Assert.Empty((await Activity<SelectModules>().RunAsync(Select(["lora_0"], maxTokens: 2048))).Warnings);
    }

    [Fact]
    public async Task Modules_from_different_A_inits_are_warned_about_for_the_lorahub_merge_only()
    {
        var warning = Assert.Single((await Activity<SelectModules>().RunAsync(Select(["seed_a", "seed_b"]))).Warnings);
        Assert.Contains("different A initialisations (init seeds 1, 2)", warning);
        // The linear merge keeps each module's A: nothing to warn about.
        Assert.Empty((await Activity<SelectModules>().RunAsync(Select(["seed_a", "seed_b"], merge: "linear"))).Warnings);
        // One known seed (the fixture modules have no training record): nothing to compare.
        Assert.Empty((await Activity<SelectModules>().RunAsync(Select(["seed_a", "lora_0"]))).Warnings);
        // Truncation warnings come first, then the init warning.
        var both = (await Activity<SelectModules>().RunAsync(Select(["seed_b", "seed_a"], maxTokens: 4))).Warnings;
        Assert.StartsWith("example 1:", both[0]);
        Assert.Contains("init seeds 2, 1", both[^1]);
    }

    [Fact]
    public async Task A_missing_base_model_or_module_is_an_input_error_naming_it()
    {
        var model = await Assert.ThrowsAsync<CompositionInputException>(() => Activity<SelectModules>().RunAsync(Select(["lora_0"], baseModel: "no-such-model")));
        Assert.Contains("models/no-such-model is not in the hub", model.Message);
        var module = await Assert.ThrowsAsync<CompositionInputException>(() => Activity<SelectModules>().RunAsync(Select(["lora_0", "gone"])));
        Assert.Contains("modules/gone is not in the hub", module.Message);
    }

    // ---- EvaluateCandidates

    [Fact]
    public async Task Candidates_are_scored_in_order_with_the_l1_term_of_their_weights()
    {
        var input = new EvaluateCandidatesInput(FunctionsHub.BaseModel, ["lora_0", "lora_1"], FunctionsHub.Examples, [[0.0, 0.0], [1.0, -0.5]], 0.1, 2048);
        var scores = (await Activity<EvaluateCandidates>().RunAsync(input)).Scores;
        Assert.Equal(2, scores.Count);
        // w = 0 is the base model alone.
        using var model = ModelLoader.LoadSeq2Seq(FunctionsHub.TinyT5);
        var tokenized = ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, ModelLoader.LoadTokenizer(FunctionsHub.TinyT5), FunctionsHub.Examples, out _);
        Assert.InRange(Math.Abs(scores[0].Loss!.Value - Seq2Seq.ExampleLosses(model, tokenized).Average()), 0, 1e-5);
        Assert.Equal(0, scores[0].L1);
        Assert.Equal(0.1 * 0.75, scores[1].L1, 1e-12);
        Assert.Equal(scores[1].Loss!.Value + scores[1].L1, scores[1].Objective, 1e-9);
        Assert.NotEqual(scores[0].Loss, scores[1].Loss);
    }

    [Fact]
    public async Task Every_activity_asks_the_fault_injector_before_it_works()
    {
        // The hook through which the retry tests make an activity fail (ComposeOrchestratorTests): each activity
        // must call it first, before touching the hub.
        var request = FunctionsHub.Request("faulty") with { Examples = [] };
        var runs = new (string Name, Func<Task> Run)[]
        {
            (nameof(ListPool), () => Activity<ListPool>().RunAsync(new ListPoolInput(null))),
            (nameof(SelectModules), () => Activity<SelectModules>().RunAsync(Select(["lora_0"]))),
            (nameof(EvaluateCandidates), () => Activity<EvaluateCandidates>().RunAsync(
                new EvaluateCandidatesInput(FunctionsHub.BaseModel, ["lora_0"], FunctionsHub.Examples, [[0.0]], 0, 2048))),
            (nameof(MaterializeAdapter), () => Activity<MaterializeAdapter>().RunAsync(new MaterializeAdapterInput(request, ["lora_0"], [0.5],
                [new Evaluation(1, [0.5], 1, 0.025, 1.025)], [], 5, 0, 0))),
        };
        foreach (var (name, run) in runs)
        {
            hub.Faults.FailNext(name, 1);
            var e = await Assert.ThrowsAsync<IOException>(run);
            Assert.Equal($"injected fault in {name}", e.Message);
        }
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Adapters, "faulty/lorahub.json"));
    }

    // ---- MaterializeAdapter

    private static MaterializeAdapterInput Materialize(string task, double[] weights, IReadOnlyList<Evaluation> history, IReadOnlyList<string>? modules = null,
        string merge = "lorahub", bool named = true, IReadOnlyList<string>? warnings = null)
    {
        var request = FunctionsHub.Request(task, budget: history.Count, seed: 3) with { Examples = [] };
        request = request with { Modules = named ? modules ?? FunctionsHub.Modules : null, Settings = request.Settings with { Merge = merge, Selection = "loss" } };
        return new MaterializeAdapterInput(request, modules ?? FunctionsHub.Modules, weights, history, warnings ?? [], 5, 1.5, 4.0, null, 2, 0.25);
    }

    private static readonly double[] BestWeights = [0.4, -0.3, 0.2];

    /// <summary>Three evaluations; the best (the weights to merge) is the second, not the first nor the last.</summary>
    private static readonly Evaluation[] History =
    [
        new(1, [0.0, 0.0, 0.0], 2.0, 0.0, 2.0),
        new(2, BestWeights, 1.5, 0.015, 1.515),
        new(3, [0.1, 0.1, 0.1], null, 0.005, LoraHub.Core.Optimization.Optimizers.WorstValue),
    ];

    [Fact]
    public async Task The_published_adapter_holds_the_merged_weights_the_record_and_the_report()
    {
        var result = await Activity<MaterializeAdapter>().RunAsync(Materialize("publish", BestWeights, History, warnings: ["a warning"]));
        Assert.Equal("adapters/publish", result.Path);
        Assert.Equal(AdapterFiles, result.Files);
        var listed = (await hub.Store.ListAsync(HubArea.Adapters)).Select(a => a.Name);
        Assert.Contains("publish", listed);
        foreach (var f in AdapterFiles) Assert.NotNull(await hub.Store.ReadFileAsync(HubArea.Adapters, $"publish/{f}"));

        // The weights are what Core's merge of these modules with these weights writes, byte for byte.
        Assert.Equal(LocallyMerged(BestWeights, MergeMode.LoraHub), (await hub.Store.ReadFileAsync(HubArea.Adapters, "publish/adapter_model.safetensors"))!.Content);
        var config = JsonNode.Parse((await hub.Store.ReadFileAsync(HubArea.Adapters, "publish/adapter_config.json"))!.Content)!;
        Assert.Equal(FunctionsHub.BaseModel, config["base_model_name_or_path"]!.GetValue<string>());
        Assert.Equal(4, config["r"]!.GetValue<int>());
        var png = (await hub.Store.ReadFileAsync(HubArea.Adapters, "publish/report.png"))!.Content;
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);

        var record = await RecordOf("publish");
        Assert.Equal(FunctionsHub.BaseModel, record.BaseModel);
        Assert.Equal(FunctionsHub.Modules, record.Modules.Select(m => m.Name));
        Assert.Equal(FunctionsHub.Modules.Select(m => $"modules/{m}"), record.Modules.Select(m => m.Path));
        Assert.Equal(BestWeights, record.Modules.Select(m => m.Weight));
        Assert.Equal(BestWeights, record.Weights);
        Assert.Equal(new BestValue(2, 1.5, 0.015, 1.515), record.Best);
        Assert.Equal(3, record.History.Count);
        Assert.True(double.IsNaN(record.History[2].Loss), "a diverged evaluation keeps its NaN loss");
        Assert.Equal(4, record.Rank);
        Assert.Equal(("lorahub", "given", 3, 3, 5, 2), (record.Merge, record.Selection, record.Seed, record.Budget, record.Examples, record.Rounds));
        Assert.Equal(["a warning"], record.Warnings);
        Assert.Equal(new Timings(1.5, 0.25, 4.0, 3 / 4.0), record.Timings);
    }

    [Fact]
    public async Task A_pool_selection_records_its_method_and_a_linear_merge_its_concatenated_rank()
    {
        var input = Materialize("linear-pool", BestWeights, History, merge: "linear", named: false);
        await Activity<MaterializeAdapter>().RunAsync(input);
        var record = await RecordOf("linear-pool");
        Assert.Equal(("linear", "loss", 12), (record.Merge, record.Selection, record.Rank)); // rank Σ r_i of three rank-4 modules
        Assert.Equal(LocallyMerged(BestWeights, MergeMode.Linear), (await hub.Store.ReadFileAsync(HubArea.Adapters, "linear-pool/adapter_model.safetensors"))!.Content);
    }

    [Fact]
    public async Task Publishing_again_replaces_every_file_of_the_previous_composition()
    {
        await Activity<MaterializeAdapter>().RunAsync(Materialize("again", BestWeights, History));
        double[] other = [-0.2, 0.6, 0.1];
        await Activity<MaterializeAdapter>().RunAsync(Materialize("again", other, [new Evaluation(1, other, 1.2, 0.015, 1.215)]));
        Assert.Equal(other, (await RecordOf("again")).Weights);
        Assert.Equal(LocallyMerged(other, MergeMode.LoraHub), (await hub.Store.ReadFileAsync(HubArea.Adapters, "again/adapter_model.safetensors"))!.Content);
    }

    [Fact]
    public async Task A_later_composition_of_the_task_that_published_over_ours_keeps_the_adapter()
    {
        // Right after our publish another run's lorahub.json lands: that run owns adapters/{task} and checks its own
        // files, so ours is not published again over it.
        var theirs = Encoding.UTF8.GetBytes("""{"format": "lorahub.net/composition@1", "weights": [9]}""");
        var store = new InterferingStore(hub.Store, (s, attempt) => attempt == 1 ? s.WriteFileAsync(HubArea.Adapters, "owned/lorahub.json", theirs) : Task.CompletedTask);
        var log = new Warnings();
        var result = await Activity(store, log).RunAsync(Materialize("owned", BestWeights, History));
        Assert.Equal(1, store.Publishes);
        Assert.Equal(["adapters/owned was published again by another composition of the task, which owns it now"], log.Lines);
        Assert.Equal("adapters/owned", result.Path);
        Assert.Equal(theirs, (await hub.Store.ReadFileAsync(HubArea.Adapters, "owned/lorahub.json"))!.Content);
    }

    [Fact]
    public async Task A_publish_in_progress_after_ours_is_left_to_finish()
    {
        // Another composition of the task has begun publishing: its marker is not there yet and some of its files
        // are. It writes its marker last and owns the folder then, so ours is not published again over it.
        var store = new InterferingStore(hub.Store, async (s, attempt) =>
        {
            if (attempt > 1) return;
            await s.DeleteFileAsync(HubArea.Adapters, "removed/lorahub.json");
            await s.WriteFileAsync(HubArea.Adapters, "removed/report.png", [4, 5, 6]);
        });
        var log = new Warnings();
        await Activity(store, log).RunAsync(Materialize("removed", BestWeights, History));
        Assert.Equal(1, store.Publishes);
        Assert.Equal(["adapters/removed was published again by another composition of the task, which owns it now"], log.Lines);
        Assert.Null(await hub.Store.ReadFileAsync(HubArea.Adapters, "removed/lorahub.json"));
        Assert.Equal(new byte[] { 4, 5, 6 }, (await hub.Store.ReadFileAsync(HubArea.Adapters, "removed/report.png"))!.Content);
    }

    [Fact]
    public async Task A_file_deleted_by_a_concurrent_publish_is_published_again()
    {
        var store = new InterferingStore(hub.Store, (s, attempt) => attempt == 1 ? s.DeleteFileAsync(HubArea.Adapters, "deleted/report.png") : Task.CompletedTask);
        var log = new Warnings();
        await Activity(store, log).RunAsync(Materialize("deleted", BestWeights, History));
        Assert.Equal(2, store.Publishes);
        Assert.Equal(["adapters/deleted: report.png were overwritten by a concurrent publish; publishing again"], log.Lines);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, (await hub.Store.ReadFileAsync(HubArea.Adapters, "deleted/report.png"))!.Content[..4]);
    }

    [Fact]
    public async Task A_file_overwritten_on_every_publish_fails_after_three_attempts_naming_the_file()
    {
        var store = new InterferingStore(hub.Store, (s, _) => s.WriteFileAsync(HubArea.Adapters, "contested/report.png", [1, 2, 3]));
        var log = new Warnings();
        var e = await Assert.ThrowsAsync<IOException>(() => Activity(store, log).RunAsync(Materialize("contested", BestWeights, History)));
        Assert.Equal("adapters/contested: report.png kept being overwritten by another publish", e.Message);
        Assert.Equal(3, store.Publishes);
        Assert.Equal(Enumerable.Repeat("adapters/contested: report.png were overwritten by a concurrent publish; publishing again", 2), log.Lines);
    }

    [Fact]
    public async Task A_file_overwritten_once_is_published_again_and_ends_as_ours()
    {
        var store = new InterferingStore(hub.Store, (s, attempt) => attempt == 1 ? s.WriteFileAsync(HubArea.Adapters, "once/adapter_config.json", [1]) : Task.CompletedTask);
        var result = await Activity(store).RunAsync(Materialize("once", BestWeights, History));
        Assert.Equal(2, store.Publishes);
        Assert.Equal(AdapterFiles, result.Files);
        var config = JsonNode.Parse((await hub.Store.ReadFileAsync(HubArea.Adapters, "once/adapter_config.json"))!.Content)!;
        Assert.Equal(4, config["r"]!.GetValue<int>());
    }

    private MaterializeAdapter Activity(IHubStore store, ILogger<MaterializeAdapter>? log = null) =>
        new(hub.Services.GetRequiredService<EngineCache>(), store, new NoFaults(), log ?? NullLogger<MaterializeAdapter>.Instance);

    /// <summary>The warnings an activity logged, as an operator reads them.</summary>
    private sealed class Warnings : ILogger<MaterializeAdapter>
    {
        public List<string> Lines { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning) lock (Lines) Lines.Add(formatter(state, exception));
        }
    }

    private async Task<CompositionRecord> RecordOf(string task)
    {
        var file = await hub.Store.ReadFileAsync(HubArea.Adapters, $"{task}/lorahub.json");
        Assert.NotNull(file);
        return JsonSerializer.Deserialize<CompositionRecord>(file.Content, CompositionRecord.Json)!;
    }

    /// <summary>adapter_model.safetensors as Core writes it for these fixture modules and weights.</summary>
    private static byte[] LocallyMerged(double[] weights, MergeMode merge)
    {
        var folder = Directory.CreateTempSubdirectory("lorahub-expected-").FullName;
        try
        {
            using var model = ModelLoader.LoadSeq2Seq(FunctionsHub.TinyT5);
            var modules = FunctionsHub.Modules.Select(m => LoraModule.Load(FunctionsHub.ModuleFolder(m), m)).ToList();
            using (var composed = new ComposedModel(model, modules, merge))
            using (var merged = composed.Merge(weights))
                merged.Save(folder, FunctionsHub.BaseModel);
            foreach (var m in modules) m.Dispose();
            return File.ReadAllBytes(Path.Combine(folder, "adapter_model.safetensors"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>A hub store after each of whose publishes another writer acts (attempt counts from 1).</summary>
    private sealed class InterferingStore(IHubStore inner, Func<IHubStore, int, Task> after) : IHubStore
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
            await after(inner, Interlocked.Increment(ref Publishes));
        }
    }
}
