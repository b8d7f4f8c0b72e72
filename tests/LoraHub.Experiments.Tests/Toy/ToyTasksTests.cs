using LoraHub.Experiments.Toy;
using Xunit;

namespace LoraHub.Experiments.Tests.Toy;

public sealed class ToyTasksTests
{
    public static TheoryData<string> PoolNames()
    {
        var data = new TheoryData<string>();
        foreach (var t in ToyTasks.Pool) data.Add(t.Name);
        return data;
    }

    [Fact]
    public void The_pool_has_24_modules_the_original_8_first_and_two_duplicates()
    {
        Assert.Equal(24, ToyTasks.Pool.Count);
        Assert.Equal(24, ToyTasks.Pool.Select(t => t.Name).Distinct().Count());
        Assert.Equal(["shift_letters", "unshift_letters", "mirror_letters", "swap_letters", "inc_digits", "dec_digits", "mirror_digits", "swap_digits"],
            ToyTasks.Pool.Take(8).Select(t => t.Name));
        var all = ToyTasks.Letters + ToyTasks.Digits;
        var images = ToyTasks.Pool.ToDictionary(t => t.Name, t => t.Apply(all));
        Assert.Equal(22, images.Values.Distinct().Count()); // only the two duplicates repeat a map
        Assert.Equal(images["mirror_letters"], images["mirror_letters_dup"]);
        Assert.Equal(images["inc_digits"], images["inc_digits_dup"]);
        // The near-duplicates differ from their originals on one character only.
        Assert.Equal(1, images["shift_letters"].Zip(images["shift_letters_near"]).Count(p => p.First != p.Second));
        Assert.Equal(1, images["inc_digits"].Zip(images["inc_digits_near"]).Count(p => p.First != p.Second));
    }

    [Theory]
    [MemberData(nameof(PoolNames))]
    public void Each_pool_task_changes_exactly_the_characters_it_touches(string name)
    {
        var task = ToyTasks.PoolTask(name);
        Assert.NotNull(task.Touches);
        foreach (var c in ToyTasks.Letters + ToyTasks.Digits)
            Assert.Equal(task.Touches!(c), task.Map(c) != c);
        Assert.All(task.Apply(ToyTasks.Letters + ToyTasks.Digits), c => Assert.Contains(c, ToyTasks.Letters + ToyTasks.Digits));
    }

    [Fact]
    public void The_original_eight_touch_one_token_type_without_fixed_points()
    {
        foreach (var task in ToyTasks.Pool.Take(8))
        {
            var letters = task.Apply(ToyTasks.Letters);
            var digits = task.Apply(ToyTasks.Digits);
            var onLetters = letters != ToyTasks.Letters;
            Assert.NotEqual(onLetters, digits != ToyTasks.Digits); // exactly one type changes
            var (source, image, alphabet) = onLetters ? (ToyTasks.Letters, letters, ToyTasks.Letters) : (ToyTasks.Digits, digits, ToyTasks.Digits);
            for (var i = 0; i < source.Length; i++) Assert.NotEqual(source[i], image[i]);
            Assert.All(image, c => Assert.Contains(c, alphabet));
        }
    }

    [Fact]
    public void The_three_module_task_combines_disjoint_maps_and_overlaps_are_refused()
    {
        var parts = new[] { "shift_letters", "rotate_low_digits", "rotate_high_digits" }.Select(ToyTasks.PoolTask).ToList();
        var task = ToyTasks.CombineAll("t", parts);
        Assert.Equal("b0j5", task.Apply("a4i9"));
        Assert.Equal("c2d7", task.Apply("b1c6"));
        Assert.Equal(["shift_letters", "rotate_low_digits", "rotate_high_digits"], task.Parts);
        // inc_digits agrees except on 4 and 9: the partial trap the held-out task sets.
        Assert.Equal("b5j0", ToyTasks.Combine("c", parts[0], ToyTasks.PoolTask("inc_digits")).Apply("a4i9"));
        Assert.Throws<ArgumentException>(() => ToyTasks.CombineAll("x", [ToyTasks.PoolTask("inc_digits"), parts[1]]));
        Assert.Equal(4, LoraHub.Experiments.Toy.ToyWorld.HeldOutFor(ToyTasks.Pool.Select(t => t.Name).ToList()).Count());
        Assert.Equal(3, LoraHub.Experiments.Toy.ToyWorld.HeldOutFor(ToyTasks.Pool.Take(8).Select(t => t.Name).ToList()).Count());
    }

