using System.Text.Json.Nodes;
using LoraHub.Core.Tokenization;
using Xunit;
using static LoraHub.Core.Tests.Tokenization.HfBpeFiles;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>
/// HfJsonTokenizer on edited copies of the tiny GPT-2-style tokenizer.json (tests/fixtures/hf-bpe/tiny, 267 ids:
/// &lt;s&gt; 263, &lt;/s&gt; 264, &lt;mask&gt; 265, [x] 266): every part of the file it cannot run is refused with a
/// TokenizerException naming the file and the part, the parts it can run are read as Hugging Face reads them, and the
/// folder's side files decide bos/eos/pad/unk and clean-up.
/// </summary>
public sealed class HfJsonTokenizerFileTests
{
    private static JsonObject Tiny() => Cases("tiny")["variants"]![0]!["tokenizer"]!.DeepClone().AsObject();

    private static HfJsonTokenizer Load(Fixtures.TempDir dir, Action<JsonObject>? edit = null, string? tokenizerConfig = """{"bos_token": "<s>", "eos_token": "</s>"}""")
    {
        var json = Tiny();
        edit?.Invoke(json);
        File.WriteAllText(dir["tokenizer.json"], json.ToJsonString());
        if (tokenizerConfig is not null) File.WriteAllText(dir["tokenizer_config.json"], tokenizerConfig);
        return HfJsonTokenizer.Load(dir.Path);
    }

    private static string Problem(Action<JsonObject> edit, string? tokenizerConfig = """{"eos_token": "</s>"}""")
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<TokenizerException>(() => Load(dir, edit, tokenizerConfig));
        Assert.Equal(dir["tokenizer.json"], e.FilePath);
        var prefix = $"'{dir["tokenizer.json"]}': ";
        Assert.StartsWith(prefix, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message[prefix.Length..];
    }

    private static JsonNode Parse(string json) => JsonNode.Parse(json)!;

    [Fact]
    public void The_vocab_must_be_dense_non_negative_ids()
    {
        Assert.Equal("vocab entry 'zz' has no valid id", Problem(j => j["model"]!["vocab"]!["zz"] = -1));
        Assert.Equal("vocab entry 'zz' has no valid id", Problem(j => j["model"]!["vocab"]!["zz"] = "7"));
        Assert.Equal("vocab entry 'zz' has no valid id", Problem(j => j["model"]!["vocab"]!["zz"] = 1.5));
        Assert.Equal("vocab entry 'zz' has no valid id", Problem(j => j["model"]!["vocab"]!["zz"] = 2147483648L));
        Assert.Equal("the BPE model has an empty vocab", Problem(j =>
        {
            j["model"]!["vocab"] = new JsonObject();
            j["model"]!["merges"] = new JsonArray();
            j["added_tokens"] = new JsonArray();
        }));
        Assert.Equal("the BPE model has no vocab", Problem(j => j["model"]!["vocab"] = new JsonArray()));
        Assert.Equal($"token id {1 << 24} is larger than the {(1 << 24) - 1} allowed", Problem(j => j["model"]!["vocab"]!["zz"] = 1 << 24));
        Assert.Equal("token id 2000 is far beyond its 268 tokens (ids must be dense)", Problem(j => j["model"]!["vocab"]!["zz"] = 2000));
    }

    [Fact]
    public void Ids_up_to_twice_the_tokens_plus_1024_are_accepted_and_gaps_name_no_token()
    {
        using var dir = new Fixtures.TempDir();
        // 268 tokens: the largest id allowed is 2 * 268 + 1024 - 1 = 1559.
        var t = Load(dir, j => j["model"]!["vocab"]!["zz"] = 1559);
        Assert.Equal(1560, t.VocabSize);
        Assert.Null(t.TokenText(1000));
        Assert.Null(t.TokenText(1560));
        Assert.Null(t.TokenText(-1));
        Assert.Equal("zz", t.TokenText(1559));
        Assert.Equal("", t.Decode([1000]));
        Assert.Equal("token id 1560 is far beyond its 268 tokens (ids must be dense)", Problem(j => j["model"]!["vocab"]!["zz"] = 1560));
    }

