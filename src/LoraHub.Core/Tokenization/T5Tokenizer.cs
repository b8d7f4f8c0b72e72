using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace LoraHub.Core.Tokenization;

/// <summary>
/// The T5 tokenizer: a SentencePiece Unigram model (spiece.model, run by Microsoft.ML.Tokenizers) plus the
/// Hugging Face T5Tokenizer conventions: EOS appended, no BOS, and 100 sentinel tokens <c>&lt;extra_id_N&gt;</c>
/// with id <c>pieces + 99 - N</c> (32099 - N for T5's 32000-piece model).
/// </summary>
/// <remarks>
/// Ids match the SentencePiece library (0.1.97) plus the Hugging Face (legacy, slow) T5Tokenizer for special tokens
/// written in the text: the text is split on <c>&lt;/s&gt;</c>, <c>&lt;pad&gt;</c>, <c>&lt;unk&gt;</c> and
/// <c>&lt;extra_id_0..99&gt;</c>, and each piece between them is encoded by SentencePiece on its own.
/// Instances are immutable and thread-safe; <see cref="Load"/> caches them per file.
/// </remarks>
public sealed class T5Tokenizer : ITextTokenizer
{
    /// <summary>Number of sentinel tokens <c>&lt;extra_id_0&gt;</c> .. <c>&lt;extra_id_99&gt;</c> (HF extra_ids).</summary>
    public const int ExtraIdCount = 100;

    /// <summary>The file name looked for when <see cref="Load"/> is given a directory.</summary>
    public const string ModelFileName = "spiece.model";

    private const char SpaceSymbol = '\u2581'; // "▁", SentencePiece's escaped space.
    private const string UnknownSurface = " \u2047 "; // SentencePiece's default unk_surface (" ⁇ ").
    private const string ExtraIdPrefix = "<extra_id_";

    private static readonly ConcurrentDictionary<string, CacheEntry> Cache = new(StringComparer.Ordinal);

    /// <summary>
    /// The characters that SentencePiece's nmt_nfkc normalization deletes: U+0001..U+0008, U+000B, U+000E..U+001F,
    /// U+007F, U+008F and U+009F (tab, line feed, form feed and carriage return become spaces instead). The precompiled
    /// charsmap maps them to the empty string, but Microsoft.ML.Tokenizers 2.0.1 does not apply empty replacements and
    /// leaves them in the text, where each became an extra &lt;unk&gt;. These 30 are exactly the code points on which
    /// the two differed when every code point (between "x" and "y") was compared with SentencePiece 0.1.97.
    /// </summary>
    private static readonly SearchValues<char> NmtDeletedChars = SearchValues.Create(
        "\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000B\u000E\u000F" +
        "\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001A\u001B\u001C\u001D\u001E\u001F" +
        "\u007F\u008F\u009F");

    private readonly SentencePieceTokenizer _sentencePiece;
    private readonly string[] _pieces;
    private readonly SentencePieceType[] _types;
    private readonly string[] _extraIdTokens;
    private readonly (string Text, int Id)[] _namedSpecialTokens;
    private readonly bool _deleteNmtControls;

    private T5Tokenizer(string modelPath, SentencePieceModelFile model, SentencePieceTokenizer sentencePiece)
    {
        ModelPath = modelPath;
        _sentencePiece = sentencePiece;
        _pieces = model.Pieces.ToArray();
        _types = model.Types.ToArray();
        PadId = model.PadId;
        EosId = model.EosId;
        UnkId = model.UnkId;
        VocabSize = _pieces.Length + ExtraIdCount;
        _deleteNmtControls = model.NormalizerName?.StartsWith("nmt_nfkc", StringComparison.Ordinal) == true;

        _extraIdTokens = new string[ExtraIdCount];
        for (int n = 0; n < ExtraIdCount; n++)
        {
            _extraIdTokens[n] = ExtraIdPrefix + n.ToString(CultureInfo.InvariantCulture) + ">";
        }

        // Special tokens written in the text map to their ids, as in HF (where they are all_special_tokens).
        _namedSpecialTokens = [(_pieces[EosId], EosId), (_pieces[PadId], PadId), (_pieces[UnkId], UnkId)];
    }

