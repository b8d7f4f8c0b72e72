using System.Diagnostics;
using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Functions;
using LoraHub.Functions.Activities;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Functions.Orchestration;
using LoraHub.Storage;
using LoraHub.Testing;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace LoraHub.Bench;

/// <summary>
/// durable-overhead: one composition (a hub of K = 20 rank-16 modules on a small random T5, 5 examples, K = 20
/// selected at random with seed 0, the default optimizer, budget 40) run by the Functions app, i.e. the real
/// ComposeOrchestrator and activities in Microsoft.DurableTask.InProcessTestHost with the app's own services, divided
/// by the same composition run in process the way `lorahub compose` runs it (load the model and the modules from
/// folders, Composer, report.png, write the adapter folder). Target: at most 1.5.
/// The Functions side runs on a local-folder hub (orchestration overhead alone) and on a blob hub in Azurite (the
/// store the app uses in Azure); cold = a fresh worker (new services: empty engine cache, empty download cache),
/// warm = the same worker again (model and modules cached). Both sides must produce the same weights and adapter.
/// </summary>
public static class DurableOverhead
{
    private const string BaseName = "bench-t5";
    private const int K = 20;
    private const int Budget = 40;
    private const int Seed = 0;
    private const double Target = 1.5;
    // Small enough that a composition of 40 evaluations takes seconds on 2 cores; the real tokenizer's vocabulary.
    private const int DModel = 256, Layers = 4;
    private static readonly System.Text.Json.Nodes.JsonObject Geometry = BenchWorld.T5Config(dModel: DModel, layers: Layers, heads: 4);