    [Fact]
    public void Model_options_that_change_bpe_are_refused()
    {
        Assert.Equal("BPE continuing_subword_prefix is not supported (byte-level BPE has none)", Problem(j => j["model"]!["continuing_subword_prefix"] = "##"));
        Assert.Equal("BPE end_of_word_suffix is not supported (byte-level BPE has none)", Problem(j => j["model"]!["end_of_word_suffix"] = "</w>"));
        Assert.Equal("BPE dropout is not supported (encoding would be random)", Problem(j => j["model"]!["dropout"] = 0.1));
        Assert.Equal("model type '(none)' is not supported; only byte-level BPE tokenizers (Llama 3, Qwen2) are read from tokenizer.json", Problem(j =>
        {
            j["model"]!.AsObject().Remove("type");
            j["model"]!.AsObject().Remove("merges");
        }));

        // Harmless values of the same options load, and a model without "type" but with merges is BPE.
        using var dir = new Fixtures.TempDir();
        var t = Load(dir, j =>
        {
            j["model"]!["dropout"] = 0.0;
            j["model"]!["continuing_subword_prefix"] = "";
            j["model"]!["end_of_word_suffix"] = null;
            j["model"]!.AsObject().Remove("type");
        });
        Assert.Equal(264, t.EosId);
    }

    [Fact]
    public void Merges_must_be_pairs_of_vocabulary_tokens()
    {
        Assert.Equal("BPE merges are not a list", Problem(j => j["model"]!["merges"] = "h e"));
        Assert.StartsWith("BPE merge #1 (\"he\") is not a pair of byte-level tokens", Problem(j => j["model"]!["merges"]![1] = "he"));
        Assert.StartsWith("BPE merge #0 (\" he\") is not a pair", Problem(j => j["model"]!["merges"]![0] = " he"));
        Assert.StartsWith("BPE merge #0 (\"h e \") is not a pair", Problem(j => j["model"]!["merges"]![0] = "h e "));
        Assert.StartsWith("BPE merge #0 ([\"h\"]) is not a pair", Problem(j => j["model"]!["merges"]![0] = new JsonArray("h")));
        Assert.StartsWith("BPE merge #0 ([\"h\",1]) is not a pair", Problem(j => j["model"]!["merges"]![0] = new JsonArray("h", 1)));
        Assert.StartsWith("BPE merge #0 ([\"h\",\"e x\"]) is not a pair", Problem(j => j["model"]!["merges"]![0] = new JsonArray("h", "e x")));
        Assert.StartsWith("BPE merge #0 ([\"\",\"e\"]) is not a pair", Problem(j => j["model"]!["merges"]![0] = new JsonArray("", "e")));
        Assert.StartsWith("BPE merge #0 (5) is not a pair", Problem(j => j["model"]!["merges"]![0] = 5));
        Assert.Equal("BPE merge #0 (h q) names a token that is not in the vocab", Problem(j => j["model"]!["merges"]![0] = "h q"));
        Assert.Equal("BPE merge #0 (q h) names a token that is not in the vocab", Problem(j => j["model"]!["merges"]![0] = "q h"));
    }

    [Fact]
    public void Added_tokens_need_an_id_and_a_text()
    {
        Assert.StartsWith("malformed added token {\"id\":-1", Problem(j => j["added_tokens"]!.AsArray().Add(Parse("""{"id": -1, "content": "<q>"}"""))));
        Assert.StartsWith("malformed added token {\"content\"", Problem(j => j["added_tokens"]!.AsArray().Add(Parse("""{"content": "<q>"}"""))));
        Assert.StartsWith("malformed added token {\"id\":267,\"content\":\"\"}", Problem(j => j["added_tokens"]!.AsArray().Add(Parse("""{"id": 267, "content": ""}"""))));
        Assert.StartsWith("malformed added token {\"id\":267}", Problem(j => j["added_tokens"]!.AsArray().Add(Parse("""{"id": 267}"""))));
        Assert.Equal("malformed added token 7", Problem(j => j["added_tokens"]!.AsArray().Add(7)));
        Assert.StartsWith("malformed added token", Problem(j => j["added_tokens"]!.AsArray().Add(null)));
    }

