using System.Text.Json.Serialization;
using LoraHub.Core.Composition;

namespace LoraHub.Functions.Contracts;

/// <summary>
/// The input of <see cref="Orchestration.ComposeOrchestrator"/>: everything a composition depends on, already
/// validated against the hub (the triggers build it). Same request, same result: the orchestrator is deterministic.
/// </summary>
public sealed record CompositionRequest
{
    /// <summary>The task's name: the adapter is written to adapters/{task}/.</summary>
    [JsonPropertyName("task")] public required string Task { get; init; }
    /// <summary>models/{name} in the hub.</summary>
    [JsonPropertyName("base")] public required string BaseModel { get; init; }
    /// <summary>Explicit module names (modules/{name}), composed in this order; null means K modules of the pool.</summary>
    [JsonPropertyName("modules")] public IReadOnlyList<string>? Modules { get; init; }
    /// <summary>How to compose: Core's settings and defaults, the same as the CLI's.</summary>
    [JsonPropertyName("settings")] public CompositionSettings Settings { get; init; } = new();
    /// <summary>Candidates per EvaluateCandidates activity: an optimizer batch is split into chunks evaluated in parallel.</summary>
    [JsonPropertyName("chunk_size")] public int ChunkSize { get; init; } = 4;
    [JsonPropertyName("examples")] public required IReadOnlyList<Example> Examples { get; init; }
    /// <summary>Where the examples came from ("examples/{task}.jsonl" or "http"), for the record.</summary>
    [JsonPropertyName("source")] public string Source { get; init; } = "";
}

/// <summary>The output of <see cref="Orchestration.ComposeOrchestrator"/>.</summary>
public sealed record CompositionOutcome(
    [property: JsonPropertyName("task")] string Task,
    [property: JsonPropertyName("base")] string BaseModel,
    [property: JsonPropertyName("modules")] IReadOnlyList<string> Modules,
    [property: JsonPropertyName("weights")] double[] Weights,
    [property: JsonPropertyName("best_objective")] double BestObjective,
    [property: JsonPropertyName("best_loss")] double? BestLoss,
    [property: JsonPropertyName("evaluations")] int Evaluations,
    [property: JsonPropertyName("adapter_path")] string AdapterPath);

/// <summary>The orchestration's custom status while it runs; Curve: [evaluation, objective] points (ObjectiveCurve).</summary>
public sealed record CompositionStatus(
    [property: JsonPropertyName("phase")] string Phase,
    [property: JsonPropertyName("evaluations")] int Evaluations,
    [property: JsonPropertyName("budget")] int Budget,
    [property: JsonPropertyName("best_objective")] double? BestObjective,
    [property: JsonPropertyName("curve")] IReadOnlyList<double[]>? Curve = null);
