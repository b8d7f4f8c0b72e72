using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace LoraHub.Core.Tokenization;

/// <summary>
/// The Llama 2 / Mistral tokenizer: a SentencePiece BPE model with byte fallback (tokenizer.model, run by
/// Microsoft.ML.Tokenizers) plus the conventions of Hugging Face's slow LlamaTokenizer (legacy mode): bos prepended
/// (add_bos_token, default true), no eos (add_eos_token, default false), and the special tokens bos, eos and unk
/// written in the text split it, each piece between them encoded by SentencePiece on its own (with its dummy prefix).
/// </summary>
/// <remarks>
/// bos, eos and pad come from the model folder: tokenizer_config.json, then special_tokens_map.json (token strings,
/// looked up in the piece table), then config.json (ids), then the SentencePiece model's own ids. Llama has no pad
/// token; <see cref="PadId"/> is then 0 (&lt;unk&gt;), as batched scoring pads (padding is masked, so it never counts).
/// Implements <see cref="ITextTokenizer"/>: addSpecialTokens means "add bos (and eos if add_eos_token)", the
/// same meaning the flag has in Hugging Face for this tokenizer.
/// </remarks>
public sealed class LlamaTokenizer : ITextTokenizer
{
    public const string ModelFileName = "tokenizer.model";

    private const char SpaceSymbol = '\u2581';
    private const string UnknownSurface = " \u2047 ";

    private static readonly ConcurrentDictionary<string, (long Length, long Ticks, LlamaTokenizer Tokenizer)> Cache = new(StringComparer.Ordinal);

    private readonly SentencePieceTokenizer _sentencePiece;
    private readonly string[] _pieces;
    private readonly SentencePieceType[] _types;
    private readonly Dictionary<string, int> _pieceIds;
    private readonly (string Text, int Id)[] _specialTokens;
    private readonly HashSet<int> _specialIds;