    [Fact]
    public void An_added_token_beyond_the_vocab_extends_the_id_space()
    {
        using var dir = new Fixtures.TempDir();
        var t = Load(dir, j => j["added_tokens"]!.AsArray().Add(Parse("""{"id": 300, "content": "<q>", "special": true}""")));
        Assert.Equal(301, t.VocabSize);
        Assert.Equal([263, 300, 264], t.Encode("<q>").Ids);
        Assert.Equal("", t.Decode([300]));
        Assert.Equal("<q>", t.Decode([300], skipSpecialTokens: false));
    }

    [Fact]
    public void Normalizers_are_read_alone_or_in_sequences()
    {
        // "ﬁ" (U+FB01) is "fi" under NFKC/NFKD only; "é" composed (NFC) and decomposed (NFD) are different bytes.
        string[] texts = ["\uFB01", "e\u0301", "\u00E9"];
        int[][] Ids(string? type, bool sequence = false)
        {
            using var d = new Fixtures.TempDir();
            var t = Load(d, j => j["normalizer"] = type is null ? null
                : sequence ? Parse($$"""{"type": "Sequence", "normalizers": [{"type": "{{type}}"}]}""") : Parse($$"""{"type": "{{type}}"}"""));
            return texts.Select(x => t.Encode(x, addSpecialTokens: false).Ids.ToArray()).ToArray();
        }
        var none = Ids(null);
        var nfc = Ids("NFC");
        var nfd = Ids("NFD");
        var nfkc = Ids("NFKC");
        var nfkd = Ids("NFKD");
        Assert.Equal(none[0], nfc[0]);
        Assert.NotEqual(none[0], nfkc[0]);
        Assert.Equal(nfkc[0], nfkd[0]);
        Assert.Equal(nfc[2], nfc[1]);
        Assert.Equal(nfd[1], nfd[2]);
        Assert.NotEqual(nfc[1], nfd[1]);
        Assert.Equal(nfkc[1], nfc[1]);
        Assert.Equal(nfkd[1], nfd[1]);
        Assert.Equal(nfkc, Ids("NFKC", sequence: true));
        Assert.Equal("normalizer 'Lowercase' is not supported (NFC, NFD, NFKC, NFKD or a Sequence of them)", Problem(j => j["normalizer"] = Parse("""{"type": "Lowercase"}""")));
        Assert.Equal("normalizer 'Sequence' is not supported (NFC, NFD, NFKC, NFKD or a Sequence of them)", Problem(j => j["normalizer"] = Parse("""{"type": "Sequence"}""")));
        Assert.Equal("normalizer '' is not supported (NFC, NFD, NFKC, NFKD or a Sequence of them)", Problem(j => j["normalizer"] = Parse("""{"type": 5}""")));
    }

    [Fact]
    public void Pre_tokenizer_steps_before_byte_level_must_be_splits()
    {
        const string ByteLevel = """{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}""";
        Assert.Equal("pre-tokenizer 'Whitespace' is not supported before ByteLevel (only Split)", Problem(j => j["pre_tokenizer"] = Parse(
            $$"""{"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {{ByteLevel}}]}""")));
        Assert.Equal("Split pre-tokenizer without a Regex or String pattern", Problem(j => j["pre_tokenizer"] = Parse(
            $$"""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": "\\s", "behavior": "Isolated"}, {{ByteLevel}}]}""")));
        Assert.Equal("Split behavior 'Sideways' is not known", Problem(j => j["pre_tokenizer"] = Parse(
            $$"""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Sideways"}, {{ByteLevel}}]}""")));
        Assert.Equal("Split behavior '' is not known", Problem(j => j["pre_tokenizer"] = Parse(
            $$$"""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s"}}, {{{ByteLevel}}}]}""")));
        Assert.StartsWith("not a byte-level BPE tokenizer (its pre_tokenizer does not end with ByteLevel)", Problem(j => j["pre_tokenizer"] = Parse(
            $$"""{"type": "Sequence", "pretokenizers": [{{ByteLevel}}, {"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Isolated"}]}""")));
        Assert.StartsWith("not a byte-level BPE tokenizer", Problem(j => j["pre_tokenizer"] = Parse("""{"type": "Sequence", "pretokenizers": []}""")));
    }

