using LoraHub.Core.Tokenization;

namespace LoraHub.Core.Models;

/// <summary>
/// How a model family turns a few-shot example into ids. It depends only on the family (config.json's model_type),
/// not on the weights, so the orchestrator can check examples without loading a model.
/// </summary>
public sealed class FewShotFormat
{
    /// <summary>The reference's convention: encoder input tokens(input) + eos, labels tokens(output) + eos.</summary>
    public static readonly FewShotFormat EncoderDecoder = new(decoderOnly: false);

    /// <summary>
    /// The decoder-only convention: bos + tokens(input) + tokens(output) + eos, input and output tokenized separately
    /// and the ids joined; the loss covers tokens(output) + eos only, and generation continues after bos + tokens(input).
    /// </summary>
    public static readonly FewShotFormat DecoderOnly = new(decoderOnly: true);

    private FewShotFormat(bool decoderOnly) => IsDecoderOnly = decoderOnly;

    public bool IsDecoderOnly { get; }

    /// <summary>The ids the model reads for an input (and generation starts from).</summary>
    public int[] PromptIds(ITextTokenizer tokenizer, string input) => IsDecoderOnly
        ? CausalExample.Prompt(tokenizer, input)
        : tokenizer.Encode(input).Ids.ToArray();

    /// <summary>The ids scored for an output: tokens(output) + eos in both families.</summary>
    public int[] TargetIds(ITextTokenizer tokenizer, string output) => IsDecoderOnly
        ? [.. tokenizer.Encode(output, addSpecialTokens: false).Ids, tokenizer.EosId]
        : tokenizer.Encode(output).Ids.ToArray();

    public TokenizedExample Tokenize(ITextTokenizer tokenizer, string input, string output) =>
        new(PromptIds(tokenizer, input), TargetIds(tokenizer, output));

    public override string ToString() => IsDecoderOnly ? "decoder-only" : "encoder-decoder";
}
