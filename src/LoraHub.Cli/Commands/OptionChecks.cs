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
    public const int MaxTokens = CompositionSettings.MaxMaxTokens;
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

    /// <summary>
    /// The compose options, checked by Core's one definition of the settings and reported under their option names
    /// (the Functions app reports the same checks under its JSON keys).
    /// </summary>
    public static void Compose(CompositionSettings s)
    {
        try
        {
            s.Validate();
        }
        catch (CompositionException e)
        {
            var name = e.Message.Split(' ')[0];
            var option = name switch { "k" => "--select", "lower" or "upper" => "weight bounds", _ => "--" + name.Replace('_', '-') };
            throw new UsageException(option + e.Message[name.Length..]);
        }
    }
}
