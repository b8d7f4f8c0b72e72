using Xunit;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// Every case of <see cref="HostileCases"/> through the real CLI: one line on stderr naming the file (or option) and
/// the cause, the expected exit code, under 5 s, and nothing written (the workspace is unchanged and --out absent).
/// </summary>
public sealed class HostileInputTests
{
    public static TheoryData<string> Keys()
    {
        var data = new TheoryData<string>();
        foreach (var c in HostileCases.All) data.Add(c.ToString());
        return data;
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void Refused_with_one_clear_line_and_nothing_written(string key)
    {
        var c = HostileCases.ByKey[key];
        using var w = new HostileWorkspace();
        c.Arrange(w);
        var before = w.Snapshot();
        var outcome = HostileCli.InProcess(c.Args(w));
        HostileCli.AssertClearError(outcome, c.ExitCode, c.Names, c.Cause);
        Assert.False(Directory.Exists(w.Out), $"--out was created: {outcome}");
        Assert.Equal(before, w.Snapshot());
    }

    [Fact]
    public void The_catalogue_covers_every_category_with_over_150_cases()
    {
        Assert.True(HostileCases.All.Count >= 150, $"{HostileCases.All.Count} cases");
        Assert.Equal(HostileCases.All.Count, HostileCases.ByKey.Count); // names are unique, so every case is its own test
        foreach (var category in new[] { "t5 config.json", "llama config.json", "adapter_config.json", "weights", "adapter_model.bin", "examples", "options", "tokenizer", "tokenizer.json" })
            Assert.Contains(HostileCases.All, c => c.Category == category);
    }
}