    [Fact]
    public void A_string_split_pattern_is_literal_text()
    {
        const string ByteLevel = """{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}""";
        HfJsonTokenizer With(string pattern)
        {
            using var d = new Fixtures.TempDir();
            return Load(d, j => j["pre_tokenizer"] = Parse(
                $$"""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {{pattern}}, "behavior": "Removed"}, {{ByteLevel}}]}"""));
        }
        // "." as a String removes only dots; as a Regex it removes every character.
        var literal = With("""{"String": "."}""");
        Assert.Equal([.. literal.Encode("he", false).Ids, .. literal.Encode("he", false).Ids], literal.Encode("he.he", false).Ids);
        Assert.Empty(With("""{"Regex": "."}""").Encode("he.he", false).Ids);
    }

    [Fact]
    public void Byte_level_without_its_regex_keeps_the_text_whole()
    {
        using var withRegex = new Fixtures.TempDir();
        using var without = new Fixtures.TempDir();
        var split = Load(withRegex);
        var whole = Load(without, j => j["pre_tokenizer"]!["use_regex"] = false);
        using var third = new Fixtures.TempDir();
        using var fourth = new Fixtures.TempDir();
        var explicitTrue = Load(third, j => j["pre_tokenizer"]!["use_regex"] = true);
        var notABool = Load(fourth, j => j["pre_tokenizer"]!["use_regex"] = "no");
        // " the" is one pre-token either way; "he!" splits at "!" only with the GPT-2 regex.
        Assert.Equal(split.Encode("he!he", false).Ids, explicitTrue.Encode("he!he", false).Ids);
        Assert.Equal(split.Encode("he!he", false).Ids, notABool.Encode("he!he", false).Ids);
        Assert.Equal(split.Encode("hehe", false).Ids, whole.Encode("hehe", false).Ids);
        Assert.Equal(
            [.. split.Encode("he", false).Ids, .. split.Encode("!", false).Ids, .. split.Encode("he", false).Ids],
            split.Encode("he!he", false).Ids);
    }

    [Fact]
    public void Decoders_other_than_byte_level_are_refused()
    {
        Assert.Equal("decoder '(none)' is not supported (byte-level BPE decodes with ByteLevel)", Problem(j => j["decoder"] = null));
        Assert.Equal("decoder 'Sequence' is not supported (byte-level BPE decodes with ByteLevel)", Problem(j => j["decoder"] = Parse("""{"type": "Sequence", "decoders": []}""")));
        Assert.Equal("decoder 'Sequence' is not supported (byte-level BPE decodes with ByteLevel)", Problem(j => j["decoder"] = Parse("""{"type": "Sequence", "decoders": [{"type": "ByteLevel"}, {"type": "Fuse"}]}""")));
        Assert.Equal("decoder 'Sequence' is not supported (byte-level BPE decodes with ByteLevel)", Problem(j => j["decoder"] = Parse("""{"type": "Sequence"}""")));

        using var dir = new Fixtures.TempDir();
        var t = Load(dir, j => j["decoder"] = Parse("""{"type": "Sequence", "decoders": [{"type": "ByteLevel"}, {"type": "ByteLevel"}]}"""));
        Assert.Equal("hehe", t.Decode(t.Encode("hehe").Ids));
    }