    /// <summary>The spiece.model file this tokenizer was loaded from.</summary>
    public string ModelPath { get; }

    /// <inheritdoc />
    public int PadId { get; }

    /// <inheritdoc />
    public int EosId { get; }

    /// <inheritdoc />
    /// <remarks>T5 has no beginning-of-sequence token (its spiece.model has bos_id = -1).</remarks>
    public int? BosId => null;

    /// <inheritdoc />
    public int UnkId { get; }

    /// <summary>
    /// SentencePiece pieces plus the 100 sentinels: 32100 for T5, the HF tokenizer's vocab_size. The T5 checkpoints'
    /// embedding has 32128 rows; ids 32100..32127 name no token and are rejected by <see cref="Decode"/>.
    /// </summary>
    public int VocabSize { get; }

    /// <summary>Number of pieces in the SentencePiece model (32000 for T5).</summary>
    public int PieceCount => _pieces.Length;

    /// <summary>
    /// Loads (or returns the cached) tokenizer for a spiece.model file, or for the spiece.model inside a directory.
    /// The cache is keyed by full path, size and last write time, so a replaced file is read again.
    /// </summary>
    /// <exception cref="TokenizerException">The file is missing, unreadable or not a T5 SentencePiece model.</exception>
    public static T5Tokenizer Load(string pathToSpieceModelOrModelDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pathToSpieceModelOrModelDir);

        string path = Path.GetFullPath(pathToSpieceModelOrModelDir);
        if (Directory.Exists(path))
        {
            string inDirectory = Path.Combine(path, ModelFileName);
            if (!File.Exists(inDirectory))
            {
                throw new TokenizerException($"Tokenizer model '{inDirectory}' not found: the directory '{path}' has no {ModelFileName}.")
                {
                    FilePath = inDirectory,
                };
            }

            path = inDirectory;
        }
        else if (!File.Exists(path))
        {
            throw new TokenizerException($"Tokenizer model '{path}' not found.") { FilePath = path };
        }

        (long Length, long Ticks) stamp;
        try
        {
            var info = new FileInfo(path);
            stamp = (info.Length, info.LastWriteTimeUtc.Ticks);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerException($"Tokenizer model '{path}' could not be read: {e.Message}", e) { FilePath = path };
        }

        CacheEntry entry = Cache.AddOrUpdate(
            path,
            static (key, s) => new CacheEntry(s, new Lazy<T5Tokenizer>(() => Create(key))),
            static (key, existing, s) => existing.Stamp == s ? existing : new CacheEntry(s, new Lazy<T5Tokenizer>(() => Create(key))),
            stamp);

