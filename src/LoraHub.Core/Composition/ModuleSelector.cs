using LoraHub.Core.Lora;

namespace LoraHub.Core.Composition;

/// <summary>A module of the pool: its name and folder; loaded only when selected (pools can be large).</summary>
public sealed record ModuleRef(string Name, string Directory)
{
    /// <summary>Every sub-folder holding an adapter_config.json, sorted by name so that seeds mean the same pool order everywhere.</summary>
    public static IReadOnlyList<ModuleRef> Scan(string poolDirectory)
    {
        if (!System.IO.Directory.Exists(poolDirectory))
            throw new LoraFormatException($"{poolDirectory}: module pool folder does not exist");
        // Without the trailing '/' that shell completion adds, the folder's name is its last part, not "".
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(poolDirectory));
        if (File.Exists(Path.Combine(full, LoraModule.ConfigFile)))
            return [new ModuleRef(Path.GetFileName(full), full)];
        return System.IO.Directory.GetDirectories(poolDirectory)
            .Where(d => File.Exists(Path.Combine(d, LoraModule.ConfigFile)))
            .Select(d => new ModuleRef(Path.GetFileName(d), Path.GetFullPath(d)))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToList();
    }
}

/// <summary>How the K modules of a composition are chosen from the pool.</summary>
public static class ModuleSelector
{
    public static readonly IReadOnlyList<string> Methods = ["random", "loss"];

    /// <summary>
    /// The reference's way: K distinct modules drawn at random with the seed (order kept as drawn). A pool of exactly
    /// K is kept in the order given: the reference does not shuffle a given list, and COBYLA's first steps follow the
    /// module order, so shuffling it would change the search.
    /// </summary>
    public static IReadOnlyList<ModuleRef> Random(IReadOnlyList<ModuleRef> pool, int k, int seed)
    {
        CheckK(pool, k);
        if (k == pool.Count) return pool.ToList();
        var rng = new Random(seed);
        var indices = Enumerable.Range(0, pool.Count).ToArray();
        // Partial Fisher-Yates: the first k slots are a uniform sample without replacement.
        for (var i = 0; i < k; i++)
        {
            var j = i + rng.Next(pool.Count - i);
            (indices[i], indices[j]) = (indices[j], indices[i]);
        }
        return indices.Take(k).Select(i => pool[i]).ToList();
    }

    /// <summary>
    /// The K modules whose single-module loss (weight 1) on the examples is lowest, lowest first; ties go to the
    /// name that sorts first (ordinal); a NaN loss counts as +infinity, so it never beats a number. losses[i] belongs to pool[i].
    /// </summary>
    public static IReadOnlyList<(ModuleRef Module, double Loss)> ByLoss(IReadOnlyList<ModuleRef> pool, int k, IReadOnlyList<double> losses)
    {
        CheckK(pool, k);
        if (losses.Count != pool.Count) throw new ArgumentException($"{losses.Count} losses for a pool of {pool.Count}", nameof(losses));
        return pool.Select((m, i) => (Module: m, Loss: losses[i]))
            .OrderBy(s => double.IsNaN(s.Loss) ? double.PositiveInfinity : s.Loss)
            .ThenBy(s => s.Module.Name, StringComparer.Ordinal)
            .Take(k).ToList();
    }

    private static void CheckK(IReadOnlyList<ModuleRef> pool, int k)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), $"select at least 1 module (asked for {k})");
        if (k > pool.Count) throw new CompositionException($"cannot select {k} modules from a pool of {pool.Count}");
    }
}

/// <summary>A composition that cannot run as asked; the message says why.</summary>
public sealed class CompositionException(string message) : Exception(message);