    [Fact]
    public void Post_processors_give_the_template_prefix_and_suffix()
    {
        using var dir = new Fixtures.TempDir();
        var none = Load(dir, j => j["post_processor"] = null);
        Assert.Null(none.BosId);
        Assert.Equal(none.Encode("he", false).Ids, none.Encode("he").Ids);

        using var other = new Fixtures.TempDir();
        var sequence = Load(other, j => j["post_processor"] = Parse("""
            {"type": "Sequence", "processors": [
              {"type": "ByteLevel"},
              {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"SpecialToken": {"id": "[x]"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "</s>"}}, {"SpecialToken": {"id": "<mask>"}}],
               "special_tokens": {"<s>": {"ids": [263]}, "</s>": {"ids": [264]}, "[x]": {"ids": [266]}, "<mask>": {"ids": [265]}}}]}
            """));
        Assert.Equal(263, sequence.BosId);
        Assert.Equal([263, 266, .. sequence.Encode("he", false).Ids, 264, 265], sequence.Encode("he").Ids);

        Assert.Equal("post_processor 'Sequence' is not supported (TemplateProcessing, ByteLevel or a Sequence of them)", Problem(j => j["post_processor"] = Parse("""{"type": "Sequence"}""")));
        Assert.Equal("post_processor 'TemplateProcessing' is not supported (TemplateProcessing, ByteLevel or a Sequence of them)", Problem(j => j["post_processor"] = Parse("""{"type": "TemplateProcessing"}""")));
        Assert.Equal("template piece {\"Other\":1} is neither a SpecialToken nor the Sequence", Problem(j => j["post_processor"]!["single"]!.AsArray().Add(Parse("""{"Other": 1}"""))));
        Assert.Equal("template special token '<z>' has no ids in special_tokens", Problem(j => j["post_processor"]!["single"]!.AsArray().Add(Parse("""{"SpecialToken": {"id": "<z>"}}"""))));
        Assert.Equal("template special token '<s>' has id -1, not a token id", Problem(j => j["post_processor"]!["special_tokens"]!["<s>"]!["ids"] = Parse("[-1]")));
        Assert.Equal("template special token '<s>' has id null, not a token id", Problem(j => j["post_processor"]!["special_tokens"]!["<s>"]!["ids"] = Parse("[null]")));
        Assert.Equal("the post_processor template token id 400 is not a token of this vocabulary (0..266)", Problem(j => j["post_processor"]!["special_tokens"]!["</s>"]!["ids"] = Parse("[400]")));
    }

    [Fact]
    public void Id_zero_is_a_token_like_any_other_and_a_replaced_tokenizer_json_is_read_again()
    {
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir["config.json"], """{"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}""");
        var t = Load(dir, tokenizerConfig: null);
        Assert.Equal((0, 0, 0), (t.BosToken, t.EosId, t.PadId));

