using System.Globalization;
using LoraHub.Core.Composition;

namespace LoraHub.Cli.Commands;

/// <summary>
/// Range checks of numeric options, made before anything is loaded: "--max-tokens 0", "--population 0" or
/// "--l1 NaN" are usage errors naming the option, never a crash or a silently odd run. The upper bounds are far
/// above real use and stop a typo from allocating for 2^31 of something.
/// </summary>
internal static class OptionChecks
{
    public const int MaxBudget = 1_000_000;
    public const int MaxSelect = 100_000;
    public const int MaxPopulation = 10_000;
    public const int MaxTokens = 1 << 20;
    public const int MaxBatch = 1 << 16;
    public const int MaxNewTokens = 1 << 16;

    public static int Range(string option, int value, int min, int max) =>
        value < min ? throw new UsageException($"{option} must be at least {min} (got {value})")
        : value > max ? throw new UsageException($"{option} must be at most {max} (got {value})")
        : value;

    public static int? Range(string option, int? value, int min, int max) => value is { } v ? Range(option, v, min, max) : null;

    public static double Finite(string option, double value, double min, double max) =>
        !double.IsFinite(value) || value < min || value > max
            ? throw new UsageException($"{option} must be a finite number in [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}] (got {value.ToString(CultureInfo.InvariantCulture)})")
            : value;

    /// <summary>The compose options, as the settings hold them.</summary>
    public static void Compose(CompositionSettings s)
    {
        Range("--budget", s.Budget, 1, MaxBudget);
        Range("--select", s.Select, 1, MaxSelect);
        Range("--population", s.Population, 1, MaxPopulation);
        Range("--max-tokens", s.MaxTokens, 2, MaxTokens);
        Finite("--l1", s.L1, 0, 1e6);
    }
}
