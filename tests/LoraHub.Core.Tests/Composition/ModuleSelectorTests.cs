using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>How K modules are chosen from a pool: seeded random draws, and by single-module loss with ties and NaN ordered.</summary>
public sealed class ModuleSelectorTests
{
    private static IReadOnlyList<ModuleRef> Pool(params string[] names) => names.Select(n => new ModuleRef(n, "/pool/" + n)).ToList();

    [Fact]
    public void Random_draws_k_distinct_modules_reproducibly_by_seed()
    {
        var pool = Pool("a", "b", "c", "d", "e", "f", "g", "h");
        var first = ModuleSelector.Random(pool, 3, seed: 11);
        Assert.Equal(3, first.Count);
        Assert.Equal(3, first.Distinct().Count());
        Assert.All(first, m => Assert.Contains(m, pool));
        Assert.Equal(first, ModuleSelector.Random(pool, 3, seed: 11));
        // Other seeds draw other sets (not always the same prefix of the pool).
        var draws = Enumerable.Range(0, 20).Select(s => string.Join(",", ModuleSelector.Random(pool, 3, s).Select(m => m.Name))).Distinct().Count();
        Assert.True(draws > 10, $"{draws} different draws in 20 seeds");
        // All of the pool is a permutation of it.
        Assert.Equal(pool.Select(m => m.Name).Order(), ModuleSelector.Random(pool, pool.Count, 5).Select(m => m.Name).Order());
    }

    [Fact]
    public void Random_draws_are_uniform_over_modules_and_positions()
    {
        var pool = Pool("a", "b", "c", "d", "e");
        var chosen = new int[5];
        var firstSlot = new int[5];
        const int seeds = 2000;
        for (var s = 0; s < seeds; s++)
        {
            var drawn = ModuleSelector.Random(pool, 2, s);
            foreach (var m in drawn) chosen[m.Name[0] - 'a']++;
            firstSlot[drawn[0].Name[0] - 'a']++;
        }
        // Each module is in 2/5 of the draws (800) and first in 1/5 (400); the bounds are about 5 standard deviations.
        Assert.All(chosen, c => Assert.InRange(c, 690, 910));
        Assert.All(firstSlot, c => Assert.InRange(c, 300, 500));
    }

    [Fact]
    public void Bad_k_is_refused_with_the_numbers()
    {
        var pool = Pool("a", "b");
        Assert.Contains("asked for 0", Assert.Throws<ArgumentOutOfRangeException>(() => ModuleSelector.Random(pool, 0, 1)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ModuleSelector.ByLoss(pool, 0, [1, 1]));
        Assert.Contains("cannot select 3 modules from a pool of 2", Assert.Throws<CompositionException>(() => ModuleSelector.Random(pool, 3, 1)).Message);
        Assert.Contains("cannot select 3 modules from a pool of 2", Assert.Throws<CompositionException>(() => ModuleSelector.ByLoss(pool, 3, [1, 1])).Message);
        Assert.Single(ModuleSelector.Random(pool, 1, 1));
        Assert.Equal(2, ModuleSelector.ByLoss(pool, 2, [1, 1]).Count);
    }

    [Fact]
    public void By_loss_keeps_the_lowest_losses_in_ascending_order_ties_by_name_and_NaN_last()
    {
        var losses = new Dictionary<string, double>
        {
            ["m5"] = 2.0, ["m1"] = double.NaN, ["m3"] = 1.0, ["B"] = 1.0, ["m2"] = double.PositiveInfinity, ["a"] = 0.5, ["m4"] = 3.0,
        };
        var pool = Pool(losses.Keys.ToArray());
        var all = ModuleSelector.ByLoss(pool, pool.Count, pool.Select(m => losses[m.Name]).ToList());
        // Ties (1.0) by ordinal name ("B" < "m3"); NaN counts as +infinity, so it ties with m2 and the name decides.
        Assert.Equal(["a", "B", "m3", "m5", "m4", "m1", "m2"], all.Select(s => s.Module.Name));
        Assert.Equal(losses["m5"], all.Single(s => s.Module.Name == "m5").Loss);
        Assert.True(double.IsNaN(all.Single(s => s.Module.Name == "m1").Loss), "the loss is reported as measured");

        var top = ModuleSelector.ByLoss(pool, 3, pool.Select(m => losses[m.Name]).ToList());
        Assert.Equal(["a", "B", "m3"], top.Select(s => s.Module.Name));
    }

    [Fact]
    public void A_NaN_loss_never_beats_a_finite_one()
    {
        var pool = Pool("a", "b", "c");
        var top = ModuleSelector.ByLoss(pool, 2, pool.Select(m => m.Name == "a" ? double.NaN : m.Name == "b" ? 9.0 : 7.0).ToList());
        Assert.Equal(["c", "b"], top.Select(s => s.Module.Name));
    }

    [Fact]
    public void The_methods_are_random_and_loss()
    {
        Assert.Equal(["random", "loss"], ModuleSelector.Methods);
    }

    [Fact]
    public void Scan_lists_module_folders_by_ordinal_name_and_accepts_a_single_module_folder()
    {
        using var dir = new Fixtures.TempDir();
        foreach (var name in new[] { "b", "A", "c" }) MakeModule(dir[Path.Combine("pool", name)]);
        Directory.CreateDirectory(dir[Path.Combine("pool", "not-a-module")]);
        File.WriteAllText(dir[Path.Combine("pool", "notes.txt")], "x");

        var pool = ModuleRef.Scan(dir["pool"]);
        Assert.Equal(["A", "b", "c"], pool.Select(m => m.Name));
        Assert.All(pool, m => Assert.Equal(Path.GetFullPath(dir[Path.Combine("pool", m.Name)]), m.Directory));

        var one = ModuleRef.Scan(dir[Path.Combine("pool", "b")] + Path.DirectorySeparatorChar);
        Assert.Equal([new ModuleRef("b", Path.GetFullPath(dir[Path.Combine("pool", "b")]))], one);
        Assert.Empty(ModuleRef.Scan(dir[Path.Combine("pool", "not-a-module")]));

        var missing = dir["nowhere"];
        var e = Assert.Throws<LoraFormatException>(() => ModuleRef.Scan(missing));
        Assert.Contains(missing, e.Message);
    }

    private static void MakeModule(string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, LoraModule.ConfigFile), "{}");
    }
}
