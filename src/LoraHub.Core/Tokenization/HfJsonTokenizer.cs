using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace LoraHub.Core.Tokenization;

/// <summary>
/// A Hugging Face tokenizer.json of the byte-level BPE kind (Llama 3 / 3.1, Qwen2 / 2.5, GPT-2 style), with the
/// semantics of the Rust `tokenizers` library and transformers' PreTrainedTokenizerFast:
/// added tokens written in the text are matched first (leftmost, longest), the text between them is normalized
/// (NFC for Qwen2), split by the pre-tokenizer (Split regex, then ByteLevel), mapped to the byte alphabet and
/// BPE-merged by rank (Microsoft.ML.Tokenizers' BpeTokenizer in byte-level mode; a pre-token that is itself a
/// vocabulary entry is taken whole when the model says ignore_merges, as Llama 3's does); with addSpecialTokens
/// the post-processor's TemplateProcessing "single" template adds its special tokens (Llama 3.1: &lt;|begin_of_text|&gt;;
/// Qwen2 adds nothing).
/// </summary>
/// <remarks>
/// bos/eos/pad/unk come from tokenizer_config.json (bos_token etc., a string or {"content": ...}; an explicit null
/// means none), then special_tokens_map.json, then config.json (bos_token_id etc., the first of a list). pad falls back
/// to eos (padding is masked) and unk, which byte-level BPE never produces, to eos too. <see cref="BosId"/> is the
/// token that Encode puts first (the template's), so a tokenizer.json whose template adds nothing has none, as in
/// Hugging Face. Decoding follows PreTrainedTokenizerFast.decode: the Rust ByteLevel decoder, then
/// clean_up_tokenization when tokenizer_config.json says clean_up_tokenization_spaces (default false).
/// </remarks>
public sealed class HfJsonTokenizer : ITextTokenizer
{
    public const string FileName = "tokenizer.json";

    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly ConcurrentDictionary<string, (string Stamp, HfJsonTokenizer Tokenizer)> Cache = new(StringComparer.Ordinal);

    private readonly string?[] _tokens;
    private readonly Dictionary<string, int> _vocab;
    private readonly BpeTokenizer _bpe;
    private readonly bool _ignoreMerges;
    private readonly AddedTokenMatcher _rawAdded;
    private readonly AddedTokenMatcher _normalizedAdded;
    private readonly HashSet<int> _specialIds;
    private readonly NormalizationForm[] _normalizers;
    private readonly IReadOnlyList<SplitStep> _splits;
    private readonly ByteLevelStep _byteLevel;
    private readonly int[] _prefixIds;
    private readonly int[] _suffixIds;
    private readonly bool _cleanUpSpaces;

    private HfJsonTokenizer(string path, Model model, Settings settings)
    {
        TokenizerPath = path;
        _vocab = model.Vocab;
        _bpe = model.Bpe;
        _ignoreMerges = model.IgnoreMerges;
        _tokens = model.Tokens;
        _rawAdded = new AddedTokenMatcher(model.Added.Where(t => !t.Normalized));
        _normalizedAdded = new AddedTokenMatcher(model.Added.Where(t => t.Normalized));
        _specialIds = [.. model.Added.Where(t => t.Special).Select(t => t.Id)];
        _normalizers = model.Normalizers;
        _splits = model.Splits;
        _byteLevel = model.ByteLevel;
        _prefixIds = model.PrefixIds;
        _suffixIds = model.SuffixIds;
        _cleanUpSpaces = settings.CleanUpSpaces;

        int? Lookup(string? token) => token is null ? null : model.IdOf(token);
        BosToken = settings.Resolve("bos", Lookup);
        EosId = settings.Resolve("eos", Lookup)
            ?? throw new TokenizerException($"'{path}': no eos token in tokenizer_config.json, special_tokens_map.json or config.json") { FilePath = path };
        PadId = settings.Resolve("pad", Lookup) ?? EosId;
        UnkId = settings.Resolve("unk", Lookup) ?? Lookup(model.UnkToken) ?? EosId;
        BosId = _prefixIds.Length > 0 ? _prefixIds[0] : null;
        VocabSize = _tokens.Length;
        // Ids from the side files and the template index the token table: check them once here, not at every encode.
        foreach (var (what, id) in new (string, int?)[] { ("bos", BosToken), ("eos", EosId), ("pad", PadId), ("unk", UnkId) }
            .Concat(_prefixIds.Concat(_suffixIds).Select(i => ("post_processor template", (int?)i))))
        {
            if (id is { } i && (i < 0 || i >= VocabSize || _tokens[i] is null))
                throw new TokenizerException($"'{path}': the {what} token id {i} is not a token of this vocabulary (0..{VocabSize - 1})") { FilePath = path };
        }
    }

