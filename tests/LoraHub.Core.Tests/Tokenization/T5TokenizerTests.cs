using System.Text.Json;
using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Core.Tests.Tokenization;

public sealed class T5TokenizerTests : IDisposable
{
    private static readonly string FixtureDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "t5");
    private static readonly string SpiecePath = Path.Combine(FixtureDir, "spiece.model");

    private readonly string _tempDir = Path.Combine(Path.GetTempPath(), "lorahub-tok-" + Guid.NewGuid().ToString("N"));

    public T5TokenizerTests() => Directory.CreateDirectory(_tempDir);

    public void Dispose()
    {
        try
        {
            Directory.Delete(_tempDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static T5Tokenizer Tokenizer => T5Tokenizer.Load(SpiecePath);

    public static TheoryData<int, string> FixtureCases() => CaseIndexes(LoadFixtureCases());

    public static TheoryData<int, string> ReferenceCases() => CaseIndexes(LoadReferenceCases());

    [Theory]
    [MemberData(nameof(FixtureCases))]
    public void Fixture_case_encodes_and_decodes_like_sentencepiece(int index, string preview)
    {
        _ = preview;
        AssertCase(LoadFixtureCases()[index]);
    }

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void Reference_case_encodes_and_decodes_like_sentencepiece(int index, string preview)
    {
        _ = preview;
        AssertCase(LoadReferenceCases()[index]);
    }

    [Fact]
    public void Special_ids_and_vocab_size_are_t5s()
    {
        T5Tokenizer t = Tokenizer;
        Assert.Equal(0, t.PadId);
        Assert.Equal(1, t.EosId);
        Assert.Equal(2, t.UnkId);
        Assert.Null(t.BosId);
        Assert.Equal(32000, t.PieceCount);
        Assert.Equal(32100, t.VocabSize);
        Assert.Equal(32099, t.ExtraId(0));
        Assert.Equal(32000, t.ExtraId(99));
        Assert.Equal("<extra_id_0>", t.TokenText(32099));
        Assert.Equal("</s>", t.TokenText(1));
    }

    [Fact]
    public void Extra_ids_in_text_map_to_32099_minus_n()
    {
        Encoding e = Tokenizer.Encode("<extra_id_0> hello <extra_id_99>");

        Assert.Contains(32099, e.Ids);
        Assert.Contains(32000, e.Ids);
        Assert.Equal([32099, 21820, 32000, 1], e.Ids);
        Assert.Equal(["<extra_id_0>", "\u2581hello", "<extra_id_99>", "</s>"], e.Pieces);
    }

    [Fact]
    public void Every_extra_id_round_trips()
    {
        T5Tokenizer t = Tokenizer;
        for (int n = 0; n < T5Tokenizer.ExtraIdCount; n++)
        {
            Encoding e = t.Encode($"<extra_id_{n}>", addSpecialTokens: false);
            Assert.Equal([32099 - n], e.Ids);
            Assert.Equal($"<extra_id_{n}>", t.Decode(e.Ids, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void Decode_drops_extra_ids_when_skipping_and_writes_them_otherwise()
    {
        T5Tokenizer t = Tokenizer;
        int[] ids = [32099, 21820, 32000, 1];

        Assert.Equal("hello", t.Decode(ids));
        Assert.Equal("hello", t.Decode(ids, skipSpecialTokens: true));

        // HF's slow T5Tokenizer.convert_tokens_to_string: a space before each run of special tokens, none after.
        Assert.Equal("<extra_id_0> hello<extra_id_99></s>", t.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void Decode_of_a_typical_t5_span_corruption_target()
    {
        T5Tokenizer t = Tokenizer;
        Encoding e = t.Encode("<extra_id_0> for inviting<extra_id_1> last week<extra_id_2>");

        Assert.Equal(t.ExtraId(0), e.Ids[0]);
        Assert.Equal("for inviting last week", t.Decode(e.Ids));
        Assert.Equal("<extra_id_0> for inviting<extra_id_1> last week<extra_id_2></s>", t.Decode(e.Ids, skipSpecialTokens: false));
    }

    [Fact]
    public void Named_special_tokens_in_text_map_to_their_ids()
    {
        T5Tokenizer t = Tokenizer;

        Assert.Equal([0, 21820, 2, 1], t.Encode("<pad>hello<unk></s>").Ids);
        Assert.Equal(["<pad>", "\u2581hello", "<unk>", "</s>"], t.Encode("<pad>hello<unk></s>").Pieces);

        // Like HF's _add_eos_if_not_present: a text that already ends with </s> gets no second one.
        Assert.Equal([21820, 1], t.Encode("hello </s>").Ids);
        Assert.Equal([21820, 1, 21820, 1], t.Encode("hello</s>hello").Ids);
    }

    [Fact]
    public void Text_that_only_looks_special_is_encoded_as_text()
    {
        T5Tokenizer t = Tokenizer;
        foreach (string text in new[] { "<extra_id_100>", "<extra_id_05>", "<extra_id_>", "<s>", "< pad>", "<PAD>", "<extra_id_1", "a<b" })
        {
            // (T5's vocabulary has no "<": it encodes as <unk>, id 2, as SentencePiece itself does.)
            Encoding e = t.Encode(text);
            Assert.DoesNotContain(e.Ids, id => id == 0 || id >= 32000);
            Assert.Equal([1], e.Ids.Where(id => id == 1));
            Assert.Equal(1, e.Ids[^1]);
        }
    }

    [Fact]
    public void Special_tokens_split_text_and_each_part_gets_its_own_prefix()
    {
        T5Tokenizer t = Tokenizer;

        // Each part between special tokens is encoded by SentencePiece on its own (HF legacy behaviour).
        Encoding joined = t.Encode("hello<extra_id_3>world");
        Encoding separate = t.Encode("hello", addSpecialTokens: false);
        Encoding world = t.Encode("world", addSpecialTokens: false);
        Assert.Equal([.. separate.Ids, t.ExtraId(3), .. world.Ids, 1], joined.Ids);
    }

    [Fact]
    public void A_lone_angle_bracket_does_not_stop_the_search_for_special_tokens_after_it()
    {
        T5Tokenizer t = Tokenizer;
        int[] Bare(string text) => [.. t.Encode(text, addSpecialTokens: false).Ids];

        Assert.Equal([.. Bare("a<b"), t.ExtraId(0), .. Bare("c")], Bare("a<b<extra_id_0>c"));
        Assert.Equal([.. Bare("x <"), 1, .. Bare("<")], Bare("x <</s><"));
        Assert.Equal([.. Bare("<"), t.ExtraId(1)], Bare("<<extra_id_1>"));
        Encoding e = t.Encode("a<b</s>c", addSpecialTokens: false);
        Assert.Equal([.. t.Encode("a<b", false).Pieces, "</s>", .. t.Encode("c", false).Pieces], e.Pieces);
    }

    [Fact]
    public void Null_text_or_ids_are_argument_errors_and_a_bad_id_names_the_valid_range()
    {
        Assert.Throws<ArgumentNullException>(() => Tokenizer.Encode(null!));
        Assert.Throws<ArgumentNullException>(() => Tokenizer.Decode(null!));
        ArgumentException e = Assert.Throws<ArgumentException>(() => Tokenizer.Decode([32100]));
        Assert.Equal("Token id 32100 is outside the T5 vocabulary (valid ids are 0..32099). (Parameter 'ids')", e.Message);
    }

    [Fact]
    public void Encode_without_special_tokens_has_no_eos()
    {
        T5Tokenizer t = Tokenizer;
        Assert.Equal([21820], t.Encode("hello", addSpecialTokens: false).Ids);
        Assert.Empty(t.Encode("", addSpecialTokens: false).Ids);
        Assert.Equal([1], t.Encode("").Ids);
        Assert.Equal(["</s>"], t.Encode("   ").Pieces);
    }

    [Fact]
    public void Consecutive_unknown_characters_are_one_unk_as_in_sentencepiece()
    {
        Encoding e = Tokenizer.Encode("\u65e5\u672c\u8a9e");
        Assert.Equal([3, 2, 1], e.Ids);
        Assert.Equal(["\u2581", "\u65e5\u672c\u8a9e", "</s>"], e.Pieces);
    }

    [Fact]
    public void Unk_decodes_to_its_token_unless_skipped()
    {
        T5Tokenizer t = Tokenizer;
        Encoding e = t.Encode("a \u65e5 b");
        Assert.Equal([3, 9, 3, 2, 3, 115, 1], e.Ids);

        // HF drops the <unk> id and lets SentencePiece decode the rest: the spaces on both sides stay.
        Assert.Equal("a  b", t.Decode(e.Ids));
        Assert.Equal("a <unk> b</s>", t.Decode(e.Ids, skipSpecialTokens: false));
    }

    [Fact]
    public void Decode_skips_pad_and_eos()
    {
        T5Tokenizer t = Tokenizer;
        Assert.Equal("hello", t.Decode([0, 21820, 1, 0, 0]));
        Assert.Equal("<pad> hello</s><pad><pad>", t.Decode([0, 21820, 1, 0, 0], skipSpecialTokens: false));
        Assert.Equal(string.Empty, t.Decode([]));
        Assert.Equal(string.Empty, t.Decode([0, 1, 2]));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(32100)]
    [InlineData(32127)]
    [InlineData(int.MaxValue)]
    [InlineData(int.MinValue)]
    public void Decode_rejects_ids_outside_the_vocabulary(int id)
    {
        ArgumentException e = Assert.Throws<ArgumentException>(() => Tokenizer.Decode([21820, id]));
        Assert.Contains(id.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_accepts_a_model_directory_and_caches_per_file()
    {
        T5Tokenizer fromFile = T5Tokenizer.Load(SpiecePath);
        T5Tokenizer fromDir = T5Tokenizer.Load(FixtureDir);

        Assert.Same(fromFile, fromDir);
        Assert.Equal(Path.GetFullPath(SpiecePath), fromDir.ModelPath);
    }

    [Fact]
    public void Load_reads_a_replaced_file_again()
    {
        string path = Path.Combine(_tempDir, "spiece.model");
        File.Copy(SpiecePath, path);
        T5Tokenizer first = T5Tokenizer.Load(path);
        Assert.Same(first, T5Tokenizer.Load(path));

        File.WriteAllBytes(path, [1, 2, 3]);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        Assert.Throws<TokenizerException>(() => T5Tokenizer.Load(path));

        File.Copy(SpiecePath, path, overwrite: true);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(2));
        T5Tokenizer again = T5Tokenizer.Load(path);
        Assert.NotSame(first, again);
        Assert.Equal(first.Encode("hello world").Ids, again.Encode("hello world").Ids);
    }

    [Fact]
    public void Missing_file_throws_naming_it()
    {
        string path = Path.Combine(_tempDir, "nope", "spiece.model");
        TokenizerException e = Assert.Throws<TokenizerException>(() => T5Tokenizer.Load(path));
        Assert.Equal($"Tokenizer model '{path}' not found.", e.Message);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void Directory_without_spiece_model_throws_naming_the_file()
    {
        TokenizerException e = Assert.Throws<TokenizerException>(() => T5Tokenizer.Load(_tempDir));
        string model = Path.Combine(_tempDir, "spiece.model");
        Assert.Equal($"Tokenizer model '{model}' not found: the directory '{_tempDir}' has no spiece.model.", e.Message);
        Assert.Equal(model, e.FilePath);
    }

    [Fact]
    public void Empty_file_throws_naming_it()
    {
        string path = Path.Combine(_tempDir, "empty.model");
        File.WriteAllBytes(path, []);
        TokenizerException e = Assert.Throws<TokenizerException>(() => T5Tokenizer.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("empty", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Random_bytes_throw_naming_the_file(int seed)
    {
        var random = new Random(seed);
        byte[] bytes = new byte[random.Next(1, 4096)];
        random.NextBytes(bytes);
        string path = Path.Combine(_tempDir, $"random{seed}.model");
        File.WriteAllBytes(path, bytes);

        TokenizerException e = Assert.Throws<TokenizerException>(() => T5Tokenizer.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(500_001)]
    public void Truncated_model_throws_naming_the_file(int length)
    {
        string path = Path.Combine(_tempDir, $"truncated{length}.model");
        File.WriteAllBytes(path, File.ReadAllBytes(SpiecePath).AsSpan(0, length).ToArray());

        TokenizerException e = Assert.Throws<TokenizerException>(() => T5Tokenizer.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_file_throws_naming_it()
    {
        string path = Path.Combine(_tempDir, "tokenizer_config.json");
        File.WriteAllText(path, "{\"tokenizer_class\": \"T5Tokenizer\"}");
        TokenizerException e = Assert.Throws<TokenizerException>(() => T5Tokenizer.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tiny_t5_fixture_model_directory_loads()
    {
        T5Tokenizer t = T5Tokenizer.Load(Path.Combine(FixtureDir, "tiny-t5"));
        Assert.Equal(Tokenizer.Encode("translate English to German: hi").Ids, t.Encode("translate English to German: hi").Ids);
    }

    [Fact]
    public void Encode_is_thread_safe()
    {
        T5Tokenizer t = Tokenizer;
        List<TokenizerCase> cases = [.. LoadFixtureCases(), .. LoadReferenceCases()];
        int[][] expected = cases.Select(c => t.Encode(c.Text).Ids.ToArray()).ToArray();

        Parallel.For(0, cases.Count * 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            int k = i % cases.Count;
            Assert.Equal(expected[k], t.Encode(cases[k].Text).Ids);
            Assert.Equal(cases[k].Decoded, t.Decode(expected[k]));
        });
    }

    private static void AssertCase(TokenizerCase c)
    {
        T5Tokenizer t = Tokenizer;
        Encoding e = t.Encode(c.Text);

        Assert.Equal(c.Ids, e.Ids);
        Assert.Equal(c.Pieces, e.Pieces);
        Assert.Equal(c.Decoded, t.Decode(e.Ids));
        Assert.Equal(c.Decoded, t.Decode(e.Ids, skipSpecialTokens: true));
        Assert.Equal(c.Ids.Take(c.Ids.Count - 1), t.Encode(c.Text, addSpecialTokens: false).Ids);
    }

    private static TheoryData<int, string> CaseIndexes(IReadOnlyList<TokenizerCase> cases)
    {
        var data = new TheoryData<int, string>();
        for (int i = 0; i < cases.Count; i++)
        {
            string text = cases[i].Text;
            data.Add(i, JsonSerializer.Serialize(text.Length > 40 ? text[..40] + "..." : text));
        }

        return data;
    }

    private static readonly Lazy<IReadOnlyList<TokenizerCase>> FixtureCaseList = new(() =>
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, "tokenizer-cases.json")));
        return ParseCases(doc.RootElement.GetProperty("cases"));
    });

    private static readonly Lazy<IReadOnlyList<TokenizerCase>> ReferenceCaseList = new(() =>
    {
        using JsonDocument doc = JsonDocument.Parse(SentencePieceReferenceCases.Json);
        return ParseCases(doc.RootElement);
    });

    private static IReadOnlyList<TokenizerCase> LoadFixtureCases() => FixtureCaseList.Value;

    private static IReadOnlyList<TokenizerCase> LoadReferenceCases() => ReferenceCaseList.Value;

    private static List<TokenizerCase> ParseCases(JsonElement array) =>
        array.EnumerateArray()
            .Select(c => new TokenizerCase(
                c.GetProperty("text").GetString()!,
                c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToList(),
                c.GetProperty("pieces").EnumerateArray().Select(x => x.GetString()!).ToList(),
                c.GetProperty("decoded").GetString()!))
            .ToList();

    private sealed record TokenizerCase(string Text, IReadOnlyList<int> Ids, IReadOnlyList<string> Pieces, string Decoded);
}
