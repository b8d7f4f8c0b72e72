using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;

namespace LoraHub.Core.Composition;

/// <summary>
/// Turns examples into model ids in the model family's convention (<see cref="FewShotFormat"/>), truncating
/// over-long ones the way the reference does (max 2048 tokens).
/// </summary>
public static class ExampleTokenizer
{
    public const int DefaultMaxTokens = 2048;

    /// <summary>Tokenizes; warnings name each truncated example (1-based) and its original length.</summary>
    public static IReadOnlyList<TokenizedExample> Tokenize(FewShotFormat format, ITextTokenizer tokenizer, IReadOnlyList<Example> examples,
        out IReadOnlyList<string> warnings, int maxTokens = DefaultMaxTokens)
    {
        var notes = new List<string>();
        var result = new List<TokenizedExample>(examples.Count);
        for (var i = 0; i < examples.Count; i++)
        {
            var input = Truncate(format.PromptIds(tokenizer, examples[i].Input), maxTokens, tokenizer.EosId, out var inputLength);
            var labels = Truncate(format.TargetIds(tokenizer, examples[i].Output), maxTokens, tokenizer.EosId, out var labelLength);
            if (inputLength > maxTokens) notes.Add($"example {i + 1}: input has {inputLength} tokens, truncated to {maxTokens}");
            if (labelLength > maxTokens) notes.Add($"example {i + 1}: output has {labelLength} tokens, truncated to {maxTokens}");
            result.Add(new TokenizedExample(input, labels));
        }
        warnings = notes;
        return result;
    }

    /// <summary>
    /// Keeps the first maxTokens - 1 ids and the final EOS, as Hugging Face's truncation does (a prompt without a final
    /// eos, the decoder-only kind, keeps its first maxTokens ids).
    /// </summary>
    public static int[] Truncate(IReadOnlyList<int> ids, int maxTokens, int eosId, out int originalLength)
    {
        if (maxTokens < 2) throw new ArgumentOutOfRangeException(nameof(maxTokens), "at least 2 tokens");
        originalLength = ids.Count;
        if (ids.Count <= maxTokens) return ids.ToArray();
        var kept = ids.Take(maxTokens - 1).ToList();
        kept.Add(ids[^1] == eosId ? eosId : ids[maxTokens - 1]);
        return kept.ToArray();
    }
}
