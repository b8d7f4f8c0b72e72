using System.Diagnostics;
using LoraHub.Fuzz;
using Xunit;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// Replays every input the fuzzers found (tests/fuzz-corpus/TARGET/*, scripts/fuzz.sh) through the same targets
/// (fuzz/LoraHub.Fuzz/Targets.cs): each must end in a result or one of the typed errors, within 5 s. Inputs whose fix
/// belongs to work still open are listed in tests/fuzz-corpus/OPEN (file, tab, reason) and replayed by a skipped test.
/// </summary>
public sealed class FuzzCorpusTests
{
    private static string Corpus => Path.Combine(AppContext.BaseDirectory, "fuzz-corpus");

    private static HashSet<string> Open =>
        File.Exists(Path.Combine(Corpus, "OPEN"))
            ? File.ReadAllLines(Path.Combine(Corpus, "OPEN")).Where(l => l.Contains('\t')).Select(l => l.Split('\t')[0]).ToHashSet(StringComparer.Ordinal)
            : [];

    private static List<(string Target, string File)> Inputs(bool open)
    {
        var data = new List<(string, string)>();
        if (!Directory.Exists(Corpus)) return data;
        foreach (var dir in Directory.EnumerateDirectories(Corpus).Order(StringComparer.Ordinal))
        foreach (var file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
        {
            var name = $"{Path.GetFileName(dir)}/{Path.GetFileName(file)}";
            if (Open.Contains(name) == open) data.Add((Path.GetFileName(dir), Path.GetFileName(file)));
        }
        return data;
    }

    [Fact]
    public void Every_corpus_folder_is_a_fuzz_target_and_every_open_entry_a_file()
    {
        foreach (var dir in Directory.Exists(Corpus) ? Directory.EnumerateDirectories(Corpus) : [])
            Assert.Contains(Path.GetFileName(dir), Targets.All.Keys);
        foreach (var name in Open) Assert.True(File.Exists(Path.Combine(Corpus, name)), $"OPEN names {name}, which is not in the corpus");
    }

    // One test over the whole folder (a theory with no rows fails in xunit), naming every input that does not hold.
    [Fact]
    public void Every_fuzz_finding_now_ends_in_a_typed_error_within_5_seconds() => ReplayAll(Inputs(open: false));

    // A finding whose fix is still open is listed in OPEN and replayed here; none is open now.
    [Fact]
    public void Every_open_fuzz_finding_ends_in_a_typed_error() => ReplayAll(Inputs(open: true));

    private static void ReplayAll(List<(string Target, string File)> inputs)
    {
        var failures = new List<string>();
        foreach (var (target, file) in inputs)
        {
            try
            {
                Replay(target, file);
            }
            catch (Exception e)
            {
                failures.Add($"{target}/{file}: {e.Message.ReplaceLineEndings(" ")}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {inputs.Count} inputs:\n" + string.Join("\n", failures));
    }

    private static void Replay(string target, string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Corpus, target, file));
        var clock = Stopwatch.StartNew();
        var error = Targets.Try(Targets.All[target], bytes);
        Assert.True(error is null, $"{target}/{file}: {error?.GetType().Name}: {error?.Message}");
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 5);
    }
}
