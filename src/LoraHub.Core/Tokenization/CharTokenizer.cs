using System.Collections.Frozen;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoraHub.Core.Tokenization;

/// <summary>
/// A character vocabulary for small models trained from scratch (the toy worlds): ids 0, 1, 2 are
/// <c>&lt;pad&gt;</c>, <c>&lt;/s&gt;</c> and <c>&lt;unk&gt;</c>, optionally followed by a bos token <c>&lt;s&gt;</c> at
/// id 3 (decoder-only models start every sequence with it); every other token is one character (one Unicode
/// scalar). Stored next to the model as <see cref="FileName"/>:
/// <c>{"type": "chars", "tokens": ["&lt;pad&gt;", "&lt;/s&gt;", "&lt;unk&gt;", "a", ...]}</c> (with bos:
/// <c>["&lt;pad&gt;", "&lt;/s&gt;", "&lt;unk&gt;", "&lt;s&gt;", "a", ...]</c>).
/// Encode maps each character to its id (unknown characters to unk; the special tokens' texts written in the
/// text to their ids, as T5's tokenizer does) and, with special tokens, prepends bos (when the vocabulary has one)
/// and appends EOS. Immutable and thread-safe.
/// </summary>
public sealed class CharTokenizer : ITextTokenizer
{
    public const string FileName = "lorahub-vocab.json";
    public const string TypeName = "chars";
    public const string PadToken = "<pad>";
    public const string EosToken = "</s>";
    public const string UnkToken = "<unk>";
    public const string BosToken = "<s>";

    private static readonly string[] BaseSpecials = [PadToken, EosToken, UnkToken];

    private readonly string[] tokens;
    private readonly string[] specials;
    private readonly FrozenDictionary<int, int> idOfRune;

    /// <summary>
    /// A tokenizer over the given characters (each one Unicode scalar, no repeats), after the three specials and,
    /// with <paramref name="withBos"/>, the bos token.
    /// </summary>
    public CharTokenizer(IEnumerable<string> characters, bool withBos = false)
    {
        ArgumentNullException.ThrowIfNull(characters);
        specials = withBos ? [.. BaseSpecials, BosToken] : BaseSpecials;
        var list = specials.ToList();
        var ids = new Dictionary<int, int>();
        foreach (var c in characters)
        {
            if (c is null || !IsOneRune(c, out var rune))
                throw new ArgumentException($"character token '{c}' is not exactly one character", nameof(characters));
            if (!ids.TryAdd(rune.Value, list.Count))
                throw new ArgumentException($"character '{c}' appears twice in the vocabulary", nameof(characters));
            list.Add(c);
        }
        tokens = list.ToArray();
        idOfRune = ids.ToFrozenDictionary();
    }

    public int PadId => 0;
    public int EosId => 1;
    public int? BosId => specials.Length > 3 ? 3 : null;
    public int UnkId => 2;
    public int VocabSize => tokens.Length;

    /// <summary>The tokens by id (specials first).</summary>
    public IReadOnlyList<string> Tokens => tokens;

    public bool IsSpecial(int id) => id >= 0 && id < specials.Length;

    public Encoding Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length + 2);
        var pieces = new List<string>(text.Length + 2);
        if (addSpecialTokens && BosId is int bos)
        {
            ids.Add(bos);
            pieces.Add(BosToken);
        }
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] == '<' && MatchSpecial(text, i) is { } special)
            {
                ids.Add(special);
                pieces.Add(specials[special]);
                i += specials[special].Length;
                continue;
            }
            Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var used);
            ids.Add(idOfRune.TryGetValue(rune.Value, out var id) ? id : UnkId);
            pieces.Add(text.Substring(i, used));
            i += used;
        }
        if (addSpecialTokens)
        {
            ids.Add(EosId);
            pieces.Add(EosToken);
        }
        return new Encoding(ids, pieces);
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)tokens.Length)
                throw new ArgumentException($"Token id {id} is outside the character vocabulary (valid ids are 0..{tokens.Length - 1}).", nameof(ids));
            if (skipSpecialTokens && IsSpecial(id)) continue;
            text.Append(tokens[id]);
        }
        return text.ToString();
    }

    private int? MatchSpecial(string text, int at)
    {
        for (var s = 0; s < specials.Length; s++)
            if (string.CompareOrdinal(text, at, specials[s], 0, specials[s].Length) == 0) return s;
        return null;
    }

    private static bool IsOneRune(string s, out Rune rune)
    {
        rune = default;
        return s.Length > 0 && Rune.DecodeFromUtf16(s, out rune, out var used) == System.Buffers.OperationStatus.Done && used == s.Length;
    }

    /// <summary>Writes the vocabulary file (<see cref="FileName"/>) into a model folder.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var json = new JsonObject
        {
            ["type"] = TypeName,
            ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)JsonValue.Create(t)).ToArray()),
        };
        var path = Path.Combine(directory, FileName);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, json.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + "\n");
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads a vocabulary file, or <see cref="FileName"/> inside a model folder.</summary>
    public static CharTokenizer Load(string pathOrDirectory)
    {
        var path = Directory.Exists(pathOrDirectory) ? Path.Combine(pathOrDirectory, FileName) : pathOrDirectory;
        if (!File.Exists(path)) throw new TokenizerException($"{path}: character vocabulary file does not exist") { FilePath = path };
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path), documentOptions: Models.ConfigFields.StrictJson)?.AsObject() ?? throw new TokenizerException($"{path}: vocabulary file is empty") { FilePath = path };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new TokenizerException($"{path}: vocabulary file is not a JSON object ({e.Message})", e) { FilePath = path };
        }
        var type = json["type"] is JsonValue tv && tv.TryGetValue(out string? t) ? t : null;
        if (type != TypeName)
            throw new TokenizerException($"{path}: vocabulary type is '{type ?? "(none)"}', expected '{TypeName}'") { FilePath = path };
        if (json["tokens"] is not JsonArray array)
            throw new TokenizerException($"{path}: vocabulary file has no \"tokens\" array") { FilePath = path };
        var list = new List<string>();
        foreach (var node in array)
        {
            if (node is not JsonValue v || !v.TryGetValue(out string? s))
                throw new TokenizerException($"{path}: every token must be a string") { FilePath = path };
            list.Add(s);
        }
        if (list.Count < 3 || list[0] != PadToken || list[1] != EosToken || list[2] != UnkToken)
            throw new TokenizerException($"{path}: the first tokens must be {PadToken}, {EosToken}, {UnkToken} (ids 0, 1, 2)") { FilePath = path };
        // "<s>" is never one character, so at id 3 it can only be the bos token.
        var withBos = list.Count > 3 && list[3] == BosToken;
        try
        {
            return new CharTokenizer(list.Skip(withBos ? 4 : 3), withBos);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerException($"{path}: {e.Message}", e) { FilePath = path };
        }
    }
}
