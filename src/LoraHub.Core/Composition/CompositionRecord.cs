using System.Text.Json;
using System.Text.Json.Serialization;
using LoraHub.Core.Lora;

using LoraHub.Core.Optimization;

namespace LoraHub.Core.Composition;

/// <summary>One evaluated candidate of the search history.</summary>
public sealed record Trial(int Index, double[] Weights, double Loss, double L1, double Objective);

/// <summary>The outcome of a composition: the record written as lorahub.json, and the merged adapter.</summary>
public sealed record CompositionResult(CompositionRecord Record, MergedAdapter Adapter) : IDisposable
{
    public void Dispose() => Adapter.Dispose();
}

public sealed record ModuleWeight(string Name, string Path, double Weight);
public sealed record BestValue(int Evaluation, double Loss, double L1, double Objective);
public sealed record Timings(double SelectSeconds, double LoadSeconds, double SearchSeconds, double EvaluationsPerSecond)
{
    /// <summary>Timings of a search of this many evaluations.</summary>
    public static Timings Of(double selectSeconds, double loadSeconds, double searchSeconds, int evaluations) =>
        new(selectSeconds, loadSeconds, searchSeconds, evaluations / Math.Max(searchSeconds, 1e-9));
}

/// <summary>lorahub.json: what was composed, how, and how the search went. Written last: it marks a complete output.</summary>
public sealed record CompositionRecord
{
    public string Format { get; init; } = "lorahub.net/composition@1";
    public string BaseModel { get; init; } = "";
    public string Merge { get; init; } = "lorahub";
    public IReadOnlyList<ModuleWeight> Modules { get; init; } = [];
    public double[] Weights { get; init; } = [];
    public int Rank { get; init; }
    public int Seed { get; init; }
    public string Selection { get; init; } = "random";
    public string Optimizer { get; init; } = Optimizers.Default;
    public int Budget { get; init; }
    public double L1Coefficient { get; init; }
    public double[] Bounds { get; init; } = [];
    public double InitialStep { get; init; }
    public int Examples { get; init; }
    public BestValue? Best { get; init; }
    public IReadOnlyList<Trial> History { get; init; } = [];
    /// <summary>Sequential rounds of the search (optimizer batches): its wall time when each round is fanned out.</summary>
    public int Rounds { get; init; }
    public IReadOnlyList<string> Warnings { get; init; } = [];
    public Timings? Timings { get; init; }

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// The record of a finished search, as every host writes it. modules are (name, path) in composition order;
    /// selection is the settings' method, or "given" when the user named the modules.
    /// </summary>
    public static CompositionRecord Create(CompositionSettings settings, string baseModel, IReadOnlyList<(string Name, string Path)> modules,
        SearchResult search, int rank, int exampleCount, IReadOnlyList<string> warnings, Timings timings, bool modulesGiven = false) => new()
    {
        BaseModel = baseModel,
        Merge = settings.Merge,
        Modules = modules.Select((m, i) => new ModuleWeight(m.Name, m.Path, search.Weights[i])).ToList(),
        Weights = search.Weights,
        Rank = rank,
        Seed = settings.Seed,
        Selection = modulesGiven ? "given" : settings.Selection,
        Optimizer = settings.Optimizer,
        Budget = settings.Budget,
        L1Coefficient = settings.L1,
        Bounds = [settings.Lower, settings.Upper],
        InitialStep = settings.InitialStep,
        Examples = exampleCount,
        Best = new BestValue(search.Best.Index, search.Best.Loss, search.Best.L1, search.Best.Objective),
        History = search.History,
        Rounds = search.Rounds,
        Warnings = warnings,
        Timings = timings,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static CompositionRecord Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<CompositionRecord>(File.ReadAllText(path), Json)
                ?? throw new CompositionException($"{path}: empty composition record");
        }
        catch (JsonException e)
        {
            throw new CompositionException($"{path}: not a composition record ({e.Message})");
        }
    }
}
