using System.Text.Json.Serialization;
using LoraHub.Core.Composition;

namespace LoraHub.Functions.Contracts;

// Activity inputs and outputs. Everything crosses the Durable boundary as JSON (System.Text.Json, which refuses
// NaN and infinities), so a diverged loss travels as null and an objective is always finite.

public sealed record SelectModulesInput(
    string BaseModel,
    IReadOnlyList<string>? Modules,
    int? K,
    int Seed,
    IReadOnlyList<Example> Examples,
    int MaxTokens);

/// <summary>
/// The chosen modules in composition order, warnings for the record (truncated examples, mixed A inits), and the hub
/// versions of the base model and those modules at selection (null in histories recorded before versions were kept).
/// </summary>
public sealed record SelectedModules(IReadOnlyList<string> Names, IReadOnlyList<string> Warnings, PinnedVersions? Versions = null);

/// <summary>
/// Hub versions (blob ETag hashes, or size+mtime hashes locally) of a composition's base model and modules, in
/// composition order. A worker that has them loaded uses them without asking the hub again (EngineCache), so the
/// evaluations of one composition cost no hub request once the worker is warm.
/// </summary>
public sealed record PinnedVersions(string BaseModel, IReadOnlyList<string> Modules);

public sealed record EvaluateCandidatesInput(
    string BaseModel,
    IReadOnlyList<string> Modules,
    IReadOnlyList<Example> Examples,
    IReadOnlyList<double[]> Candidates,
    double L1,
    int MaxTokens,
    string Merge = "lorahub",
    PinnedVersions? Versions = null);

/// <summary>One evaluated candidate: Loss is null when the model diverged (then Objective is the worst value).</summary>
public sealed record CandidateScore(double? Loss, double L1, double Objective);

public sealed record CandidateScores(IReadOnlyList<CandidateScore> Scores);

/// <summary>One evaluation of the search, in order (1-based index), for lorahub.json's history.</summary>
public sealed record Evaluation(int Index, double[] Weights, double? Loss, double L1, double Objective);

public sealed record MaterializeAdapterInput(
    CompositionRequest Request,
    IReadOnlyList<string> Modules,
    double[] Weights,
    IReadOnlyList<Evaluation> History,
    IReadOnlyList<string> Warnings,
    int ExampleCount,
    double SelectSeconds,
    double SearchSeconds,
    PinnedVersions? Versions = null);

/// <summary>Where the adapter went: adapters/{task} and the files written.</summary>
public sealed record MaterializedAdapter(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("files")] IReadOnlyList<string> Files);
