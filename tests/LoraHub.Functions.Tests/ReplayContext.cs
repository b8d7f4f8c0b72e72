using System.Text.Json;
using LoraHub.Functions.Contracts;
using Microsoft.DurableTask;

namespace LoraHub.Functions.Tests;

/// <summary>
/// An orchestration context that replays recorded activity results, as Durable does after a restart: no activity
/// runs; every scheduled call must find its recorded result (same activity, same input) or the replay has diverged.
/// </summary>
public sealed class ReplayContext(IReadOnlyList<(string Activity, string Input, string Output)> recorded, string instanceId) : OrchestrationContextStub
{
    private readonly Dictionary<(string, string), string> results = recorded.ToDictionary(r => (r.Activity, Key(r.Activity, r.Input)), r => r.Output);

    public List<(string Activity, string Input)> Scheduled { get; } = [];

    public override string InstanceId => instanceId;
    public override DateTime CurrentUtcDateTime => new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    public override bool IsReplaying => true;

    public override Task<TResult> CallActivityAsync<TResult>(TaskName name, object? input = null, TaskOptions? options = null)
    {
        var json = JsonSerializer.Serialize(input);
        Scheduled.Add((name.Name, json));
        if (!results.TryGetValue((name.Name, Key(name.Name, json)), out var output))
            throw new InvalidOperationException($"replay diverged: {name.Name} was never called with {json[..Math.Min(200, json.Length)]}");
        return Task.FromResult(JsonSerializer.Deserialize<TResult>(output)!);
    }

    /// <summary>Timings read the orchestration clock, which a real replay restores from history; compare without them.</summary>
    public static string Key(string activity, string input)
    {
        if (activity != "MaterializeAdapter") return input;
        var m = JsonSerializer.Deserialize<MaterializeAdapterInput>(input)!;
        return JsonSerializer.Serialize(m with { SelectSeconds = 0, SearchSeconds = 0 });
    }

    public override void SetCustomStatus(object? customStatus) { }
}
