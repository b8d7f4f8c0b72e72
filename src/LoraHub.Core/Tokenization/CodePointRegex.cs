using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace LoraHub.Core.Tokenization;

/// <summary>
/// A Hugging Face split pattern (written for Oniguruma, which matches code points) run by .NET Regex (which matches
/// UTF-16 units). On BMP text the two agree for the constructs of the Llama 3 / Qwen2 / GPT-2 patterns (\p{L}, \p{N},
/// \s = White_Space, (?i:...) on ASCII, lookahead). Outside the BMP they do not: .NET sees a surrogate pair as two
/// category-Cs units, so "𝐀" is no \p{L} and "😀abc" splits differently from Oniguruma's "[^\r\n\p{L}\p{N}]?\p{L}+".
/// So each astral code point is replaced, before matching, by one BMP stand-in character of the same Unicode general
/// category, and match positions are mapped back. Patterns that name astral characters literally are not handled.
/// </summary>
internal sealed class CodePointRegex
{
    /// <summary>One BMP character per UnicodeCategory (indexed by its value), none of them whitespace or ASCII.</summary>
    internal static readonly char[] StandIns =
    [
        '\uA640', // UppercaseLetter (Cyrillic capital zemlya)
        '\uA641', // LowercaseLetter
        '\u01C5', // TitlecaseLetter
        '\u02B0', // ModifierLetter
        '\u4E00', // OtherLetter
        '\u0300', // NonSpacingMark
        '\u0903', // SpacingCombiningMark
        '\u20DD', // EnclosingMark
        '\u0660', // DecimalDigitNumber
        '\u3007', // LetterNumber
        '\u00B2', // OtherNumber
        '\u3000', // SpaceSeparator (no astral code point has it)
        '\u2028', // LineSeparator (idem)
        '\u2029', // ParagraphSeparator (idem)
        '\u0080', // Control (idem)
        '\u2060', // Format
        '\uFFFD', // Surrogate (never: pairs are combined first)
        '\uE000', // PrivateUse
        '\u203F', // ConnectorPunctuation
        '\u2010', // DashPunctuation
        '\u2045', // OpenPunctuation
        '\u2046', // ClosePunctuation
        '\u00AB', // InitialQuotePunctuation
        '\u00BB', // FinalQuotePunctuation
        '\u203B', // OtherPunctuation
        '\u2200', // MathSymbol
        '\u20A0', // CurrencySymbol
        '\u02C2', // ModifierSymbol
        '\u2603', // OtherSymbol
        '\uFDD0', // OtherNotAssigned (a permanent noncharacter)
    ];

    private readonly Regex _regex;
    private readonly string? _source;

    /// <summary>
    /// Longest one match may run. Real split patterns match in microseconds; a pattern that backtracks catastrophically
    /// (from a hostile tokenizer.json) is stopped here and reported against its file.
    /// </summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    public CodePointRegex(string pattern, string? source = null)
    {
        Pattern = pattern;
        _source = source;
        _regex = new Regex(pattern, RegexOptions.CultureInvariant, MatchTimeout);
    }

    public string Pattern { get; }

    /// <summary>The non-empty matches (start, length) in <paramref name="text"/>, leftmost first and non-overlapping.</summary>
    public List<(int Start, int Length)> Matches(string text)
    {
        try
        {
            return MatchesUnguarded(text);
        }
        catch (RegexMatchTimeoutException e)
        {
            throw new TokenizerException(
                $"'{_source ?? "tokenizer"}': the split pattern {(Pattern.Length > 80 ? Pattern[..80] + "…" : Pattern)} took longer than {MatchTimeout.TotalSeconds:0.#} s on a {text.Length}-character text (catastrophic backtracking?)", e)
            { FilePath = _source };
        }
    }

    private List<(int Start, int Length)> MatchesUnguarded(string text)
    {
        var result = new List<(int, int)>();
        if (!HasSurrogate(text))
        {
            for (var m = _regex.Match(text); m.Success; m = m.NextMatch())
                if (m.Length > 0) result.Add((m.Index, m.Length));
            return result;
        }

        // position[i] is the index in text of the stand-in string's i-th character (plus the end).
        var standIn = new StringBuilder(text.Length);
        var position = new List<int>(text.Length + 1);
        for (var i = 0; i < text.Length; i++)
        {
            position.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                standIn.Append(StandIns[(int)CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]))]);
                i++;
            }
            else
            {
                standIn.Append(text[i]);
            }
        }
        position.Add(text.Length);
        for (var m = _regex.Match(standIn.ToString()); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            var start = position[m.Index];
            result.Add((start, position[m.Index + m.Length] - start));
        }
        return result;
    }

    private static bool HasSurrogate(string text)
    {
        foreach (var c in text)
            if (char.IsSurrogate(c)) return true;
        return false;
    }
}
