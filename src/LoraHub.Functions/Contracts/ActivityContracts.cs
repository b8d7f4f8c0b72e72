using System.Text.Json.Serialization;
using LoraHub.Core.Composition;
using LoraHub.Core.Optimization;

namespace LoraHub.Functions.Contracts;

// Activity inputs and outputs. Everything crosses the Durable boundary as JSON (System.Text.Json, which refuses
// NaN and infinities), so a diverged loss travels as null and an objective is always finite.

/// <summary>The pool to select from: the named modules (checked to exist), or every module of the hub.</summary>
public sealed record ListPoolInput(IReadOnlyList<string>? Modules);

/// <summary>Module names in pool order: as named, or the hub's sorted by name (so a seed means the same draw everywhere).</summary>
public sealed record ModulePool(IReadOnlyList<string> Names);

/// <summary>The chosen modules of a composition, to fetch and check before the search.</summary>
public sealed record SelectModulesInput(
    string BaseModel,
    IReadOnlyList<string> Modules,
    IReadOnlyList<Example> Examples,
    int MaxTokens,
    string Merge = "lorahub");

/// <summary>
/// The chosen modules in composition order, warnings for the record (truncated examples, mixed A inits), the hub
/// versions of the base model and those modules, and how long fetching them took (the record's load time).
/// </summary>
public sealed record SelectedModules(IReadOnlyList<string> Names, IReadOnlyList<string> Warnings, PinnedVersions? Versions = null, double LoadSeconds = 0);

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
public sealed record CandidateScore(double? Loss, double L1, double Objective)
{
    /// <summary>A diverged loss is sent as null with the worst objective (JSON has no NaN or infinity).</summary>
    public static CandidateScore Of(ObjectiveValue v) =>
        double.IsFinite(v.Value) && double.IsFinite(v.Loss)
            ? new CandidateScore(v.Loss, v.L1, v.Value)
            : new CandidateScore(null, v.L1, Optimizers.WorstValue);

    /// <summary>Back to Core's value: a diverged candidate has a NaN loss and an infinite objective.</summary>
    public ObjectiveValue ToObjectiveValue() =>
        Loss is { } loss ? new ObjectiveValue(loss, L1, Objective, []) : new ObjectiveValue(double.NaN, L1, double.PositiveInfinity, []);
}

public sealed record CandidateScores(IReadOnlyList<CandidateScore> Scores);

/// <summary>One evaluation of the search, in order (1-based index), for lorahub.json's history.</summary>
public sealed record Evaluation(int Index, double[] Weights, double? Loss, double L1, double Objective)
{
    public static Evaluation Of(Trial t) => double.IsFinite(t.Loss) && double.IsFinite(t.Objective)
        ? new Evaluation(t.Index, t.Weights, t.Loss, t.L1, t.Objective)
        : new Evaluation(t.Index, t.Weights, null, t.L1, Optimizers.WorstValue);

    public Trial ToTrial() => new(Index, Weights, Loss ?? double.NaN, L1, Loss is null ? double.PositiveInfinity : Objective);
}

public sealed record MaterializeAdapterInput(
    CompositionRequest Request,
    IReadOnlyList<string> Modules,
    double[] Weights,
    IReadOnlyList<Evaluation> History,
    IReadOnlyList<string> Warnings,
    int ExampleCount,
    double SelectSeconds,
    double SearchSeconds,
    PinnedVersions? Versions = null,
    int Rounds = 0,
    double LoadSeconds = 0);

/// <summary>Where the adapter went: adapters/{task} and the files written.</summary>
public sealed record MaterializedAdapter(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("files")] IReadOnlyList<string> Files);
