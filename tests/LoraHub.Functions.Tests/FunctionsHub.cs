using System.Text;
using System.Text.Json;
using LoraHub.Core.Composition;
using LoraHub.Functions.Activities;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Functions.Orchestration;
using LoraHub.Functions.Requests;
using LoraHub.Storage;
using LoraHub.Testing;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// The Functions app in-process against real Azurite: a tiny hub (models/tiny-t5, modules/lora_0..2) uploaded
/// through the hub store, the app's own services (LoraHubServices.AddLoraHub), and a Durable in-process test host
/// running the real ComposeOrchestrator and the real activities resolved from those services.
/// </summary>
public class FunctionsHub : IAsyncLifetime
{
    public const string BaseModel = "tiny-t5";
    public static readonly string[] Modules = ["lora_0", "lora_1", "lora_2"];

    public AzuriteFixture Azurite { get; private set; } = null!;
    public ServiceProvider Services { get; private set; } = null!;
    public DurableTaskTestHost Durable { get; private set; } = null!;
    public IHubStore Store => Services.GetRequiredService<IHubStore>();
    public DurableTaskClient Client => Durable.Client;
    public TestFaults Faults { get; } = new();
    /// <summary>Every activity call the test host ran: (instance id, activity, input JSON, output JSON).</summary>
    public ActivityRecorder Recorder { get; } = new();
    /// <summary>The LoraHub.Composition log lines of the orchestrations (CompositionTelemetry).</summary>
    public CapturedLogs Logs { get; } = new();
    public string CacheRoot { get; } = Directory.CreateTempSubdirectory("lorahub-functions-cache-").FullName;

    public static string FixturesRoot => Path.Combine(AppContext.BaseDirectory, "fixtures", "t5");
    public static string TinyT5 => Path.Combine(FixturesRoot, "tiny-t5");
    public static string ModuleFolder(string name) => Path.Combine(FixturesRoot, "adapters", name);

    public static readonly IReadOnlyList<Example> Examples =
    [
        new("translate English to German: The house is wonderful.", "Das Haus ist wunderbar."),
        new("summarize: the cat sat on the mat all day long", "cat sat on mat"),
        new("question: what is two plus two? answer:", "four"),
        new("Is the sky blue? yes or no", "yes"),
        new("Name a color: ", "red"),
    ];

