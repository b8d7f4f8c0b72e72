using System.Diagnostics;
using LoraHub.IO;
using Xunit;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// The publish protocol of output folders (FolderPublish, used by compose --out, train --out and the local hub) in
/// process: racing writers, replacing, leftovers of killed writers, and unusable targets.
/// </summary>
public sealed class OutputPublishTests : IDisposable
{
    private readonly Fixtures.TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string? Occupied(string d) => Directory.EnumerateFileSystemEntries(d).Any() ? $"{d} is not empty; use --force to replace it" : null;

    /// <summary>Writes a folder whose files all name the writer: a mix of two writers is visible.</summary>
    private static Action<string> Writer(int id, int files = 4) => staging =>
    {
        for (var f = 0; f < files; f++) File.WriteAllText(Path.Combine(staging, $"part-{f}.txt"), $"writer {id}");
        File.WriteAllText(Path.Combine(staging, "lorahub.json"), $"{{\"writer\": {id}}}");
    };

    private static int WholeWriter(string dir)
    {
        var texts = Directory.GetFiles(dir, "part-*.txt").Select(File.ReadAllText).Distinct().ToList();
        Assert.Single(texts);
        Assert.Equal(4, Directory.GetFiles(dir, "part-*.txt").Length);
        var id = int.Parse(texts[0]["writer ".Length..]);
        Assert.Equal($"{{\"writer\": {id}}}", File.ReadAllText(Path.Combine(dir, "lorahub.json")));
        return id;
    }

