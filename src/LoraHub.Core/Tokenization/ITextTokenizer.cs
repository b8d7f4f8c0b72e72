namespace LoraHub.Core.Tokenization;

/// <summary>Turns text into model token ids and back. Implementations are immutable and thread-safe.</summary>
public interface ITextTokenizer
{
    /// <summary>Id used to pad batches (and, for T5, the decoder start token).</summary>
    int PadId { get; }

    /// <summary>End-of-sequence id.</summary>
    int EosId { get; }

    /// <summary>Beginning-of-sequence id, or null when the model has none (T5).</summary>
    int? BosId { get; }

    /// <summary>Id of the unknown token.</summary>
    int UnkId { get; }

    /// <summary>Number of ids this tokenizer can produce or name (ids are 0 .. VocabSize - 1).</summary>
    int VocabSize { get; }

    /// <summary>Encodes <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the model's end token is appended.</summary>
    Encoding Encode(string text, bool addSpecialTokens = true);

    /// <summary>Decodes ids to text; with <paramref name="skipSpecialTokens"/> special tokens (pad, eos, unk, sentinels) are dropped.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);
}