    /// <summary>The app's services (AddLoraHub) on a test storage account and cache folder, with the test's fault injector.</summary>
    internal static ServiceProvider BuildServices(string storage, string cacheRoot, IFaultInjector faults)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["LoraHub:Storage"] = storage,
            ["LoraHub:CacheRoot"] = cacheRoot,
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(faults);
        services.AddLoraHub(configuration);
        return services.BuildServiceProvider();
    }

    public async Task InitializeAsync()
    {
        // The Durable test host's sidecar logs every gRPC call at Information to the console; keep the test output readable.
        Environment.SetEnvironmentVariable("Logging__LogLevel__Default", "Warning");
        Azurite = new AzuriteFixture();
        Services = BuildServices(Azurite.ConnectionString, CacheRoot, Faults);

        await PublishHubAsync();
        // The composition's telemetry lines are captured (Logs); other categories print warnings only.
        Durable = await DurableTaskTestHost.StartAsync(Register, new DurableTaskTestHostOptions { LoggerFactory = Logs.Factory });
    }

    /// <summary>Uploads the hub the tests compose on: the base model and its modules.</summary>
    protected virtual async Task PublishHubAsync()
    {
        await Store.PublishFolderAsync(HubArea.Models, BaseModel, TinyT5, "config.json");
        foreach (var m in Modules) await Store.PublishFolderAsync(HubArea.Modules, m, ModuleFolder(m), "adapter_config.json");
    }

    /// <summary>The orchestrator and the activities, as the Functions host would run them.</summary>
    public void Register(DurableTaskRegistry registry)
    {
        registry.AddOrchestratorFunc<CompositionRequest, CompositionOutcome>(nameof(ComposeOrchestrator), ComposeOrchestrator.RunAsync);
        registry.AddActivityFunc<ListPoolInput, ModulePool>(nameof(ListPool),
            (ctx, input) => Recorder.Record(ctx, input, () => Services.GetRequiredService<ListPool>().RunAsync(input)));
        registry.AddActivityFunc<SelectModulesInput, SelectedModules>(nameof(SelectModules),
            (ctx, input) => Recorder.Record(ctx, input, () => Services.GetRequiredService<SelectModules>().RunAsync(input)));
        registry.AddActivityFunc<EvaluateCandidatesInput, CandidateScores>(nameof(EvaluateCandidates),
            (ctx, input) => Recorder.Record(ctx, input, () => Services.GetRequiredService<EvaluateCandidates>().RunAsync(input)));
        registry.AddActivityFunc<MaterializeAdapterInput, MaterializedAdapter>(nameof(MaterializeAdapter),
            (ctx, input) => Recorder.Record(ctx, input, () => Services.GetRequiredService<MaterializeAdapter>().RunAsync(input)));
    }

    public async Task DisposeAsync()
    {
        if (Durable is not null) await Durable.DisposeAsync();
        if (Services is not null) await Services.DisposeAsync();
        Azurite?.Dispose();
        Logs.Factory.Dispose();
        try { Directory.Delete(CacheRoot, recursive: true); } catch (IOException) { }
    }

    public ExampleIntake Intake => Services.GetRequiredService<ExampleIntake>();
    public LoraHubOptions Options => Services.GetRequiredService<IOptions<LoraHubOptions>>().Value;

    /// <summary>A composition request on the tiny hub (the triggers build the same from files and bodies).</summary>
    public static CompositionRequest Request(string task, int budget = 8, string optimizer = "cobyla", int seed = 0,
        IReadOnlyList<string>? modules = null, int? k = null, IReadOnlyList<Example>? examples = null, int chunkSize = 4) => new()
    {
        Task = task,
        BaseModel = BaseModel,
        Modules = modules ?? (k is null ? Modules : null),
        Settings = new CompositionSettings { K = k, Budget = budget, Optimizer = optimizer, Seed = seed },
        ChunkSize = chunkSize,
        Examples = examples ?? Examples,
        Source = "test",
    };

    public async Task<OrchestrationMetadata> RunAsync(CompositionRequest request, string instanceId, TimeSpan? timeout = null)
    {
        await Client.ScheduleNewOrchestrationInstanceAsync(nameof(ComposeOrchestrator), request, new StartOrchestrationOptions(instanceId));
        return await WaitAsync(instanceId, timeout);
    }

    public async Task<OrchestrationMetadata> WaitAsync(string instanceId, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(90));
        return await Client.WaitForInstanceCompletionAsync(instanceId, getInputsAndOutputs: true, cts.Token);
    }

    public static byte[] Jsonl(IEnumerable<Example> examples) =>
        Encoding.UTF8.GetBytes(string.Join("\n", examples.Select(e => JsonSerializer.Serialize(new { input = e.Input, output = e.Output }))) + "\n");
}

[CollectionDefinition(Name)]
public sealed class FunctionsCollection : ICollectionFixture<FunctionsHub>
{
    public const string Name = "functions";
}

/// <summary>Captures log lines of the LoraHub.Composition category with their structured fields.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly List<(string EventName, IReadOnlyDictionary<string, object?> Fields, string Message)> lines = [];

    public CapturedLogs()
    {
        Factory = LoggerFactory.Create(b => b
            .AddProvider(this)
            .AddSimpleConsole()
            .AddFilter((provider, category, level) => provider == typeof(CapturedLogs).FullName
                ? category == Telemetry.CompositionTelemetry.Category
                : level >= LogLevel.Warning));
    }

    public ILoggerFactory Factory { get; }

    public IReadOnlyList<(string EventName, IReadOnlyDictionary<string, object?> Fields, string Message)> For(string instanceId)
    {
        lock (lines) return lines.Where(l => Equals(l.Fields.GetValueOrDefault("InstanceId"), instanceId)).ToList();
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose() { }

    private sealed class Logger(CapturedLogs owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var fields = state is IEnumerable<KeyValuePair<string, object?>> pairs ? pairs.ToDictionary(p => p.Key, p => p.Value) : [];
            lock (owner.lines) owner.lines.Add((eventId.Name ?? "", fields, formatter(state, exception)));
        }
    }
}