        try
        {
            return entry.Tokenizer.Value;
        }
        catch
        {
            // Lazy caches its exception; drop the entry so that a fixed file can be loaded later.
            Cache.TryRemove(new KeyValuePair<string, CacheEntry>(path, entry));
            throw;
        }
    }

    /// <summary>
    /// Builds a tokenizer from the bytes of a spiece.model, bypassing the file cache. <paramref name="sourceName"/>
    /// names the model in error messages.
    /// </summary>
    /// <exception cref="TokenizerException">The bytes are not a T5 SentencePiece model.</exception>
    public static T5Tokenizer FromBytes(byte[] modelBytes, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(modelBytes);
        ArgumentNullException.ThrowIfNull(sourceName);
        return Build(modelBytes, sourceName);
    }

    /// <inheritdoc />
    public Encoding Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);

        var ids = new List<int>(text.Length / 3 + 2);
        var pieces = new List<string>(ids.Capacity);

        int segmentStart = 0;
        int at = text.IndexOf('<');
        while (at >= 0)
        {
            if (TryMatchSpecialToken(text.AsSpan(at), out int id, out int length))
            {
                EncodeSegment(text.AsSpan(segmentStart, at - segmentStart), ids, pieces);
                ids.Add(id);
                pieces.Add(TokenText(id));
                segmentStart = at + length;
                at = segmentStart < text.Length ? text.IndexOf('<', segmentStart) : -1;
            }
            else
            {
                at = at + 1 < text.Length ? text.IndexOf('<', at + 1) : -1;
            }
        }

        EncodeSegment(text.AsSpan(segmentStart), ids, pieces);

        // As HF T5Tokenizer._add_eos_if_not_present: no second EOS when the text already ends with "</s>".
        if (addSpecialTokens && (ids.Count == 0 || ids[^1] != EosId))
        {
            ids.Add(EosId);
            pieces.Add(_pieces[EosId]);
        }

        return new Encoding(ids, pieces);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Follows HF's slow T5Tokenizer: special ids are dropped when skipped; otherwise each is written as its text,
    /// with a space before a run of special tokens, and the runs of ordinary pieces between them are decoded as
    /// SentencePiece does. The result is trimmed. No clean-up of spaces before punctuation is done.
    /// </remarks>
    /// <exception cref="ArgumentException">An id is negative or not below <see cref="VocabSize"/>.</exception>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);

        var output = new StringBuilder();
        var run = new StringBuilder();
        bool runStarted = false;
        bool previousWasSpecial = false;
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)VocabSize)
            {
                throw new ArgumentException(
                    $"Token id {id} is outside the T5 vocabulary (valid ids are 0..{VocabSize - 1}).", nameof(ids));
            }

            if (IsSpecial(id))
            {
                if (skipSpecialTokens)
                {
                    continue;
                }

                if (!previousWasSpecial)
                {
                    output.Append(' ');
                }

                output.Append(run).Append(TokenText(id));
                run.Clear();
                runStarted = false;
                previousWasSpecial = true;
            }
            else
            {
                AppendPiece(run, id, ref runStarted);
                previousWasSpecial = false;
            }
        }

        output.Append(run);
        return output.ToString().Trim();
    }

    /// <summary>The text of a token id: its SentencePiece piece, or <c>&lt;extra_id_N&gt;</c> for a sentinel.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not below <see cref="VocabSize"/>.</exception>
    public string TokenText(int id)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, VocabSize);
        return id < _pieces.Length ? _pieces[id] : _extraIdTokens[VocabSize - 1 - id];
    }

    /// <summary>The id of <c>&lt;extra_id_N&gt;</c>: 32099 - N for T5.</summary>
    public int ExtraId(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(n, ExtraIdCount);
        return VocabSize - 1 - n;
    }

    /// <summary>True for ids HF counts as special: pad, eos, unk and the sentinels.</summary>
    public bool IsSpecial(int id) => id == PadId || id == EosId || id == UnkId || (id >= _pieces.Length && id < VocabSize);

    private static T5Tokenizer Create(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerException($"Tokenizer model '{path}' could not be read: {e.Message}", e) { FilePath = path };
        }

        return Build(bytes, path);
    }

    private static T5Tokenizer Build(byte[] bytes, string path)
    {
        SentencePieceModelFile model = SentencePieceModelFile.Read(bytes, path);
        if (model.ModelType != 1)
        {
            throw new TokenizerException(
                $"'{path}' is a SentencePiece model of type {model.ModelType}; T5 needs a Unigram model (type 1).") { FilePath = path };
        }

        if (model.PadId < 0 || model.EosId < 0)
        {
            throw new TokenizerException(
                $"'{path}' is not a T5 SentencePiece model: it has no pad (pad_id = {model.PadId}) or no eos (eos_id = {model.EosId}).")
            {
                FilePath = path,
            };
        }

        SentencePieceTokenizer sentencePiece;
        try
        {
            using var stream = new MemoryStream(model.TokenizerBytes, writable: false);
            sentencePiece = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new TokenizerException($"'{path}' could not be loaded as a SentencePiece model: {e.Message}", e) { FilePath = path };
        }

        if (sentencePiece.UnknownId != model.UnkId || sentencePiece.EndOfSentenceId != model.EosId)
        {
            throw new TokenizerException(
                $"'{path}': Microsoft.ML.Tokenizers read unk/eos ids {sentencePiece.UnknownId}/{sentencePiece.EndOfSentenceId}, the file says {model.UnkId}/{model.EosId}.")
            {
                FilePath = path,
            };
        }

        return new T5Tokenizer(path, model, sentencePiece);
    }

    private bool TryMatchSpecialToken(ReadOnlySpan<char> text, out int id, out int length)
    {
        // text starts with '<'.
        if (text.StartsWith(ExtraIdPrefix, StringComparison.Ordinal))
        {
            ReadOnlySpan<char> rest = text[ExtraIdPrefix.Length..];
            int digits = 0;
            while (digits < rest.Length && digits < 3 && char.IsAsciiDigit(rest[digits]))
            {
                digits++;
            }

            // "<extra_id_N>" with N in 0..99 written without leading zeros, as HF's token strings are.
            bool wellFormed = digits is 1 or 2 && digits < rest.Length && rest[digits] == '>' && !(digits == 2 && rest[0] == '0');
            if (wellFormed)
            {
                int n = int.Parse(rest[..digits], NumberStyles.None, CultureInfo.InvariantCulture);
                id = ExtraId(n);
                length = ExtraIdPrefix.Length + digits + 1;
                return true;
            }
        }

        foreach ((string token, int tokenId) in _namedSpecialTokens)
        {
            if (text.StartsWith(token, StringComparison.Ordinal))
            {
                id = tokenId;
                length = token.Length;
                return true;
            }
        }

        id = -1;
        length = 0;
        return false;
    }

    private void EncodeSegment(ReadOnlySpan<char> segment, List<int> ids, List<string> pieces)
    {
        if (_deleteNmtControls && segment.ContainsAny(NmtDeletedChars))
        {
            segment = RemoveNmtDeletedChars(segment);
        }

        if (segment.IsEmpty)
        {
            return;
        }

        IReadOnlyList<EncodedToken> tokens = _sentencePiece.EncodeToTokens(
            segment,
            out _,
            addBeginningOfSentence: false,
            addEndOfSentence: false,
            considerPreTokenization: true,
            considerNormalization: true);

        bool previousWasUnknown = false;
        foreach (EncodedToken token in tokens)
        {
            bool unknown = token.Id == UnkId;

            // SentencePiece merges consecutive unknown characters into one <unk> whose piece is their text
            // ("日本語" -> one id 2); Microsoft.ML.Tokenizers emits one <unk> per character. Merge as SentencePiece does.
            if (unknown && previousWasUnknown)
            {
                pieces[^1] += token.Value;
                continue;
            }

            ids.Add(token.Id);
            pieces.Add(token.Value);
            previousWasUnknown = unknown;
        }
    }

    private static string RemoveNmtDeletedChars(ReadOnlySpan<char> segment)
    {
        var kept = new StringBuilder(segment.Length);
        foreach (char c in segment)
        {
            if (!NmtDeletedChars.Contains(c))
            {
                kept.Append(c);
            }
        }

        return kept.ToString();
    }

    /// <summary>SentencePiece's decoding of one ordinary piece: "▁" becomes a space, the first leading "▁" is dropped.</summary>
    private void AppendPiece(StringBuilder run, int id, ref bool runStarted)
    {
        SentencePieceType type = _types[id];
        if (type == SentencePieceType.Control)
        {
            return;
        }

        if (type == SentencePieceType.Unknown)
        {
            run.Append(UnknownSurface);
            runStarted = true;
            return;
        }

        ReadOnlySpan<char> piece = _pieces[id];

        // Like SentencePiece, strip the dummy-prefix "▁" from every piece while nothing has been written yet.
        if (!runStarted && piece.Length > 0 && piece[0] == SpaceSymbol)
        {
            piece = piece[1..];
        }

        foreach (char c in piece)
        {
            run.Append(c == SpaceSymbol ? ' ' : c);
        }

        runStarted |= run.Length > 0;
    }

    private sealed record CacheEntry((long Length, long Ticks) Stamp, Lazy<T5Tokenizer> Tokenizer);
}
