using System.Collections.Concurrent;
using LoraHub.Core.Models;
using LoraHub.Core.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Runtime;

/// <summary>
/// Forward passes split into parts that run at the same time: which rows each part gets (the same examples from every
/// candidate block), that the losses come back in the rows' order, errors, and the libtorch thread settings per thread.
/// </summary>
public sealed class ForwardPartsTests
{
    /// <summary>A loss that is the row's own number, recording which rows each part computed and on which thread.</summary>
    private static (double[] Losses, List<(string Thread, int[] Rows)> Parts) Split(int rows, int groups, int maxParts)
    {
        var seen = new ConcurrentBag<(string, int[])>();
        var losses = Sequences.Losses(Enumerable.Range(0, rows).ToList(), groups, maxParts, part =>
        {
            seen.Add((Thread.CurrentThread.Name ?? "", part.ToArray()));
            return tensor(part.Select(r => (float)r).ToArray());
        });
        return (losses, seen.OrderBy(p => p.Item2.Min()).ToList());
    }

    [Theory]
    [InlineData(5, 1, 2, new[] { 2, 3 })]
    [InlineData(5, 1, 8, new[] { 1, 1, 1, 1, 1 })]
    [InlineData(7, 1, 3, new[] { 2, 2, 3 })]
    [InlineData(15, 3, 2, new[] { 2, 3 })] // 3 candidates × 5 examples: each part holds its examples of every candidate
    [InlineData(12, 4, 8, new[] { 1, 1, 1 })]
    public void Each_part_takes_the_same_examples_from_every_group_and_the_losses_keep_the_rows_order(int rows, int groups, int maxParts, int[] examplesPerPart)
    {
        var (losses, parts) = Split(rows, groups, maxParts);
        Assert.Equal(Enumerable.Range(0, rows).Select(r => (double)r), losses);
        Assert.Equal(examplesPerPart, parts.Select(p => p.Rows.Length / groups));
        var n = rows / groups;
        foreach (var (_, part) in parts)
        {
            var examples = part.Take(part.Length / groups).ToArray();
            Assert.Equal(Enumerable.Range(0, groups).SelectMany(g => examples.Select(e => g * n + e)), part);
        }
        // Every part ran on a worker, each on its own.
        Assert.All(parts, p => Assert.StartsWith("lorahub-forward-", p.Thread));
        Assert.Equal(parts.Count, parts.Select(p => p.Thread).Distinct().Count());
    }

    [Fact]
    public void One_part_runs_the_whole_batch_on_the_calling_thread()
    {
        var (losses, parts) = Split(5, 1, 1);
        Assert.Equal([0.0, 1, 2, 3, 4], losses);
        Assert.Equal([Thread.CurrentThread.Name ?? ""], parts.Select(p => p.Thread));
        Assert.Equal([0, 1, 2, 3, 4], parts.Single().Rows);
        Assert.Empty(Sequences.Losses(new List<int>(), 1, 4, _ => throw new InvalidOperationException("not called")));
    }

    [Theory]
    [InlineData(5, 2)]
    [InlineData(6, 0)]
    public void Rows_that_are_not_equal_groups_are_refused(int rows, int groups)
    {
        var e = Assert.Throws<ArgumentException>(() => Sequences.Losses(Enumerable.Range(0, rows).ToList(), groups, 2, _ => zeros(1)));
        Assert.Contains($"{rows} rows are not {groups} equal groups", e.Message);
    }

    [Fact]
    public void A_part_that_fails_fails_the_call_with_its_own_exception_after_the_others_finish()
    {
        var finished = 0;
        var e = Assert.Throws<FormatException>(() => Sequences.Losses(Enumerable.Range(0, 6).ToList(), 1, 3, part =>
        {
            if (part.Contains(3)) throw new FormatException("example 4 is broken");
            Thread.Sleep(50);
            Interlocked.Increment(ref finished);
            return zeros(part.Count);
        }));
        Assert.Equal("example 4 is broken", e.Message);
        Assert.Equal(2, finished);
    }

    [Fact]
    public void Parts_compute_without_gradients_on_their_share_of_threads_and_leave_the_callers_setting_alone()
    {
        var before = TorchSharp.torch.get_num_threads();
        var inside = ForwardParts.Run(2, _ => (Threads: TorchSharp.torch.get_num_threads(), Grad: is_grad_enabled(), Thread: Environment.CurrentManagedThreadId));
        Assert.Equal(before, TorchSharp.torch.get_num_threads());
        Assert.True(is_grad_enabled());
        Assert.All(inside, p => Assert.Equal((Math.Max(1, before / ForwardParts.Count), false), (p.Threads, p.Grad)));
        Assert.Equal(ForwardParts.ThreadsPerPart, inside[0].Threads);
        Assert.NotEqual(inside[0].Thread, inside[1].Thread);

        // A split inside a part runs there, one part after another (a worker never waits on the pool it belongs to).
        var nested = ForwardParts.Run(2, _ => ForwardParts.Run(3, i => (i, Environment.CurrentManagedThreadId)));
        Assert.All(nested, inner => Assert.Single(inner.Select(x => x.Item2).Distinct()));
        Assert.Equal([0, 1, 2], nested[1].Select(x => x.i));
    }

