using System.Diagnostics;
using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>Split patterns matched by code point (as Oniguruma does), the empty matches dropped, and the match timeout.</summary>
public sealed class CodePointRegexTests
{
    [Fact]
    public void An_astral_letter_is_one_letter_and_a_lone_surrogate_is_none()
    {
        var letters = new CodePointRegex(@"\p{L}+");
        Assert.Equal([(0, 4)], letters.Matches("x\U0001D400y"));           // MATHEMATICAL BOLD CAPITAL A is \p{L}
        Assert.Equal([(0, 1), (2, 1)], letters.Matches("a\uD835b"));        // a high surrogate alone is not
        Assert.Equal([(0, 3)], letters.Matches("abc\uD835"));               // ... nor at the very end
        Assert.Equal([(1, 1)], letters.Matches("\uDC00b"));                 // a low surrogate alone is not either
        Assert.Equal([(0, 2), (3, 2)], new CodePointRegex(@"\p{So}").Matches("😀a😀")); // symbols, other: both emoji
    }

    [Fact]
    public void Empty_matches_are_dropped_with_or_without_astral_text()
    {
        var maybe = new CodePointRegex("x*");
        Assert.Empty(maybe.Matches("ab"));
        Assert.Empty(maybe.Matches("a😀b"));
        Assert.Equal([(1, 2)], maybe.Matches("axx"));
        Assert.Equal([(3, 1)], maybe.Matches("😀ax"));
    }

    [Fact]
    public void A_pattern_that_backtracks_catastrophically_is_stopped_and_named_against_its_file()
    {
        var text = new string('a', 40) + "!";
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<TokenizerException>(() => new CodePointRegex("(a+)+$", "/m/tokenizer.json").Matches(text));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"stopped after {watch.Elapsed}");
        Assert.Equal("'/m/tokenizer.json': the split pattern (a+)+$ took longer than 1 s on a 41-character text (catastrophic backtracking?)", e.Message);
        Assert.Equal("/m/tokenizer.json", e.FilePath);

        // A long pattern is cut at 80 characters; without a file the tokenizer is named.
        var pattern = "(a+)+$|" + new string('z', 90);
        e = Assert.Throws<TokenizerException>(() => new CodePointRegex(pattern).Matches(text));
        Assert.Equal($"'tokenizer': the split pattern {pattern[..80]}… took longer than 1 s on a 41-character text (catastrophic backtracking?)", e.Message);
        Assert.Null(e.FilePath);
    }
}