/// <summary>Makes the next N calls of an activity throw (a worker crash, a storage hiccup), slows it, or holds one call.</summary>
public sealed class TestFaults : IFaultInjector
{
    private readonly Dictionary<string, HeldCall> held = [];

    /// <summary>
    /// Stops the next call of the activity at its start until <see cref="HeldCall.Release"/>, which makes it throw: an
    /// activity in flight that the test controls (a terminated instance's last work) and that does nothing when let go.
    /// </summary>
    public HeldCall HoldNext(string activity)
    {
        var call = new HeldCall(activity);
        lock (pending) held[activity] = call;
        return call;
    }

    private readonly Dictionary<string, int> pending = [];
    private readonly Dictionary<string, int> thrown = [];

    public void FailNext(string activity, int times)
    {
        lock (pending) pending[activity] = times;
    }

    public int Thrown(string activity)
    {
        lock (pending) return thrown.GetValueOrDefault(activity);
    }

    private readonly Dictionary<string, TimeSpan> delays = [];

    /// <summary>Makes every run of the activity take at least this long (a real model is slower than the tiny one).</summary>
    public void SlowDown(string activity, TimeSpan delay)
    {
        lock (pending) delays[activity] = delay;
    }

    public void BeforeActivity(string activity)
    {
        HeldCall? call;
        lock (pending) held.Remove(activity, out call);
        call?.Wait();
        TimeSpan delay;
        lock (pending) delay = delays.GetValueOrDefault(activity);
        if (delay > TimeSpan.Zero) Thread.Sleep(delay);
        lock (pending)
        {
            if (pending.GetValueOrDefault(activity) <= 0) return;
            pending[activity]--;
            thrown[activity] = thrown.GetValueOrDefault(activity) + 1;
        }
        throw new IOException($"injected fault in {activity}");
    }
}

/// <summary>One activity call stopped at its start by <see cref="TestFaults.HoldNext"/>.</summary>
public sealed class HeldCall(string activity)
{
    private readonly TaskCompletionSource reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ManualResetEventSlim released = new();

    /// <summary>Completes when the held call has started (and is waiting).</summary>
    public Task Reached => reached.Task;

    public void Release() => released.Set();

    internal void Wait()
    {
        reached.TrySetResult();
        released.Wait();
        throw new IOException($"held call of {activity} let go by the test");
    }
}

/// <summary>Records activity inputs and outputs per orchestration instance, as JSON (the Durable wire format).</summary>
public sealed class ActivityRecorder
{
    private readonly List<(string Instance, string Activity, string Input, string Output)> calls = [];

    private readonly Dictionary<(string, string), int> attempts = [];

    /// <summary>How many times an activity was started for an instance, failed attempts included.</summary>
    public int Attempts(string instanceId, string activity)
    {
        lock (calls) return attempts.GetValueOrDefault((instanceId, activity));
    }

    public async Task<TOut> Record<TIn, TOut>(TaskActivityContext ctx, TIn input, Func<Task<TOut>> run)
    {
        lock (calls) attempts[(ctx.InstanceId, ctx.Name.Name)] = attempts.GetValueOrDefault((ctx.InstanceId, ctx.Name.Name)) + 1;
        var output = await run();
        lock (calls) calls.Add((ctx.InstanceId, ctx.Name.Name, JsonSerializer.Serialize(input), JsonSerializer.Serialize(output)));
        return output;
    }

    public IReadOnlyList<(string Activity, string Input, string Output)> For(string instanceId)
    {
        lock (calls) return calls.Where(c => c.Instance == instanceId).Select(c => (c.Activity, c.Input, c.Output)).ToList();
    }
}