    /// <summary>The tokenizer.json this tokenizer was loaded from.</summary>
    public string TokenizerPath { get; }

    public int PadId { get; }
    public int EosId { get; }
    public int UnkId { get; }

    /// <summary>The token Encode(addSpecialTokens: true) starts with (the post-processor template's), or null when it adds none.</summary>
    public int? BosId { get; }

    /// <summary>The bos token the model's files name, whether or not encoding adds it (Qwen2: none).</summary>
    public int? BosToken { get; }

    /// <summary>Largest id over the vocabulary and the added tokens, plus one.</summary>
    public int VocabSize { get; }

    /// <summary>Loads the tokenizer of a model folder (or a tokenizer.json and the settings next to it); cached per file.</summary>
    /// <exception cref="TokenizerException">The file is missing, not JSON, or not a byte-level BPE tokenizer.</exception>
    public static HfJsonTokenizer Load(string pathToJsonOrDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pathToJsonOrDirectory);
        var path = Path.GetFullPath(pathToJsonOrDirectory);
        if (Directory.Exists(path)) path = Path.Combine(path, FileName);
        if (!File.Exists(path)) throw new TokenizerException($"Tokenizer file '{path}' not found.") { FilePath = path };
        var directory = Path.GetDirectoryName(path)!;
        var stamp = string.Join("|", Settings.FileNames.Select(n => Path.Combine(directory, n)).Prepend(path)
            .Select(f => new FileInfo(f) is { Exists: true } i ? $"{i.Length}:{i.LastWriteTimeUtc.Ticks}" : "-"));
        if (Cache.TryGetValue(path, out var hit) && hit.Stamp == stamp) return hit.Tokenizer;
        var tokenizer = new HfJsonTokenizer(path, Model.Read(path), Settings.Read(directory));
        Cache[path] = (stamp, tokenizer);
        return tokenizer;
    }

    /// <summary>Encodes text: the template's prefix (bos) + tokens + its suffix with addSpecialTokens, else the tokens alone.</summary>
    public Encoding Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        var pieces = new List<string>(ids.Capacity);
        void Add(int id)
        {
            ids.Add(id);
            pieces.Add(_tokens[id]!);
        }

        if (addSpecialTokens) foreach (var id in _prefixIds) Add(id);
        foreach (var (segment, addedId) in _rawAdded.Split(ReplaceLoneSurrogates(text)))
        {
            if (addedId is int a)
            {
                Add(a);
                continue;
            }
            foreach (var (part, normalizedAddedId) in _normalizedAdded.Split(Normalize(segment)))
            {
                if (normalizedAddedId is int n) Add(n);
                else foreach (var preToken in PreTokenize(part)) EncodePreToken(preToken, Add);
            }
        }
        if (addSpecialTokens) foreach (var id in _suffixIds) Add(id);
        return new Encoding(ids, pieces);
    }

    private string Normalize(string text)
    {
        foreach (var form in _normalizers) text = text.Normalize(form);
        return text;
    }

    /// <summary>The pre-tokenizer's pieces (raw text, before the byte mapping), empty ones dropped.</summary>
    private List<string> PreTokenize(string text)
    {
        var pieces = new List<string> { text };
        foreach (var split in _splits) pieces = pieces.SelectMany(split.Apply).ToList();
        // ByteLevel (always the last step): the optional prefix space goes on every piece that lacks one, as in Rust.
        var result = new List<string>(pieces.Count);
        foreach (var p in pieces)
        {
            if (p.Length == 0) continue;
            var piece = _byteLevel.AddPrefixSpace && p[0] != ' ' ? " " + p : p;
            if (_byteLevel.Regex is null) result.Add(piece);
            else result.AddRange(SplitStep.Pieces(piece, _byteLevel.Regex, SplitBehavior.Isolated, invert: false));
        }
        return result;
    }

    private void EncodePreToken(string preToken, Action<int> add)
    {
        if (_ignoreMerges && _vocab.TryGetValue(ByteLevelAlphabet.Encode(preToken), out var whole))
        {
            add(whole);
            return;
        }
        foreach (var id in _bpe.EncodeToIds(preToken, considerPreTokenization: false, considerNormalization: false)) add(id);
    }

    /// <summary>
    /// Decodes as PreTrainedTokenizerFast: special added tokens dropped when skipped, the rest joined as bytes (the
    /// ByteLevel decoder) and read as UTF-8 with U+FFFD for invalid sequences, then clean_up_tokenization if configured.
    /// Ids inside the range that name no token are skipped, as the Rust tokenizer does.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_tokens.Length)
                throw new ArgumentException($"Token id {id} is outside the vocabulary (valid ids are 0..{_tokens.Length - 1}).", nameof(ids));
            if (_tokens[id] is not { } token || (skipSpecialTokens && _specialIds.Contains(id))) continue;
            ByteLevelAlphabet.AppendBytes(token, bytes);
        }
        var text = ByteLevelAlphabet.DecodeUtf8(bytes);
        return _cleanUpSpaces ? CleanUpTokenization(text) : text;
    }

    /// <summary>transformers' clean_up_tokenization: spaces before punctuation and English contractions removed.</summary>
    internal static string CleanUpTokenization(string text) => text
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal).Replace(" 're", "'re", StringComparison.Ordinal);

    /// <summary>The token text of an id (byte-alphabet form for vocabulary entries), or null for an id that names none.</summary>
    public string? TokenText(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : null;

    /// <summary>A string can hold unpaired surrogates; UTF-8 (and so Rust) cannot: they become U+FFFD first.</summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        StringBuilder? fixedText = null;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            var paired = char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            if (paired)
            {
                fixedText?.Append(c).Append(text[i + 1]);
                i++;
                continue;
            }
            if (char.IsSurrogate(c))
            {
                fixedText ??= new StringBuilder(text, 0, i, text.Length);
                fixedText.Append('\uFFFD');
            }
            else
            {
                fixedText?.Append(c);
            }
        }
        return fixedText?.ToString() ?? text;
    }

    private sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool SingleWord, bool Normalized);

    /// <summary>Rust's added-vocabulary split: leftmost-longest matches of the tokens' texts, with lstrip/rstrip/single_word.</summary>
    private sealed class AddedTokenMatcher
    {
        private readonly Dictionary<char, AddedToken[]> _byFirstChar;

        public AddedTokenMatcher(IEnumerable<AddedToken> tokens) =>
            _byFirstChar = tokens.Where(t => t.Content.Length > 0).GroupBy(t => t.Content[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());

        public List<(string Text, int? Id)> Split(string text)
        {
            var result = new List<(string, int?)>();
            var offset = 0;
            var at = 0;
            while (at < text.Length && _byFirstChar.Count > 0)
            {
                var token = Longest(text, at);
                if (token is null)
                {
                    at++;
                    continue;
                }
                var start = at;
                var stop = at + token.Content.Length;
                at = stop;
                if (token.SingleWord && ((start > 0 && IsWordChar(text[start - 1])) || (stop < text.Length && IsWordChar(text[stop])))) continue;
                if (token.LStrip)
                {
                    while (start > offset && char.IsWhiteSpace(text[start - 1])) start--;
                }
                if (token.RStrip)
                {
                    while (stop < text.Length && char.IsWhiteSpace(text[stop])) stop++;
                    at = Math.Max(at, stop);
                }
                if (start > offset) result.Add((text[offset..start], null));
                result.Add((token.Content, token.Id));
                offset = stop;
            }
            if (offset < text.Length) result.Add((text[offset..], null));
            return result;
        }

        private AddedToken? Longest(string text, int at)
        {
            if (!_byFirstChar.TryGetValue(text[at], out var candidates)) return null;
            foreach (var t in candidates)
                if (text.AsSpan(at).StartsWith(t.Content, StringComparison.Ordinal)) return t;
            return null;
        }

        private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
    }

    private enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

    /// <summary>The Split pre-tokenizer: pattern matches and the text between them become pieces per the behavior.</summary>
    private sealed record SplitStep(CodePointRegex Regex, SplitBehavior Behavior, bool Invert)
    {
        public IEnumerable<string> Apply(string text) => Pieces(text, Regex, Behavior, Invert);

        public static List<string> Pieces(string text, CodePointRegex regex, SplitBehavior behavior, bool invert)
        {
            // (start, end, isMatch) covering the text, as Rust's find_matches.
            var parts = new List<(int Start, int End, bool Match)>();
            var previous = 0;
            foreach (var (start, length) in regex.Matches(text))
            {
                if (start > previous) parts.Add((previous, start, invert));
                parts.Add((start, start + length, !invert));
                previous = start + length;
            }
            if (previous < text.Length) parts.Add((previous, text.Length, invert));

            var kept = new List<(int Start, int End)>();
            var previousMatch = false;
            switch (behavior)
            {
                case SplitBehavior.Isolated:
                    kept.AddRange(parts.Select(p => (p.Start, p.End)));
                    break;
                case SplitBehavior.Removed:
                    kept.AddRange(parts.Where(p => !p.Match).Select(p => (p.Start, p.End)));
                    break;
                case SplitBehavior.Contiguous:
                    foreach (var p in parts)
                    {
                        if (p.Match == previousMatch && kept.Count > 0) kept[^1] = (kept[^1].Start, p.End);
                        else kept.Add((p.Start, p.End));
                        previousMatch = p.Match;
                    }
                    break;
                case SplitBehavior.MergedWithPrevious:
                    foreach (var p in parts)
                    {
                        if (p.Match && !previousMatch && kept.Count > 0) kept[^1] = (kept[^1].Start, p.End);
                        else kept.Add((p.Start, p.End));
                        previousMatch = p.Match;
                    }
                    break;
                case SplitBehavior.MergedWithNext:
                    for (var i = parts.Count - 1; i >= 0; i--)
                    {
                        var p = parts[i];
                        if (p.Match && !previousMatch && kept.Count > 0) kept[^1] = (p.Start, kept[^1].End);
                        else kept.Add((p.Start, p.End));
                        previousMatch = p.Match;
                    }
                    kept.Reverse();
                    break;
            }
            return kept.Where(k => k.End > k.Start).Select(k => text[k.Start..k.End]).ToList();
        }
    }

    /// <summary>The ByteLevel pre-tokenizer: optional prefix space, optional GPT-2 split, then the byte alphabet.</summary>
    private sealed record ByteLevelStep(bool AddPrefixSpace, CodePointRegex? Regex);

    /// <summary>What tokenizer.json says, checked: everything but the folder's side files.</summary>
    private sealed class Model
    {
        public required Dictionary<string, int> Vocab { get; init; }
        public required BpeTokenizer Bpe { get; init; }
        public required bool IgnoreMerges { get; init; }
        public required string?[] Tokens { get; init; }
        public required List<AddedToken> Added { get; init; }
        public required NormalizationForm[] Normalizers { get; init; }
        public required List<SplitStep> Splits { get; init; }
        public required ByteLevelStep ByteLevel { get; init; }
        public required int[] PrefixIds { get; init; }
        public required int[] SuffixIds { get; init; }
        public string? UnkToken { get; init; }

        public int? IdOf(string token)
        {
            foreach (var t in Added)
                if (t.Content == token) return t.Id;
            return Vocab.TryGetValue(token, out var id) ? id : null;
        }

        public static Model Read(string path)
        {
            TokenizerException Bad(string problem, Exception? inner = null) =>
                inner is null ? new($"'{path}': {problem}") { FilePath = path } : new($"'{path}': {problem}", inner) { FilePath = path };

            // JsonDocument for the big vocab and merges (JsonNode is several times slower there), nodes for the rest.
            JsonDocument document;
            try
            {
                var bytes = File.ReadAllBytes(path);
                // JsonDocument checks a string's UTF-8 only when it is read: check the whole file once, up front.
                if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw Bad("is not valid UTF-8");
                document = JsonDocument.Parse(bytes, Models.ConfigFields.StrictJson);
            }
            catch (JsonException e)
            {
                throw Bad($"not valid JSON ({e.Message})", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw Bad($"could not be read ({e.Message})", e);
            }
            using var _ = document;
            var rootElement = document.RootElement;
            if (rootElement.ValueKind != JsonValueKind.Object) throw Bad("not a JSON object");
            JsonNode? Section(string name) =>
                rootElement.TryGetProperty(name, out var e) && e.ValueKind != JsonValueKind.Null ? JsonNode.Parse(e.GetRawText()) : null;

            if (!rootElement.TryGetProperty("model", out var modelElement) || modelElement.ValueKind != JsonValueKind.Object)
                throw Bad("no \"model\" section; not a Hugging Face tokenizer.json");
            JsonNode? ModelField(string name) =>
                modelElement.TryGetProperty(name, out var e) && e.ValueKind is not (JsonValueKind.Object or JsonValueKind.Array) ? JsonNode.Parse(e.GetRawText()) : null;
            var hasMerges = modelElement.TryGetProperty("merges", out var mergesElement);
            var type = String(ModelField("type")) ?? (hasMerges ? "BPE" : null);
            if (type != "BPE")
                throw Bad($"model type '{type ?? "(none)"}' is not supported; only byte-level BPE tokenizers (Llama 3, Qwen2) are read from tokenizer.json");
            if (!modelElement.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
                throw Bad("the BPE model has no vocab");
            if (ModelField("dropout") is JsonValue d && d.TryGetValue(out double dropout) && dropout > 0)
                throw Bad("BPE dropout is not supported (encoding would be random)");
            foreach (var affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
                if (!string.IsNullOrEmpty(String(ModelField(affix)))) throw Bad($"BPE {affix} is not supported (byte-level BPE has none)");

            var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var entry in vocabElement.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id < 0)
                    throw Bad($"vocab entry '{entry.Name}' has no valid id");
                vocab[entry.Name] = id;
            }
            if (vocab.Count == 0) throw Bad("the BPE model has an empty vocab");
            var merges = hasMerges ? ReadMerges(mergesElement, vocab, Bad) : [];

            var added = new List<AddedToken>();
            if (Section("added_tokens") is JsonArray addedJson)
            {
                foreach (var node in addedJson)
                {
                    if (node is not JsonObject a || a["id"] is not JsonValue idValue || !idValue.TryGetValue(out int id) || id < 0 || String(a["content"]) is not { Length: > 0 } content)
                        throw Bad($"malformed added token {node?.ToJsonString()}");
                    added.Add(new AddedToken(id, content, Flag(a["special"]), Flag(a["lstrip"]), Flag(a["rstrip"]), Flag(a["single_word"]), Flag(a["normalized"])));
                }
            }

            // Ids size the id -> token table: an id near 2^31 would allocate gigabytes. HF vocabularies are dense, so an
            // id space much larger than the number of tokens is refused as well as one beyond MaxVocabulary.
            var size = (long)Math.Max(vocab.Values.Max(), added.Count == 0 ? -1 : added.Max(t => t.Id)) + 1;
            var tokenCount = (long)vocab.Count + added.Count;
            if (size > Models.ConfigFields.MaxVocabulary)
                throw Bad($"token id {size - 1} is larger than the {Models.ConfigFields.MaxVocabulary - 1} allowed");
            if (size > 2 * tokenCount + 1024)
                throw Bad($"token id {size - 1} is far beyond its {tokenCount} tokens (ids must be dense)");
            var tokens = new string?[(int)size];
            foreach (var (token, id) in vocab) tokens[id] ??= token;
            foreach (var t in added) tokens[t.Id] = t.Content;

            var (splits, byteLevel) = ReadPreTokenizer(Section("pre_tokenizer"), Bad, path);
            CheckDecoder(Section("decoder"), Bad);
            var (prefix, suffix) = ReadPostProcessor(Section("post_processor"), Bad);

            BpeTokenizer bpe;
            try
            {
                bpe = BpeTokenizer.Create(new BpeOptions(vocab) { Merges = merges, ByteLevel = true, UnknownToken = null });
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or KeyNotFoundException)
            {
                throw Bad($"the BPE model could not be built: {e.Message}", e);
            }

            return new Model
            {
                Vocab = vocab,
                Bpe = bpe,
                IgnoreMerges = Flag(ModelField("ignore_merges")),
                Tokens = tokens,
                Added = added,
                Normalizers = ReadNormalizer(Section("normalizer"), Bad),
                Splits = splits,
                ByteLevel = byteLevel,
                PrefixIds = prefix,
                SuffixIds = suffix,
                UnkToken = String(ModelField("unk_token")),
            };
        }

        /// <summary>Merges as "a b" strings (older files) or [a, b] pairs (tokenizers 0.20+), both parts in the vocab.</summary>
        private static List<string> ReadMerges(JsonElement array, Dictionary<string, int> vocab, Func<string, Exception?, TokenizerException> bad)
        {
            if (array.ValueKind != JsonValueKind.Array) throw bad("BPE merges are not a list", null);
            var merges = new List<string>(array.GetArrayLength());
            var i = 0;
            foreach (var merge in array.EnumerateArray())
            {
                string? left = null, right = null;
                if (merge.ValueKind == JsonValueKind.String && merge.GetString() is { } s && s.IndexOf(' ') is var space and > 0 && s.IndexOf(' ', space + 1) < 0)
                    (left, right) = (s[..space], s[(space + 1)..]);
                else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2 && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                    (left, right) = (merge[0].GetString(), merge[1].GetString());
                if (string.IsNullOrEmpty(left) || string.IsNullOrEmpty(right) || left.Contains(' ') || right.Contains(' '))
                    throw bad($"BPE merge #{i} ({merge.GetRawText()}) is not a pair of byte-level tokens", null);
                if (!vocab.ContainsKey(left) || !vocab.ContainsKey(right) || !vocab.ContainsKey(left + right))
                    throw bad($"BPE merge #{i} ({left} {right}) names a token that is not in the vocab", null);
                merges.Add(left + " " + right);
                i++;
            }
            return merges;
        }

        private static NormalizationForm[] ReadNormalizer(JsonNode? node, Func<string, Exception?, TokenizerException> bad)
        {
            if (node is null) return [];
            var type = String(node["type"]);
            return type switch
            {
                "NFC" => [NormalizationForm.FormC],
                "NFD" => [NormalizationForm.FormD],
                "NFKC" => [NormalizationForm.FormKC],
                "NFKD" => [NormalizationForm.FormKD],
                "Sequence" when node["normalizers"] is JsonArray list => list.SelectMany(n => ReadNormalizer(n, bad)).ToArray(),
                _ => throw bad($"normalizer '{type}' is not supported (NFC, NFD, NFKC, NFKD or a Sequence of them)", null),
            };
        }

        /// <summary>Split steps, then exactly one ByteLevel step last (before it, pieces are text; after it, bytes).</summary>
        private static (List<SplitStep>, ByteLevelStep) ReadPreTokenizer(JsonNode? node, Func<string, Exception?, TokenizerException> bad, string path)
        {
            var steps = new List<JsonNode>();
            void Flatten(JsonNode n)
            {
                if (String(n["type"]) == "Sequence" && n["pretokenizers"] is JsonArray list)
                    foreach (var child in list) Flatten(child!);
                else steps.Add(n);
            }
            if (node is not null) Flatten(node);
            if (steps.Count == 0 || String(steps[^1]["type"]) != "ByteLevel")
                throw bad("not a byte-level BPE tokenizer (its pre_tokenizer does not end with ByteLevel); a SentencePiece-style tokenizer.json (Llama 2, Mistral) is read from tokenizer.model instead", null);

            var splits = new List<SplitStep>();
            foreach (var step in steps.Take(steps.Count - 1))
            {
                var type = String(step["type"]);
                if (type != "Split") throw bad($"pre-tokenizer '{type}' is not supported before ByteLevel (only Split)", null);
                var pattern = step["pattern"] switch
                {
                    JsonObject p when String(p["Regex"]) is { } regex => regex,
                    JsonObject p when String(p["String"]) is { } literal => System.Text.RegularExpressions.Regex.Escape(literal),
                    _ => throw bad("Split pre-tokenizer without a Regex or String pattern", null),
                };
                if (!Enum.TryParse<SplitBehavior>(String(step["behavior"]), out var behavior))
                    throw bad($"Split behavior '{String(step["behavior"])}' is not known", null);
                splits.Add(new SplitStep(Compile(pattern, bad, path), behavior, Flag(step["invert"])));
            }
            var byteLevel = steps[^1];
            var useRegex = byteLevel["use_regex"] is not JsonValue u || !u.TryGetValue(out bool b) || b;
            return (splits, new ByteLevelStep(Flag(byteLevel["add_prefix_space"]), useRegex ? Compile(Gpt2Pattern, bad, path) : null));
        }

        private static CodePointRegex Compile(string pattern, Func<string, Exception?, TokenizerException> bad, string path)
        {
            try
            {
                return new CodePointRegex(pattern, path);
            }
            catch (ArgumentException e)
            {
                throw bad($"the split pattern {pattern} is not a pattern .NET can run ({e.Message})", e);
            }
        }

        private static void CheckDecoder(JsonNode? node, Func<string, Exception?, TokenizerException> bad)
        {
            var type = String(node?["type"]);
            var ok = type == "ByteLevel"
                || (type == "Sequence" && node!["decoders"] is JsonArray { Count: > 0 } list && list.All(d => String(d?["type"]) == "ByteLevel"));
            if (!ok) throw bad($"decoder '{type ?? "(none)"}' is not supported (byte-level BPE decodes with ByteLevel)", null);
        }

        /// <summary>The special ids the "single" template puts before and after the sequence (none without a template).</summary>
        private static (int[], int[]) ReadPostProcessor(JsonNode? node, Func<string, Exception?, TokenizerException> bad)
        {
            if (node is null) return ([], []);
            var type = String(node["type"]);
            switch (type)
            {
                case "ByteLevel":
                    return ([], []);
                case "Sequence" when node["processors"] is JsonArray list:
                    var parts = list.Select(p => ReadPostProcessor(p, bad)).ToList();
                    return (parts.SelectMany(p => p.Item1).ToArray(), parts.SelectMany(p => p.Item2).ToArray());
                case "TemplateProcessing" when node["single"] is JsonArray single:
                    var prefix = new List<int>();
                    var suffix = new List<int>();
                    var seenSequence = false;
                    foreach (var piece in single)
                    {
                        if (piece?["Sequence"] is not null)
                        {
                            seenSequence = true;
                            continue;
                        }
                        var name = String(piece?["SpecialToken"]?["id"]) ?? throw bad($"template piece {piece?.ToJsonString()} is neither a SpecialToken nor the Sequence", null);
                        if (node["special_tokens"]?[name]?["ids"] is not JsonArray ids)
                            throw bad($"template special token '{name}' has no ids in special_tokens", null);
                        (seenSequence ? suffix : prefix).AddRange(ids.Select(i => i is JsonValue v && v.TryGetValue(out int id) && id >= 0
                            ? id : throw bad($"template special token '{name}' has id {i?.ToJsonString() ?? "null"}, not a token id", null)));
                    }
                    return ([.. prefix], [.. suffix]);
                default:
                    throw bad($"post_processor '{type}' is not supported (TemplateProcessing, ByteLevel or a Sequence of them)", null);
            }
        }
    }

    private static string? String(JsonNode? node) => node is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    private static bool Flag(JsonNode? node) => node is JsonValue v && v.TryGetValue(out bool b) && b;

    /// <summary>The folder's side files: tokenizer_config.json, special_tokens_map.json, config.json.</summary>
    private sealed class Settings
    {
        public static readonly string[] FileNames = ["tokenizer_config.json", "special_tokens_map.json", "config.json"];

        private JsonObject? _tokenizerConfig;
        private JsonObject? _specialTokensMap;
        private JsonObject? _config;

        public bool CleanUpSpaces => Flag(_tokenizerConfig?["clean_up_tokenization_spaces"]);

        public static Settings Read(string directory) => new()
        {
            _tokenizerConfig = ReadJson(Path.Combine(directory, FileNames[0])),
            _specialTokensMap = ReadJson(Path.Combine(directory, FileNames[1])),
            _config = ReadJson(Path.Combine(directory, FileNames[2])),
        };

        /// <summary>
        /// The id of bos/eos/pad/unk: the token string of tokenizer_config.json (an explicit null there means "none",
        /// as Qwen2's bos_token), else special_tokens_map.json's, else config.json's {name}_token_id (first of a list).
        /// </summary>
        public int? Resolve(string name, Func<string?, int?> lookup)
        {
            var key = $"{name}_token";
            if (_tokenizerConfig is not null && _tokenizerConfig.TryGetPropertyValue(key, out var value))
            {
                if (value is null) return null;
                if (lookup(TokenString(value)) is int id) return id;
            }
            if (lookup(TokenString(_specialTokensMap?[key])) is int mapped) return mapped;
            return _config?[$"{name}_token_id"] switch
            {
                JsonValue v when v.TryGetValue(out int one) => one,
                JsonArray { Count: > 0 } a when a[0] is JsonValue first && first.TryGetValue(out int head) => head,
                _ => null,
            };
        }

        private static string? TokenString(JsonNode? node) => node switch
        {
            JsonValue v when v.TryGetValue(out string? s) => s,
            JsonObject o => String(o["content"]),
            _ => null,
        };

        private static JsonObject? ReadJson(string path)
        {
            if (!File.Exists(path)) return null;
            try
            {
                return JsonNode.Parse(File.ReadAllText(path), documentOptions: Models.ConfigFields.StrictJson) as JsonObject
                    ?? throw new TokenizerException($"'{path}' is not a JSON object") { FilePath = path };
            }
            catch (JsonException e)
            {
                throw new TokenizerException($"'{path}' is not valid JSON: {e.Message}", e) { FilePath = path };
            }
        }
    }
}