        // The cache keys on tokenizer.json itself as well as its side files: a new vocabulary is a new tokenizer.
        Assert.Same(t, HfJsonTokenizer.Load(dir.Path));
        Load(dir, j => j["added_tokens"]!.AsArray().RemoveAt(3), tokenizerConfig: null);
        File.SetLastWriteTimeUtc(dir["tokenizer.json"], DateTime.UtcNow.AddMinutes(1));
        var again = HfJsonTokenizer.Load(dir.Path);
        Assert.NotSame(t, again);
        Assert.Contains(266, t.Encode(" [x] ", addSpecialTokens: false).Ids);
        Assert.DoesNotContain(266, again.Encode(" [x] ", addSpecialTokens: false).Ids);
    }

    [Fact]
    public void Null_or_blank_arguments_are_argument_errors()
    {
        using var dir = new Fixtures.TempDir();
        var t = Load(dir);
        Assert.Throws<ArgumentNullException>(() => t.Encode(null!));
        Assert.Throws<ArgumentNullException>(() => t.Decode(null!));
        Assert.ThrowsAny<ArgumentException>(() => HfJsonTokenizer.Load("  "));
    }

    [Fact]
    public void Side_file_ids_must_name_tokens()
    {
        Assert.Equal("the bos token id 267 is not a token of this vocabulary (0..266)", ProblemWithConfig("""{"bos_token_id": 267, "eos_token_id": 264}"""));
        Assert.Equal("the pad token id -1 is not a token of this vocabulary (0..266)", ProblemWithConfig("""{"pad_token_id": -1, "eos_token_id": 264}"""));
        Assert.Equal("the eos token id 267 is not a token of this vocabulary (0..266)", ProblemWithConfig("""{"eos_token_id": [267]}"""));

        static string ProblemWithConfig(string config)
        {
            using var dir = new Fixtures.TempDir();
            File.WriteAllText(dir["config.json"], config);
            var json = Tiny();
            File.WriteAllText(dir["tokenizer.json"], json.ToJsonString());
            var e = Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path));
            return e.Message[$"'{dir["tokenizer.json"]}': ".Length..];
        }
    }

    [Fact]
    public void Unk_comes_from_the_side_files_then_the_model_then_eos()
    {
        using var a = new Fixtures.TempDir();
        Assert.Equal(265, Load(a, tokenizerConfig: """{"eos_token": "</s>", "unk_token": "<mask>"}""").UnkId);
        using var b = new Fixtures.TempDir();
        Assert.Equal(266, Load(b, j => j["model"]!["unk_token"] = "[x]", """{"eos_token": "</s>"}""").UnkId);
        using var c = new Fixtures.TempDir();
        Assert.Equal(264, Load(c, j => j["model"]!["unk_token"] = null, """{"eos_token": "</s>"}""").UnkId);
        using var d = new Fixtures.TempDir();
        Assert.Equal(264, Load(d, j => j["model"]!["unk_token"] = "<not-a-token>", """{"eos_token": "</s>"}""").UnkId);
    }

    [Fact]
    public void Clean_up_tokenization_spaces_is_applied_when_the_config_asks()
    {
        using var on = new Fixtures.TempDir();
        using var off = new Fixtures.TempDir();
        var clean = Load(on, tokenizerConfig: """{"eos_token": "</s>", "clean_up_tokenization_spaces": true}""");
        var raw = Load(off, tokenizerConfig: """{"eos_token": "</s>", "clean_up_tokenization_spaces": false}""");
        const string Text = "he . he ? he ! he , he ' he n't he 'm he 's he 've he 're";
        var ids = raw.Encode(Text, false).Ids;
        Assert.Equal(Text, raw.Decode(ids));
        Assert.Equal("he. he? he! he, he'hen't he'm he's he've he're", clean.Decode(ids));
        Assert.Equal("don't", HfJsonTokenizer.CleanUpTokenization("do n't"));
    }

    [Fact]
    public void Side_files_that_are_not_json_objects_are_named()
    {
        foreach (var name in new[] { "tokenizer_config.json", "special_tokens_map.json", "config.json" })
        {
            using var dir = new Fixtures.TempDir();
            File.WriteAllText(dir["tokenizer.json"], Tiny().ToJsonString());
            File.WriteAllText(dir[name], "[1, 2]");
            var e = Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path));
            Assert.Equal($"'{dir[name]}' is not a JSON object", e.Message);
            Assert.Equal(dir[name], e.FilePath);

            File.WriteAllText(dir[name], "{\"a\": 1, \"a\": 2}");
            e = Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path));
            Assert.StartsWith($"'{dir[name]}' is not valid JSON: ", e.Message);
        }
    }

    [Fact]
    public void A_tokenizer_json_that_is_not_utf8_or_missing_is_named()
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path));
        Assert.Equal($"Tokenizer file '{dir["tokenizer.json"]}' not found.", e.Message);
        Assert.Equal(dir["tokenizer.json"], e.FilePath);

        File.WriteAllBytes(dir["tokenizer.json"], [(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}']);
        Assert.Equal($"'{dir["tokenizer.json"]}': is not valid UTF-8", Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path)).Message);
    }

    [Fact]
    public void A_changed_side_file_is_read_again()
    {
        using var dir = new Fixtures.TempDir();
        var first = Load(dir);
        Assert.Same(first, HfJsonTokenizer.Load(dir["tokenizer.json"]));
        Assert.Equal(dir["tokenizer.json"], first.TokenizerPath);
        File.WriteAllText(dir["tokenizer_config.json"], """{"eos_token": "<mask>"}""");
        File.SetLastWriteTimeUtc(dir["tokenizer_config.json"], DateTime.UtcNow.AddMinutes(1));
        var second = HfJsonTokenizer.Load(dir.Path);
        Assert.NotSame(first, second);
        Assert.Equal(265, second.EosId);
        File.WriteAllText(dir["special_tokens_map.json"], """{"eos_token": "[x]"}""");
        Assert.NotSame(second, HfJsonTokenizer.Load(dir.Path));
    }
}
