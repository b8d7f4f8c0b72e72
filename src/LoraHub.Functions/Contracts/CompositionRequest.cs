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
    /// <summary>Explicit module names (modules/{name}); null means K random modules of the pool.</summary>
    [JsonPropertyName("modules")] public IReadOnlyList<string>? Modules { get; init; }
    /// <summary>K for random selection; null means min(20, pool size). Ignored when Modules is set.</summary>
    [JsonPropertyName("k")] public int? K { get; init; }
    [JsonPropertyName("budget")] public int Budget { get; init; } = 40;
    [JsonPropertyName("optimizer")] public string Optimizer { get; init; } = LoraHub.Core.Optimization.Optimizers.Default;
    /// <summary>"lorahub" (A and B merged separately, the paper's) or "linear" (exact Σ w_i ΔW_i at rank Σ r_i).</summary>
    [JsonPropertyName("merge")] public string Merge { get; init; } = "lorahub";
    [JsonPropertyName("seed")] public int Seed { get; init; }
    [JsonPropertyName("l1")] public double L1 { get; init; } = 0.05;
    [JsonPropertyName("lower")] public double Lower { get; init; } = -1.5;
    [JsonPropertyName("upper")] public double Upper { get; init; } = 1.5;
    [JsonPropertyName("initial_step")] public double InitialStep { get; init; } = 0.5;
    /// <summary>CMA-ES lambda or random-search batch; null for the optimizer's default.</summary>
    [JsonPropertyName("population")] public int? Population { get; init; }
    [JsonPropertyName("max_tokens")] public int MaxTokens { get; init; } = ExampleTokenizer.DefaultMaxTokens;
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