    public static async Task<int> RunAsync(int rounds)
    {
        Console.WriteLine($"torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset)"}");
        // The Durable test host's sidecar logs every gRPC call at Information; keep the output to the numbers.
        Environment.SetEnvironmentVariable("Logging__LogLevel__Default", "Warning");
        // Its Kestrel warns of a late heartbeat whenever the shared machine is busy: noise here, not a result.
        Environment.SetEnvironmentVariable("Logging__LogLevel__Microsoft.AspNetCore", "Error");
        using var dir = new BenchWorld.TempFolder();
        var hub = Path.Combine(dir.Path, "hub");
        var examplesFile = BuildWorld(hub, dir.Path);
        var examples = ExampleFile.Load(examplesFile);

        var cli = new CliPath(Path.Combine(hub, "models", BaseName), Path.Combine(hub, "modules"), examplesFile, Path.Combine(dir.Path, "cli-out"));
        await using var functions = await FunctionsPath.StartAsync(examples);

        var stores = new List<(string Name, string Location)> { ("local", hub) };
        AzuriteFixture? azurite = null;
        try
        {
            azurite = new AzuriteFixture();
            var setup = HubStoreFactory.Create(azurite.ConnectionString, Path.Combine(dir.Path, "setup-cache"));
            await setup.PublishFolderAsync(HubArea.Models, BaseName, Path.Combine(hub, "models", BaseName), "config.json");
            foreach (var module in Directory.GetDirectories(Path.Combine(hub, "modules")).Order(StringComparer.Ordinal))
                await setup.PublishFolderAsync(HubArea.Modules, Path.GetFileName(module), module, "adapter_config.json");
            stores.Add(("blob", azurite.ConnectionString));
        }
        catch (Exception e)
        {
            Console.WriteLine($"durable-overhead: Azurite could not start ({e.Message.Split('\n')[0]}); the blob hub is left out, local folder only");
            azurite?.Dispose();
            azurite = null;
        }

        try
        {
            var checks = new List<string>();
            void Check(CliRun reference, DurableRun run, string what)
            {
                if (Compare(reference, run) is { } problem) throw new MismatchException($"{what}: {problem}");
                checks.Add(what);
            }

            // Warm-up (JIT, torch, gRPC, the blob client): one of each, not timed.
            var reference = cli.Run();
            foreach (var (name, location) in stores)
            {
                await using var worker = functions.NewWorker(location, dir.Path);
                Check(reference, await functions.RunAsync(worker, $"warmup-{name}"), $"warm-up on the {name} hub");
            }

            var cliTimes = new List<CliRun>();
            var durable = stores.ToDictionary(s => s.Name, _ => (Cold: new List<DurableRun>(), Warm: new List<DurableRun>()));
            for (var r = 0; r < rounds; r++)
            {
                // Interleaved, and the CLI first or last in turn, so a noisy neighbour slows every side alike.
                if (r % 2 == 0) cliTimes.Add(cli.Run());
                foreach (var (name, location) in stores)
                {
                    await using var worker = functions.NewWorker(location, dir.Path);
                    var cold = await functions.RunAsync(worker, $"r{r}-{name}-cold");
                    var warm = await functions.RunAsync(worker, $"r{r}-{name}-warm");
                    Check(reference, cold, $"round {r + 1} {name} cold");
                    Check(reference, warm, $"round {r + 1} {name} warm");
                    durable[name].Cold.Add(cold);
                    durable[name].Warm.Add(warm);
                }
                if (r % 2 == 1) cliTimes.Add(cli.Run());
            }
            foreach (var c in cliTimes) Check(c, durable["local"].Warm[0], "every CLI run");

            var cliMs = Median(cliTimes.Select(c => c.TotalMs));
            Console.WriteLine($"durable-overhead: toy hub: T5 d_model {DModel}, {Layers} + {Layers} layers, {K} rank-16 modules on every q and v, 5 examples ({examples.Average(e => e.Input.Length):F0} input chars), K = {K}, {reference.Optimizer}, budget {Budget}, seed {Seed}");
            Console.WriteLine($"durable-overhead: CLI in-process {cliMs:F0} ms, CPU {Median(cliTimes.Select(c => c.CpuMs)):F0} ms (load model {Median(cliTimes.Select(c => c.LoadModelMs)):F0}, load modules {Median(cliTimes.Select(c => c.LoadModulesMs)):F0}, search {Median(cliTimes.Select(c => c.SearchMs)):F0}, merge + write {Median(cliTimes.Select(c => c.WriteMs)):F0}; medians of {rounds})");
            foreach (var (name, _) in stores)
            {
                foreach (var (kind, runs) in new[] { ("cold", durable[name].Cold), ("warm", durable[name].Warm) })
                {
                    var ms = Median(runs.Select(d => d.TotalMs));
                    Console.WriteLine($"durable-overhead: Durable, {name} hub, {kind}: {ms:F0} ms, CPU {Median(runs.Select(d => d.CpuMs)):F0} ms (select {Median(runs.Select(d => d.SelectMs)):F0}, evaluate {Median(runs.Select(d => d.EvaluateMs)):F0} in {runs[0].EvaluateActivities} activities, materialize {Median(runs.Select(d => d.MaterializeMs)):F0}, orchestration outside activities {Median(runs.Select(d => d.OutsideMs)):F0}; {Median(runs.Select(d => (double)d.HubCalls)):F0} hub store calls, {Median(runs.Select(d => (double)d.ModelLoads)):F0} model loads)");
                }
            }
            foreach (var (name, _) in stores)
            {
                foreach (var (kind, runs) in new[] { ("cold", durable[name].Cold), ("warm", durable[name].Warm) })
                {
                    var ratio = Median(runs.Select(d => d.TotalMs)) / cliMs;
                    var cpuRatio = Median(runs.Select(d => d.CpuMs)) / Median(cliTimes.Select(c => c.CpuMs));
                    Console.WriteLine($"durable-overhead ratio (Durable {name} hub {kind} / CLI): {ratio:F3}  (target <= {Target}) {(ratio <= Target ? "PASS" : "MISS")}; CPU time {cpuRatio:F3}");
                }
            }
            Console.WriteLine($"durable-overhead: same composition on both paths: yes ({checks.Count} checks: the same {K} modules in the same order, bit-identical weights and best objective, byte-identical adapter_model.safetensors)");
            return 0;
        }
        catch (MismatchException e)
        {
            Console.WriteLine($"durable-overhead: same composition on both paths: NO: {e.Message}");
            Console.Error.WriteLine("durable-overhead: FAILED: the Functions app and the CLI composed different adapters from the same task, seed and settings");
            return 1;
        }
        finally
        {
            azurite?.Dispose();
        }
    }