    [Fact]
    public void A_run_during_which_a_garbage_collection_ran_is_computed_again()
    {
        // A collection can finalize a temporary Scalar that libtorch is still reading: such results are not kept.
        var calls = new int[3];
        var before = ForwardParts.Recomputed;
        var results = ForwardParts.Run(3, i =>
        {
            if (Interlocked.Increment(ref calls[i]) == 1 && i == 1) GC.Collect();
            return i * 10;
        });
        Assert.Equal([0, 10, 20], results);
        Assert.Equal([2, 2, 2], calls);
        Assert.True(ForwardParts.Recomputed > before);
    }

    [Theory]
    [InlineData(null, ForwardParts.DefaultCount)]
    [InlineData("1", 1)]
    [InlineData("16", 16)]
    [InlineData("0", ForwardParts.DefaultCount)]
    [InlineData("17", ForwardParts.DefaultCount)]
    [InlineData("-2", ForwardParts.DefaultCount)]
    [InlineData(" 3", ForwardParts.DefaultCount)]
    [InlineData("four", ForwardParts.DefaultCount)]
    public void The_part_count_comes_from_the_environment_within_1_to_16(string? value, int expected) =>
        Assert.Equal(expected, ForwardParts.Parse(value));
}

/// <summary>
/// What ForwardParts holds process-wide: the part count, the worker pool's size and the no-GC region. Alone (not in
/// parallel with other tests), since another split run would hold the same region.
/// </summary>
[CollectionDefinition(nameof(ForwardPartsProcessTests), DisableParallelization = true)]
[Collection(nameof(ForwardPartsProcessTests))]
public sealed class ForwardPartsProcessTests
{
    [Fact]
    public void The_part_count_is_settable_within_1_to_16_only()
    {
        var count = ForwardParts.Count;
        Assert.Throws<ArgumentOutOfRangeException>(() => ForwardParts.Count = 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => ForwardParts.Count = 17);
        Assert.Equal(count, ForwardParts.Count);
        try
        {
            ForwardParts.Count = 1;
            Assert.Equal(1, ForwardParts.Count);
            ForwardParts.Count = 16;
            Assert.Equal(16, ForwardParts.Count);
        }
        finally
        {
            ForwardParts.Count = count;
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ForwardParts.Run(0, i => i));
    }

    [Fact]
    public void More_parts_than_16_share_16_workers_and_come_back_in_order()
    {
        var results = ForwardParts.Run(20, i => (i, Thread.CurrentThread.Name));
        Assert.Equal(Enumerable.Range(0, 20), results.Select(r => r.i));
        Assert.All(results, r => Assert.StartsWith("lorahub-forward-", r.Name));
        Assert.Equal(16, results.Select(r => r.Name).Distinct().Count());
        Assert.Equal(results[0].Name, results[16].Name); // part 16 goes to the first worker again
    }

    [Fact]
    public void Parts_run_in_a_no_gc_region_that_ends_with_the_last_overlapping_run()
    {
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
        var inside = ForwardParts.Run(2, _ => System.Runtime.GCSettings.LatencyMode);
        Assert.All(inside, mode => Assert.Equal(System.Runtime.GCLatencyMode.NoGCRegion, mode));
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);

        // Two runs overlap: the one that ends first must not end the region the other is still computing in. The
        // other run's two parts go to workers 0 and 1, free again once this run's first parts are done; this run's
        // last part (worker 3) waits for the other run to end and then looks.
        using var otherInside = new ManualResetEventSlim();
        using var otherDone = new ManualResetEventSlim();
        var modes = ForwardParts.Run(4, i =>
        {
            if (i != 3) return System.Runtime.GCSettings.LatencyMode;
            var other = new Thread(() =>
            {
                ForwardParts.Run(2, _ => { otherInside.Set(); return 0; });
                otherDone.Set();
            });
            other.Start();
            Assert.True(otherDone.Wait(TimeSpan.FromSeconds(30)));
            return System.Runtime.GCSettings.LatencyMode;
        });
        Assert.True(otherInside.IsSet);
        Assert.All(modes, mode => Assert.Equal(System.Runtime.GCLatencyMode.NoGCRegion, mode));
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
    }

    [Fact]
    public void A_run_disturbed_by_collections_every_time_is_computed_three_times_and_then_accepted()
    {
        var calls = new int[2];
        var before = ForwardParts.Recomputed;
        var results = ForwardParts.Run(2, i =>
        {
            Interlocked.Increment(ref calls[i]);
            if (i == 0) GC.Collect();
            return i + 1;
        });
        Assert.Equal([1, 2], results);
        Assert.Equal([3, 3], calls);
        Assert.Equal(before + 2, ForwardParts.Recomputed);
    }
}