    private void AssertNoLeftovers() =>
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_dir.Path), p => Path.GetFileName(p).StartsWith('.'));

    public static TheoryData<int> Tries => new(Enumerable.Range(0, 20));

    [Theory]
    [MemberData(nameof(Tries))]
    public async Task Eight_racing_writers_without_replace_end_with_one_folder_and_seven_conflicts(int attempt)
    {
        var target = _dir[$"out-{attempt}"];
        using var start = new Barrier(8);
        var outcomes = Enumerable.Range(0, 8).Select(id => Task.Run(() =>
        {
            start.SignalAndWait();
            try
            {
                FolderPublish.Publish(target, replace: false, Writer(id), Occupied);
                return (Id: id, Error: (Exception?)null);
            }
            catch (Exception e)
            {
                return (Id: id, Error: e);
            }
        })).ToArray();
        var results = await Task.WhenAll(outcomes);
        var winner = Assert.Single(results, r => r.Error is null);
        Assert.All(results.Where(r => r.Error is not null), r =>
        {
            Assert.IsType<PublishConflictException>(r.Error);
            Assert.Contains("use --force", r.Error!.Message);
            Assert.Contains("nothing was written", r.Error.Message);
        });
        Assert.Equal(winner.Id, WholeWriter(target));
        AssertNoLeftovers();
    }

    [Fact]
    public async Task Eight_racing_replacers_leave_one_whole_folder_and_no_leftovers()
    {
        var target = _dir["out"];
        FolderPublish.Publish(target, replace: false, Writer(100), Occupied);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            using var start = new Barrier(8);
            await Task.WhenAll(Enumerable.Range(0, 8).Select(id => Task.Run(() =>
            {
                start.SignalAndWait();
                FolderPublish.Publish(target, replace: true, Writer(id), Occupied);
            })));
            Assert.InRange(WholeWriter(target), 0, 7);
            AssertNoLeftovers();
        }
    }

    [Fact]
    public async Task A_replace_swaps_atomically_and_a_reader_never_sees_the_target_missing()
    {
        var target = _dir["out"];
        FolderPublish.Publish(target, replace: false, Writer(0), Occupied);
        using var stop = new CancellationTokenSource();
        var missing = 0;
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
                if (!File.Exists(Path.Combine(target, "lorahub.json"))) Interlocked.Increment(ref missing);
        });
        for (var i = 1; i <= 30; i++) FolderPublish.Publish(target, replace: true, Writer(i), Occupied);
        stop.Cancel();
        await reader;
        Assert.Equal(0, missing);
        Assert.Equal(30, WholeWriter(target));
    }

    [Theory]
    [InlineData("locked")]
    [InlineData("staged")]
    [InlineData("moved-aside")]
    [InlineData("exchanged")]
    public void A_writer_stopped_at_any_step_leaves_the_old_folder_or_the_new_one_and_the_next_writer_cleans_up(string step)
    {
        var target = _dir["out"];
        FolderPublish.Publish(target, replace: false, Writer(1), Occupied);
        // Without the exchange a replace takes two renames; stopping between them is the one moment with no target.
        var fallback = step == "moved-aside";
        try
        {
            FolderPublish.DisableExchange = fallback;
            var e = Assert.Throws<InvalidOperationException>(() => FolderPublish.Publish(target, replace: true, Writer(2), Occupied,
                s => { if (s == step) throw new InvalidOperationException("stopped"); }));
            Assert.Equal("stopped", e.Message);
        }
        finally
        {
            FolderPublish.DisableExchange = false;
        }
        if (fallback)
        {
            Assert.False(Directory.Exists(target));
            Assert.Single(Directory.GetDirectories(_dir.Path, ".out.replaced-*"));
            // The next writer (or the check before a search) puts the old folder back first.
            FolderPublish.Check(target, replace: true, Occupied);
        }
        Assert.Equal(step == "exchanged" ? 2 : 1, WholeWriter(target));
        FolderPublish.Check(target, replace: true, Occupied);
        AssertNoLeftovers();
    }

    [Fact]
    public void Leftovers_of_killed_writers_are_deleted_and_unrelated_hidden_folders_kept()
    {
        var target = _dir["out"];
        FolderPublish.Publish(target, replace: false, Writer(1), Occupied);
        foreach (var name in new[] { ".out.writing-abc", ".out.replaced-def", ".out.deleting-123" })
        {
            Directory.CreateDirectory(Path.Combine(_dir.Path, name, "sub"));
            File.WriteAllText(Path.Combine(_dir.Path, name, "sub", "x"), "left over");
        }
        Directory.CreateDirectory(_dir[".other.writing-x"]);
        Directory.CreateDirectory(_dir[".outer.writing-x"]);
        FolderPublish.Check(target, replace: true, Occupied);
        var hidden = Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName).Where(n => n!.StartsWith('.')).Order().ToList();
        Assert.Equal([".other.writing-x", ".outer.writing-x"], hidden);
        Assert.Equal(1, WholeWriter(target));
    }

    [Fact]
    public void A_target_lost_between_two_renames_is_restored_from_its_replaced_folder()
    {
        var target = _dir["out"];
        var aside = _dir[".out.replaced-0123"];
        Directory.CreateDirectory(aside);
        Writer(7)(aside);
        Directory.CreateDirectory(_dir[".out.writing-4567"]);
        var e = Assert.Throws<PublishConflictException>(() => FolderPublish.Check(target, replace: false, Occupied));
        Assert.Contains("not empty", e.Message);
        Assert.Equal(7, WholeWriter(target));
        AssertNoLeftovers();
    }

    public static TheoryData<string, string> Unusable => new()
    {
        { "file", "is a file, not a folder" },
        { "under-file", "is a file, not a folder" },
        { "dangling-link", "symbolic link that does not lead to a folder" },
        { "link-to-file", "symbolic link that does not lead to a folder" },
        { "fifo", "special file" },
        { "occupied", "use --force" },
    };

    [Theory]
    [MemberData(nameof(Unusable))]
    public void An_unusable_target_is_refused_before_any_work_and_nothing_is_written(string kind, string expected)
    {
        var target = _dir["out"];
        switch (kind)
        {
            case "file": File.WriteAllText(target, "precious"); break;
            case "under-file": File.WriteAllText(_dir["f"], "precious"); target = Path.Combine(_dir["f"], "out"); break;
            case "dangling-link": File.CreateSymbolicLink(target, _dir["nowhere"]); break;
            case "link-to-file": File.WriteAllText(_dir["f"], "precious"); File.CreateSymbolicLink(target, _dir["f"]); break;
            case "fifo": Process.Start("mkfifo", target)!.WaitForExit(); break;
            case "occupied": Directory.CreateDirectory(target); File.WriteAllText(Path.Combine(target, "mine.txt"), "precious"); break;
        }
        var before = Snapshot();
        var e = Assert.ThrowsAny<IOException>(() => FolderPublish.Check(target, replace: false, Occupied));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var filled = false;
        Assert.ThrowsAny<IOException>(() => FolderPublish.Publish(target, replace: false, _ => filled = true, Occupied));
        Assert.False(filled);
        Assert.Equal(before, Snapshot());
    }

    [Fact]
    public void A_target_that_is_a_link_to_a_folder_is_written_through_the_link()
    {
        var real = _dir["real"];
        Directory.CreateDirectory(real);
        Directory.CreateSymbolicLink(_dir["out"], real);
        FolderPublish.Publish(_dir["out"], replace: false, Writer(3), Occupied);
        Assert.Equal(3, WholeWriter(real));
        Assert.NotNull(new DirectoryInfo(_dir["out"]).LinkTarget);
    }

    [Fact]
    public void An_empty_existing_folder_is_filled_without_force()
    {
        Directory.CreateDirectory(_dir["out"]);
        FolderPublish.Publish(_dir["out"], replace: false, Writer(4), Occupied);
        Assert.Equal(4, WholeWriter(_dir["out"]));
        AssertNoLeftovers();
    }

    [Fact]
    public void A_writer_that_fails_while_writing_leaves_the_old_folder_and_no_leftovers()
    {
        FolderPublish.Publish(_dir["out"], replace: false, Writer(5), Occupied);
        Assert.Throws<IOException>(() => FolderPublish.Publish(_dir["out"], replace: true, s =>
        {
            Writer(6)(s);
            throw new IOException("disk full");
        }, Occupied));
        Assert.Equal(5, WholeWriter(_dir["out"]));
        AssertNoLeftovers();
    }

    private List<string> Snapshot() =>
        Directory.GetFileSystemEntries(_dir.Path, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(p => Path.GetRelativePath(_dir.Path, p)).Order(StringComparer.Ordinal).ToList();
}