    [Fact]
    public void Half_rotation_samples_always_hold_a_touched_character()
    {
        var task = ToyTasks.PoolTask("rotate_high_digits");
        var examples = ToyTasks.Sample(task, 300, 2, "check");
        Assert.All(examples, e => Assert.Contains(e.Input, c => c is >= '5' and <= '9'));
        Assert.All(examples, e => Assert.NotEqual(e.Input, e.Output));
    }

    [Fact]
    public void Known_maps_give_the_expected_outputs()
    {
        Assert.Equal("b1j0", ToyTasks.PoolTask("shift_letters").Apply("a1i0"));
        Assert.Equal("a2i1", ToyTasks.PoolTask("inc_digits").Apply("a1i0"));
        Assert.Equal("j1b0", ToyTasks.PoolTask("mirror_letters").Apply("a1i0"));
        Assert.Equal("a8i9", ToyTasks.PoolTask("mirror_digits").Apply("a1i0"));
        var combined = ToyTasks.Combine("x", ToyTasks.PoolTask("shift_letters"), ToyTasks.PoolTask("inc_digits"));
        Assert.Equal("b2j1", combined.Apply("a1i0"));
        Assert.Equal(["shift_letters", "inc_digits"], combined.Parts);
    }

    [Fact]
    public void Samples_are_deterministic_by_seed_and_stream()
    {
        var task = ToyTasks.PoolTask("swap_digits");
        Assert.Equal(ToyTasks.Sample(task, 50, 7, "train"), ToyTasks.Sample(task, 50, 7, "train"));
        Assert.NotEqual(ToyTasks.Sample(task, 50, 7, "train"), ToyTasks.Sample(task, 50, 8, "train"));
        Assert.NotEqual(ToyTasks.Sample(task, 50, 7, "train"), ToyTasks.Sample(task, 50, 7, "test"));
        // Pinned: the stream must not change with the runtime (SplitMix64, not System.Random).
        Assert.Equal(["f5jcjb8", "h179", "12f2b4"], ToyTasks.Sample(task, 3, 1, "pin", 4, 10).Select(e => e.Input));
        Assert.Equal(13679457532755275413UL, new ToyRandom(42).NextUInt64());
    }

    [Fact]
    public void Samples_are_mixed_distinct_in_range_and_never_a_copy()
    {
        foreach (var task in ToyTasks.Pool.Append(ToyTasks.Combine("c", ToyTasks.PoolTask("mirror_letters"), ToyTasks.PoolTask("inc_digits"))))
        {
            var examples = ToyTasks.Sample(task, 300, 1, "check", 4, 10);
            Assert.Equal(300, examples.Select(e => e.Input).Distinct().Count());
            Assert.All(examples, e =>
            {
                Assert.InRange(e.Input.Length, 4, 10);
                Assert.Contains(e.Input, c => c is >= 'a' and <= 'j');
                Assert.Contains(e.Input, c => c is >= '0' and <= '9');
                Assert.NotEqual(e.Input, e.Output); // the base (a copier) fails every task by construction
                Assert.Equal(e.Input.Length, e.Output.Length);
            });
        }
    }

    [Fact]
    public void Default_lengths_are_the_worlds()
    {
        var examples = ToyTasks.Sample(ToyTasks.PoolTask("dec_digits"), 500, 3, "lengths");
        Assert.Equal(ToyTasks.DefaultMinLength, examples.Min(e => e.Input.Length));
        Assert.Equal(ToyTasks.DefaultMaxLength, examples.Max(e => e.Input.Length));
        Assert.Equal(ToyTasks.DefaultMaxLength, ToyWorldOptions.Default.MaxLength);
    }

    [Fact]
    public void Excluded_inputs_are_never_drawn()
    {
        var task = ToyTasks.PoolTask("shift_letters");
        var first = ToyTasks.Sample(task, 200, 1, "a", 2, 3);
        var second = ToyTasks.Sample(task, 200, 1, "b", 2, 3, first.Select(e => e.Input).ToHashSet());
        Assert.Empty(first.Select(e => e.Input).Intersect(second.Select(e => e.Input)));
    }

    [Fact]
    public void Random_stream_is_uniform_enough_and_pinned()
    {
        var r = new ToyRandom(42);
        var counts = new int[10];
        for (var i = 0; i < 10000; i++) counts[r.Next(10)]++;
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
        Assert.Equal(new ToyRandom(5, "x").NextUInt64(), new ToyRandom(5, "x").NextUInt64());
        Assert.NotEqual(new ToyRandom(5, "x").NextUInt64(), new ToyRandom(5, "y").NextUInt64());
    }
}