    /// <summary>The local hub (models/bench-t5, modules/m00..m19) and the examples file; returns its path.</summary>
    private static string BuildWorld(string hub, string root)
    {
        using (var model = BenchWorld.RandomT5(Path.Combine(hub, "models", BaseName), Geometry))
        {
            var targets = BenchWorld.AttentionQv(model);
            foreach (var i in Enumerable.Range(0, K)) BenchWorld.RandomModule(hub, i, model, targets).Dispose();
        }
        var rng = new Random(11);
        string Words(int n) => string.Join(' ', Enumerable.Range(0, n).Select(_ => $"w{rng.Next(1000)}"));
        // About 100 input tokens and 10 label tokens each with the real T5 tokenizer (as composition-overhead).
        var lines = Enumerable.Range(0, 5).Select(_ => System.Text.Json.JsonSerializer.Serialize(new { input = Words(34), output = Words(3) }));
        var path = Path.Combine(root, "examples.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    private static string? Compare(CliRun cli, DurableRun durable)
    {
        if (!cli.Modules.SequenceEqual(durable.Modules)) return $"modules [{string.Join(", ", durable.Modules)}] vs [{string.Join(", ", cli.Modules)}]";
        if (!cli.Weights.AsSpan().SequenceEqual(durable.Weights)) return $"weights [{string.Join(", ", durable.Weights)}] vs [{string.Join(", ", cli.Weights)}]";
        if (cli.BestObjective != durable.BestObjective) return $"best objective {durable.BestObjective:R} vs {cli.BestObjective:R}";
        if (!cli.Adapter.AsSpan().SequenceEqual(durable.Adapter)) return "adapter_model.safetensors differs";
        return null;
    }

    private sealed class MismatchException(string message) : Exception(message);

    /// <summary>CPU time of this process (all threads): less sensitive to busy neighbours than wall time.</summary>
    private static double CpuMs() => Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;

    private static double Median(IEnumerable<double> xs) => BenchWorld.Median(xs.ToList());

    private sealed record CliRun(double TotalMs, double CpuMs, double LoadModelMs, double LoadModulesMs, double SearchMs, double WriteMs,
        string Optimizer, IReadOnlyList<string> Modules, double[] Weights, double BestObjective, byte[] Adapter);

    private sealed record DurableRun(double TotalMs, double CpuMs, double SelectMs, double EvaluateMs, int EvaluateActivities, double MaterializeMs,
        double OutsideMs, int HubCalls, int ModelLoads, IReadOnlyList<string> Modules, double[] Weights, double BestObjective, byte[] Adapter);

    /// <summary>What `lorahub compose --base B --modules P --examples E --out O --select 20 --seed 0 --force` does in process.</summary>
    private sealed class CliPath(string baseDir, string modulesDir, string examplesFile, string outDir)
    {
        public CliRun Run()
        {
            var cpu = CpuMs();
            var clock = Stopwatch.StartNew();
            var pool = ModuleRef.Scan(modulesDir);
            var set = ExampleFile.Load(examplesFile);
            var settings = new CompositionSettings { Budget = Budget, K = K, Seed = Seed };
            settings.Validate(pool.Count);
            using var model = ModelLoader.Load(baseDir);
            var tokenizer = ModelLoader.LoadTokenizer(baseDir);
            var loadModel = clock.Elapsed.TotalMilliseconds;
            using var result = new Composer(model, tokenizer).Compose(pool, set, settings, Path.GetFileName(baseDir));
            var composed = clock.Elapsed.TotalMilliseconds;
            var png = Report.RenderPng(result.Record.History.Select(h => h.Objective).ToList(),
                result.Record.Modules.Select(m => m.Name).ToList(), result.Record.Weights, Path.GetFileNameWithoutExtension(examplesFile));
            CompositionOutput.Write(outDir, result, force: true, png);
            var total = clock.Elapsed.TotalMilliseconds;
            cpu = CpuMs() - cpu;
            var t = result.Record.Timings!;
            return new CliRun(total, cpu, loadModel, t.LoadSeconds * 1000, t.SearchSeconds * 1000, total - composed, settings.Optimizer,
                result.Record.Modules.Select(m => m.Name).ToList(), result.Record.Weights, result.Record.Best!.Objective,
                File.ReadAllBytes(Path.Combine(outDir, "adapter_model.safetensors")));
        }
    }

    /// <summary>
    /// The Functions side: one Durable in-process host (started once, like a running Functions host) whose
    /// orchestrator and activities are the app's; activities resolve their services from the current worker.
    /// </summary>
    private sealed class FunctionsPath : IAsyncDisposable
    {
        private readonly IReadOnlyList<Example> examples;
        private readonly ActivityClock clock = new();
        private readonly ILoggerFactory loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Warning)); // lives as long as the host
        private DurableTaskTestHost host = null!;
        private Worker? current;

        private FunctionsPath(IReadOnlyList<Example> examples) => this.examples = examples;

        public static async Task<FunctionsPath> StartAsync(IReadOnlyList<Example> examples)
        {
            var path = new FunctionsPath(examples);
            path.host = await DurableTaskTestHost.StartAsync(path.Register, new DurableTaskTestHostOptions { LoggerFactory = path.loggers });
            return path;
        }

        private void Register(DurableTaskRegistry registry)
        {
            registry.AddOrchestratorFunc<CompositionRequest, CompositionOutcome>(nameof(ComposeOrchestrator), ComposeOrchestrator.RunAsync);
            registry.AddActivityFunc<ListPoolInput, ModulePool>(nameof(ListPool),
                (_, input) => clock.Time(nameof(ListPool), () => Services.GetRequiredService<ListPool>().RunAsync(input)));
            registry.AddActivityFunc<SelectModulesInput, SelectedModules>(nameof(SelectModules),
                (_, input) => clock.Time(nameof(SelectModules), () => Services.GetRequiredService<SelectModules>().RunAsync(input)));
            registry.AddActivityFunc<EvaluateCandidatesInput, CandidateScores>(nameof(EvaluateCandidates),
                (_, input) => clock.Time(nameof(EvaluateCandidates), () => Services.GetRequiredService<EvaluateCandidates>().RunAsync(input)));
            registry.AddActivityFunc<MaterializeAdapterInput, MaterializedAdapter>(nameof(MaterializeAdapter),
                (_, input) => clock.Time(nameof(MaterializeAdapter), () => Services.GetRequiredService<MaterializeAdapter>().RunAsync(input)));
        }

        private IServiceProvider Services => (current ?? throw new InvalidOperationException("no worker")).Services;

        /// <summary>A fresh worker process on a hub: the app's services with an empty download cache under root.</summary>
        public Worker NewWorker(string storage, string root)
        {
            var cache = Directory.CreateDirectory(Path.Combine(root, $"worker-cache-{Guid.NewGuid():N}")).FullName;
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["LoraHub:Storage"] = storage,
                ["LoraHub:CacheRoot"] = cache,
            }).Build();
            var services = new ServiceCollection();
            services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
            // The store AddLoraHub would make (HubStoreFactory on LoraHub:Storage), counted: it takes the place of AddLoraHub's TryAdd.
            var store = new CountingStore(HubStoreFactory.Create(storage, cache));
            services.AddSingleton<IHubStore>(store);
            services.AddLoraHub(configuration);
            var worker = new Worker(services.BuildServiceProvider(), cache, store);
            current = worker;
            return worker;
        }

        /// <summary>One composition, from scheduling to completion, as a client of the task hub sees it.</summary>
        public async Task<DurableRun> RunAsync(Worker worker, string task)
        {
            var request = new CompositionRequest
            {
                Task = task,
                BaseModel = BaseName,
                Settings = new CompositionSettings { K = K, Budget = Budget, Seed = Seed },
                Examples = examples,
                Source = "bench",
            };
            clock.Reset();
            var calls = worker.Store.Calls;
            var engine = worker.Services.GetRequiredService<EngineCache>();
            var loads = engine.ModelLoads;
            var cpu = CpuMs();
            var sw = Stopwatch.StartNew();
            var id = await host.Client.ScheduleNewOrchestrationInstanceAsync(nameof(ComposeOrchestrator), request, new StartOrchestrationOptions(task));
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            var done = await host.Client.WaitForInstanceCompletionAsync(id, getInputsAndOutputs: true, cts.Token);
            var total = sw.Elapsed.TotalMilliseconds;
            cpu = CpuMs() - cpu;
            calls = worker.Store.Calls - calls;
            loads = engine.ModelLoads - loads;
            if (done.RuntimeStatus != OrchestrationRuntimeStatus.Completed)
                throw new InvalidOperationException($"durable-overhead: composition {task} ended {done.RuntimeStatus}: {done.FailureDetails?.ErrorMessage}");
            var outcome = done.ReadOutputAs<CompositionOutcome>()!;
            var store = worker.Services.GetRequiredService<IHubStore>();
            var adapter = await store.ReadFileAsync(HubArea.Adapters, $"{task}/adapter_model.safetensors")
                ?? throw new InvalidOperationException($"durable-overhead: adapters/{task} has no adapter_model.safetensors");
            var (select, evaluate, evaluations, materialize, busy) = clock.Read();
            return new DurableRun(total, cpu, select, evaluate, evaluations, materialize, total - busy, calls, loads,
                outcome.Modules, outcome.Weights, outcome.BestObjective, adapter.Content);
        }

        public async ValueTask DisposeAsync()
        {
            await host.DisposeAsync();
            loggers.Dispose();
        }
    }

    /// <summary>A worker's services and download cache; disposing it unloads its models (EngineCache) and deletes the cache.</summary>
    private sealed class Worker(ServiceProvider services, string cacheRoot, CountingStore store) : IAsyncDisposable
    {
        public ServiceProvider Services { get; } = services;
        public CountingStore Store { get; } = store;

        public async ValueTask DisposeAsync()
        {
            await Services.DisposeAsync();
            try { Directory.Delete(cacheRoot, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Counts the hub requests the app makes (each one a round trip on blob storage).</summary>
    private sealed class CountingStore(IHubStore inner) : IHubStore
    {
        private int calls;
        public int Calls => Volatile.Read(ref calls);
        public string Kind => inner.Kind;
        private T Count<T>(T result)
        {
            Interlocked.Increment(ref calls);
            return result;
        }
        public Task<IReadOnlyList<HubItem>> ListAsync(HubArea area, CancellationToken ct = default) => Count(inner.ListAsync(area, ct));
        public Task<StoredFile?> ReadFileAsync(HubArea area, string path, CancellationToken ct = default) => Count(inner.ReadFileAsync(area, path, ct));
        public Task<string> WriteFileAsync(HubArea area, string path, byte[] content, CancellationToken ct = default) => Count(inner.WriteFileAsync(area, path, content, ct));
        public Task<bool> DeleteFileAsync(HubArea area, string path, CancellationToken ct = default) => Count(inner.DeleteFileAsync(area, path, ct));
        public Task<MaterializedItem> MaterializeAsync(HubArea area, string name, CancellationToken ct = default) => Count(inner.MaterializeAsync(area, name, ct));
        public Task PublishFolderAsync(HubArea area, string name, string localFolder, string commitMarker, CancellationToken ct = default) =>
            Count(inner.PublishFolderAsync(area, name, localFolder, commitMarker, ct));
    }

    /// <summary>
    /// Time spent in activities: per activity (select and materialize run alone) and the wall time during which at
    /// least one activity ran (EvaluateCandidates of one batch run side by side but take the model's lock in turn).
    /// </summary>
    private sealed class ActivityClock
    {
        private readonly object gate = new();
        private readonly Stopwatch wall = Stopwatch.StartNew();
        private readonly Dictionary<string, double> spent = [];
        private int evaluations;
        private int running;
        private double busySince;
        private double busy;

        public void Reset()
        {
            lock (gate)
            {
                spent.Clear();
                evaluations = 0;
                running = 0;
                busy = 0;
            }
        }

        public async Task<T> Time<T>(string activity, Func<Task<T>> run)
        {
            double start;
            lock (gate)
            {
                start = wall.Elapsed.TotalMilliseconds;
                if (running++ == 0) busySince = start;
                if (activity == nameof(EvaluateCandidates)) evaluations++;
            }
            try
            {
                return await run();
            }
            finally
            {
                lock (gate)
                {
                    var end = wall.Elapsed.TotalMilliseconds;
                    spent[activity] = spent.GetValueOrDefault(activity) + end - start;
                    if (--running == 0) busy += end - busySince;
                }
            }
        }

        public (double Select, double Evaluate, int Evaluations, double Materialize, double Busy) Read()
        {
            lock (gate)
            {
                var select = spent.GetValueOrDefault(nameof(SelectModules));
                var materialize = spent.GetValueOrDefault(nameof(MaterializeAdapter));
                return (select, busy - select - materialize, evaluations, materialize, busy);
            }
        }
    }
}
