using System.Text.Json.Serialization;
using LoraHub.Core.Lora;
using LoraHub.Core.Optimization;

namespace LoraHub.Core.Composition;

/// <summary>
/// How to compose, with the reference's defaults (K = 20 modules, 40 evaluations, L1 0.05, w in [-1.5, 1.5]).
/// The one definition of the settings and their checks: the CLI fills it from options, the Functions app from a
/// request's JSON (the same snake_case names), and both validate it here.
/// </summary>
public sealed record CompositionSettings
{
    /// <summary>The reference composes 20 modules; a smaller pool is composed whole.</summary>
    public const int DefaultK = 20;

    [JsonPropertyName("budget")] public int Budget { get; init; } = 40;
    [JsonPropertyName("optimizer")] public string Optimizer { get; init; } = Optimizers.Default;
    /// <summary>K: how many pool modules to compose; null means min(<see cref="DefaultK"/>, pool size).</summary>
    [JsonPropertyName("k")] public int? K { get; init; }
    /// <summary>"random" (the reference's) or "loss" (the K best single modules; one evaluation per pool module).</summary>
    [JsonPropertyName("selection")] public string Selection { get; init; } = "random";
    /// <summary>"lorahub" (the paper's merge) or "linear" (exact Σ w_i ΔW_i, stored at rank Σ r_i).</summary>
    [JsonPropertyName("merge")] public string Merge { get; init; } = "lorahub";
    [JsonPropertyName("seed")] public int Seed { get; init; }
    [JsonPropertyName("l1")] public double L1 { get; init; } = 0.05;
    [JsonPropertyName("lower")] public double Lower { get; init; } = -1.5;
    [JsonPropertyName("upper")] public double Upper { get; init; } = 1.5;
    [JsonPropertyName("initial_step")] public double InitialStep { get; init; } = 0.5;
    /// <summary>CMA-ES lambda or random-search batch; null for the optimizer's default.</summary>
    [JsonPropertyName("population")] public int? Population { get; init; }
    [JsonPropertyName("max_tokens")] public int MaxTokens { get; init; } = ExampleTokenizer.DefaultMaxTokens;
    /// <summary>
    /// Evaluate an optimizer's batch of candidates in one grouped forward pass. Off by default: on this 2-core CPU
    /// it measured slower than one at a time (bench composition-overhead); on a GPU it is the way to fill the device.
    /// </summary>
    [JsonPropertyName("batch_candidates")] public bool BatchCandidates { get; init; }

    /// <summary>Ranges shared by every entry point; generous for real use, tight enough that no value is absurd.</summary>
    public const int MaxBudget = 1_000_000;
    public const int MaxK = 100_000;
    public const int MaxPopulation = 100_000;
    public const int MaxMaxTokens = 1 << 20;
    public const double MaxL1 = 1e6;
    public const double MaxBound = 100;

    /// <summary>K for a pool of this size.</summary>
    public int ResolveK(int poolSize) => K ?? Math.Min(DefaultK, poolSize);

    /// <summary>Checks every setting on its own (types, ranges, known names); the message names the setting.</summary>
    public void Validate()
    {
        Range("budget", Budget, 1, MaxBudget);
        if (K is { } k) Range("k", k, 1, MaxK);
        if (!Optimizers.Names.Contains(Optimizer))
            throw new CompositionException($"unknown optimizer '{Optimizer}' (known: {string.Join(", ", Optimizers.Names)})");
        if (!ModuleSelector.Methods.Contains(Selection))
            throw new CompositionException($"unknown selection '{Selection}' (known: {string.Join(", ", ModuleSelector.Methods)})");
        if (!MergeModes.Names.Contains(Merge))
            throw new CompositionException($"unknown merge '{Merge}' (known: {string.Join(", ", MergeModes.Names)})");
        Range("l1", L1, 0, MaxL1);
        Range("lower", Lower, -MaxBound, MaxBound);
        Range("upper", Upper, -MaxBound, MaxBound);
        if (!(Lower < Upper)) throw new CompositionException($"weight bounds [{Lower}, {Upper}] are empty");
        Range("initial_step", InitialStep, 1e-9, MaxBound);
        if (Population is { } p) Range("population", p, 1, MaxPopulation);
        Range("max_tokens", MaxTokens, 2, MaxMaxTokens);
    }

    /// <summary>Messages start with the setting's name, so each host can say it its own way (CLI: --max-tokens).</summary>
    private static void Range(string name, double value, double min, double max)
    {
        string F(double x) => x.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!double.IsFinite(value)) throw new CompositionException($"{name} must be a finite number in [{F(min)}, {F(max)}] (got {F(value)})");
        if (value < min) throw new CompositionException($"{name} must be at least {F(min)} (got {F(value)})");
        if (value > max) throw new CompositionException($"{name} must be at most {F(max)} (got {F(value)})");
    }

    /// <summary>Checks the settings and that K fits the pool.</summary>
    public void Validate(int poolSize)
    {
        Validate();
        if (poolSize == 0) throw new CompositionException("the module pool is empty");
        if (ResolveK(poolSize) > poolSize) throw new CompositionException($"cannot select {K} modules from a pool of {poolSize}");
    }

    /// <summary>The optimizer's settings for K weights.</summary>
    public OptimizerSettings ForOptimizer(int k) => new(Optimizer, k, Budget, Lower, Upper, InitialStep, Seed, Population);
}