    private LlamaTokenizer(string modelPath, SentencePieceModelFile model, SentencePieceTokenizer sentencePiece, Settings settings)
    {
        ModelPath = modelPath;
        _sentencePiece = sentencePiece;
        _pieces = model.Pieces.ToArray();
        _types = model.Types.ToArray();
        _pieceIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < _pieces.Length; i++) _pieceIds.TryAdd(_pieces[i], i);
        UnkId = model.UnkId;
        BosToken = settings.BosId ?? (model.BosId >= 0 ? model.BosId : null);
        EosId = settings.EosId ?? (model.EosId >= 0 ? model.EosId
            : throw new TokenizerException($"'{modelPath}': no eos token in the model or its folder's files") { FilePath = modelPath });
        PadId = settings.PadId ?? (model.PadId >= 0 ? model.PadId : 0);
        AddBos = settings.AddBos && BosToken is not null;
        AddEos = settings.AddEos;
        var specials = new List<int> { EosId, UnkId };
        if (BosToken is int b) specials.Add(b);
        if (settings.PadId is int p) specials.Add(p);
        _specialIds = [.. specials];
        // Longest first so "</s>" is tried before "<s>" could match inside something longer.
        _specialTokens = _specialIds.Select(id => (_pieces[id], id)).OrderByDescending(t => t.Item1.Length).ToArray();
    }

    /// <summary>The tokenizer.model file this tokenizer was loaded from.</summary>
    public string ModelPath { get; }

    public int PadId { get; }
    public int EosId { get; }
    public int UnkId { get; }

    /// <summary>The bos id when texts start with it (add_bos_token), else null.</summary>
    public int? BosId => AddBos ? BosToken : null;

    /// <summary>The model's bos id, whether or not encoding adds it.</summary>
    public int? BosToken { get; }

    public bool AddBos { get; }
    public bool AddEos { get; }

    /// <summary>Number of SentencePiece pieces (32000 for Llama 2).</summary>
    public int VocabSize => _pieces.Length;

    /// <summary>Loads the tokenizer of a model folder (or a tokenizer.model file and the settings next to it); cached per file.</summary>
    /// <exception cref="TokenizerException">The file is missing, unreadable or not a SentencePiece BPE model.</exception>
    public static LlamaTokenizer Load(string pathToModelOrDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pathToModelOrDirectory);
        var path = Path.GetFullPath(pathToModelOrDirectory);
        if (Directory.Exists(path)) path = Path.Combine(path, ModelFileName);
        if (!File.Exists(path)) throw new TokenizerException($"Tokenizer model '{path}' not found.") { FilePath = path };
        var info = new FileInfo(path);
        if (Cache.TryGetValue(path, out var hit) && hit.Length == info.Length && hit.Ticks == info.LastWriteTimeUtc.Ticks)
            return hit.Tokenizer;
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerException($"Tokenizer model '{path}' could not be read: {e.Message}", e) { FilePath = path };
        }
        var model = SentencePieceModelFile.Read(bytes, path);
        var tokenizer = Build(path, model, Settings.Read(Path.GetDirectoryName(path)!, model));
        Cache[path] = (info.Length, info.LastWriteTimeUtc.Ticks, tokenizer);
        return tokenizer;
    }

    private static LlamaTokenizer Build(string path, SentencePieceModelFile model, Settings settings)
    {
        if (model.ModelType != 2)
            throw new TokenizerException($"'{path}' is a SentencePiece model of type {model.ModelType}; the Llama tokenizer needs a BPE model (type 2).") { FilePath = path };
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
        return new LlamaTokenizer(path, model, sentencePiece, settings);
    }

    /// <summary>Encodes text: [bos] + SentencePiece ids (+ [eos] when add_eos_token) with addSpecialTokens, else the bare ids.</summary>
    public Encoding Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        var pieces = new List<string>(ids.Capacity);
        if (addSpecialTokens && AddBos)
        {
            ids.Add(BosToken!.Value);
            pieces.Add(_pieces[BosToken.Value]);
        }

        var start = 0;
        var at = text.IndexOf('<');
        while (at >= 0)
        {
            var matched = _specialTokens.FirstOrDefault(t => text.AsSpan(at).StartsWith(t.Text, StringComparison.Ordinal));
            if (matched.Text is not null)
            {
                EncodeSegment(text.AsSpan(start, at - start), ids, pieces);
                ids.Add(matched.Id);
                pieces.Add(matched.Text);
                start = at + matched.Text.Length;
                at = start < text.Length ? text.IndexOf('<', start) : -1;
            }
            else
            {
                at = at + 1 < text.Length ? text.IndexOf('<', at + 1) : -1;
            }
        }
        EncodeSegment(text.AsSpan(start), ids, pieces);

        if (addSpecialTokens && AddEos)
        {
            ids.Add(EosId);
            pieces.Add(_pieces[EosId]);
        }
        return new Encoding(ids, pieces);
    }

    private void EncodeSegment(ReadOnlySpan<char> segment, List<int> ids, List<string> pieces)
    {
        if (segment.IsEmpty) return;
        var tokens = _sentencePiece.EncodeToTokens(segment, out _, addBeginningOfSentence: false, addEndOfSentence: false,
            considerPreTokenization: true, considerNormalization: true);
        foreach (var token in tokens)
        {
            ids.Add(token.Id);
            pieces.Add(_pieces[token.Id]);
        }
    }

    /// <summary>
    /// Decodes as Hugging Face's slow LlamaTokenizer (legacy) does: special ids dropped when skipped, else written as
    /// their text (a space before a special token that follows ordinary ones); runs of ordinary pieces decoded as
    /// SentencePiece does (byte pieces joined into UTF-8, "▁" as space, the run's first leading "▁" dropped), and
    /// one more leading "▁" dropped from the very first piece (HF removes the prefix space it assumes it added).
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = new List<int>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_pieces.Length)
                throw new ArgumentException($"Token id {id} is outside the vocabulary (valid ids are 0..{_pieces.Length - 1}).", nameof(ids));
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            kept.Add(id);
        }
        var output = new StringBuilder();
        var run = new List<string>();
        var previousWasSpecial = false;
        for (var i = 0; i < kept.Count; i++)
        {
            var piece = _pieces[kept[i]];
            if (i == 0 && piece.Length > 0 && piece[0] == SpaceSymbol) piece = piece[1..];
            if (_specialIds.Contains(kept[i]))
            {
                if (!previousWasSpecial && i != 0) output.Append(' ');
                output.Append(DecodePieces(run)).Append(piece);
                run.Clear();
                previousWasSpecial = true;
            }
            else
            {
                run.Add(piece);
                previousWasSpecial = false;
            }
        }
        output.Append(DecodePieces(run));
        return output.ToString();
    }

    /// <summary>SentencePiece's DecodePieces for ordinary pieces.</summary>
    private string DecodePieces(List<string> pieces)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        var prefixConsumed = false;
        void FlushBytes()
        {
            if (bytes.Count == 0) return;
            text.Append(System.Text.Encoding.UTF8.GetString(bytes.ToArray()));
            bytes.Clear();
        }
        foreach (var piece in pieces)
        {
            var id = _pieceIds.GetValueOrDefault(piece, -1);
            var type = id >= 0 ? _types[id] : SentencePieceType.Normal;
            if (type == SentencePieceType.Byte && piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal))
            {
                bytes.Add(Convert.ToByte(piece[3..5], 16));
                continue;
            }
            FlushBytes();
            if (type == SentencePieceType.Control) continue;
            if (type == SentencePieceType.Unknown)
            {
                text.Append(UnknownSurface);
                continue;
            }
            // SentencePiece drops the dummy-prefix "▁" once: from the first piece that starts with one, while nothing is written.
            var span = piece.AsSpan();
            if (!prefixConsumed && text.Length == 0 && span.Length > 0 && span[0] == SpaceSymbol)
            {
                span = span[1..];
                prefixConsumed = true;
            }
            foreach (var c in span) text.Append(c == SpaceSymbol ? ' ' : c);
        }
        FlushBytes();
        return text.ToString();
    }

    /// <summary>The piece text of an id.</summary>
    public string TokenText(int id) => _pieces[id];

    /// <summary>bos/eos/pad ids and add_bos/add_eos from the model folder's JSON files.</summary>
    private sealed record Settings(int? BosId, int? EosId, int? PadId, bool AddBos, bool AddEos)
    {
        public static Settings Read(string directory, SentencePieceModelFile model)
        {
            var tokenizerConfig = ReadJson(Path.Combine(directory, "tokenizer_config.json"));
            var specialMap = ReadJson(Path.Combine(directory, "special_tokens_map.json"));
            var config = ReadJson(Path.Combine(directory, "config.json"));
            var pieceIds = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < model.Pieces.Count; i++) pieceIds.TryAdd(model.Pieces[i], i);

            int? Resolve(string name)
            {
                foreach (var source in new[] { tokenizerConfig, specialMap })
                {
                    var token = TokenString(source?[$"{name}_token"]);
                    if (token is not null && pieceIds.TryGetValue(token, out var id)) return id;
                }
                var configPath = Path.Combine(directory, "config.json");
                var node = config?[$"{name}_token_id"] is JsonArray { Count: > 0 } a ? a[0] : config?[$"{name}_token_id"];
                if (node is null) return null;
                // Some old Llama configs say pad_token_id -1 for "none"; any other id must be a piece of this model.
                if (node is not JsonValue v || !v.TryGetValue(out long configId) || configId < -1 || configId >= model.Pieces.Count)
                    throw new TokenizerException($"'{configPath}': {name}_token_id {node.ToJsonString()} is not a piece id of '{Path.Combine(directory, ModelFileName)}' (0..{model.Pieces.Count - 1})") { FilePath = configPath };
                return configId < 0 ? null : (int)configId;
            }

            bool Flag(string key, bool fallback) => tokenizerConfig?[key] is JsonValue v && v.TryGetValue(out bool b) ? b : fallback;
            return new Settings(Resolve("bos"), Resolve("eos"), Resolve("pad"), Flag("add_bos_token", true), Flag("add_eos_token", false));
        }

        private static string? TokenString(JsonNode? node) => node switch
        {
            JsonValue v when v.TryGetValue(out string? s) => s,
            JsonObject o => o["content"] is JsonValue c && c.TryGetValue(out string? content) ? content : null,
            _ => null,
        };

        private static JsonObject? ReadJson(string path)
        {
            if (!File.Exists(path)) return null;
            try
            {
                return JsonNode.Parse(File.ReadAllText(path), documentOptions: Models.ConfigFields.StrictJson) as JsonObject;
            }
            catch (JsonException e)
            {
                throw new TokenizerException($"'{path}' is not valid JSON: {e.Message}", e) { FilePath = path };
            }
        }
    }
}
