using System.Globalization;
using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using Xunit;
using static LoraHub.Core.Tests.Tokenization.HfBpeFiles;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>
/// HfJsonTokenizer against Hugging Face's Rust tokenizers 0.22.2 on the real Qwen2.5 tokenizer.json and a Llama 3.1-configured one (llama3-style)
/// (ids, tokens and decodings of every golden case), and on tiny variants for the options those files do not use.
/// </summary>
public sealed class HfJsonTokenizerTests
{
    private static readonly string[] Models = ["llama3-style", "qwen2"];
    private static readonly Dictionary<string, JsonObject> Golden = Models.ToDictionary(m => m, Cases);

    private static HfJsonTokenizer Tokenizer(string model) => HfJsonTokenizer.Load(Folder(model));

    public static TheoryData<string, int> CaseIndexes()
    {
        var data = new TheoryData<string, int>();
        foreach (var m in Models)
            for (var i = 0; i < Golden[m]["cases"]!.AsArray().Count; i++) data.Add(m, i);
        return data;
    }

    public static TheoryData<string, int> DecodeIndexes()
    {
        var data = new TheoryData<string, int>();
        foreach (var m in Models)
            for (var i = 0; i < Golden[m]["decodes"]!.AsArray().Count; i++) data.Add(m, i);
        return data;
    }

    [Fact]
    public void The_golden_sets_are_large_and_agree_with_tokenizers_js()
    {
        foreach (var m in Models)
        {
            Assert.True(Golden[m]["cases"]!.AsArray().Count >= 100);
            Assert.Empty(Golden[m]["js_disagrees"]!.AsArray());
        }
    }

    [Theory]
    [MemberData(nameof(CaseIndexes))]
    public void Ids_tokens_and_decodings_match_hugging_face(string model, int index)
    {
        var c = Golden[model]["cases"]![index]!;
        var text = c["text"]!.GetValue<string>();
        var tokenizer = Tokenizer(model);
        var encoding = tokenizer.Encode(text);
        Assert.Equal(Ids(c["ids"]!), encoding.Ids);
        Assert.Equal(c["tokens"]!.AsArray().Select(t => t!.GetValue<string>()), encoding.Pieces);
        Assert.Equal(Ids(c["ids_no_special"]!), tokenizer.Encode(text, addSpecialTokens: false).Ids);
        Assert.Equal(c["hf_decode_skip_special_tokens"]!.GetValue<string>(), tokenizer.Decode(encoding.Ids));
        Assert.Equal(c["hf_decode"]!.GetValue<string>(), tokenizer.Decode(encoding.Ids, skipSpecialTokens: false));
    }

    [Theory]
    [MemberData(nameof(DecodeIndexes))]
    public void Decoding_partial_characters_matches_hugging_face(string model, int index)
    {
        var d = Golden[model]["decodes"]![index]!;
        Assert.Equal(d["hf_decode"]!.GetValue<string>(), Tokenizer(model).Decode(Ids(d["ids"]!), d["skip_special_tokens"]!.GetValue<bool>()));
    }

    [Fact]
    public void Decoding_round_trips_every_text()
    {
        // Byte-level BPE is lossless: only Qwen2's NFC normalization (and Llama 3.1's configured clean-up) change text.
        using var dir = new Fixtures.TempDir();
        CopyTokenizer("llama3-style", dir.Path);
        File.WriteAllText(dir["tokenizer_config.json"], """{"eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": false}""");
        var llama = HfJsonTokenizer.Load(dir.Path);
        var qwen = Tokenizer("qwen2");
        foreach (var c in Golden["llama3-style"]["cases"]!.AsArray())
        {
            var text = c!["text"]!.GetValue<string>();
            Assert.Equal(text, llama.Decode(llama.Encode(text, addSpecialTokens: false).Ids, skipSpecialTokens: false));
            Assert.Equal(text.Normalize(), qwen.Decode(qwen.Encode(text, addSpecialTokens: false).Ids, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void Llama3_style_special_ids_come_from_the_files()
    {
        var t = Tokenizer("llama3-style");
        // Llama 3's 256 special tokens follow the 151,643 vocabulary entries (Llama 3.1 itself: 128000 and 128009).
        Assert.Equal(151643, t.BosId);
        Assert.Equal(151643, t.BosToken);
        Assert.Equal(151652, t.EosId); // Llama 3.1 Instruct: eos_token <|eot_id|>
        Assert.Equal(151652, t.PadId); // no pad token: eos
        Assert.Equal(151899, t.VocabSize);
        Assert.Equal([151643, 9707, 151652], t.Encode("Hello<|eot_id|>").Ids);
        Assert.Equal([9707, 151652], t.Encode("Hello<|eot_id|>", addSpecialTokens: false).Ids);
        Assert.Equal("Hello", t.Decode([151643, 9707, 151652]));
        Assert.Equal("<|begin_of_text|>Hello<|eot_id|>", t.Decode([151643, 9707, 151652], skipSpecialTokens: false));
    }

    [Fact]
    public void Qwen2_has_no_bos_and_its_eos_and_pad_come_from_tokenizer_config()
    {
        var t = Tokenizer("qwen2");
        Assert.Null(t.BosId);
        Assert.Null(t.BosToken); // bos_token: null, though config.json files name 151643
        Assert.Equal(151645, t.EosId); // <|im_end|>
        Assert.Equal(151643, t.PadId); // <|endoftext|>
        Assert.Equal(151665, t.VocabSize);
        Assert.Equal([9707, 151645], t.Encode("Hello<|im_end|>").Ids);
        // <tool_call> is an added token but not special: kept when special tokens are skipped.
        Assert.Equal("<tool_call>x", t.Decode([151657, 87, 151645]));
        var e = CausalExample.FromText(t, "Hi", "Yo");
        Assert.Equal(t.Encode("Hi", addSpecialTokens: false).Ids, e.PromptIds);
        Assert.Equal(151645, e.CompletionIds[^1]);
    }

    [Fact]
    public void Special_ids_fall_back_through_the_folders_files()
    {
        using var dir = new Fixtures.TempDir();
        CopyTokenizer("qwen2", dir.Path);
        // The base model's settings: eos <|endoftext|>, no pad (so eos), the {"content": ...} object form.
        File.WriteAllText(dir["tokenizer_config.json"], """{"bos_token": null, "eos_token": {"content": "<|endoftext|>", "lstrip": false}}""");
        var t = HfJsonTokenizer.Load(dir.Path);
        Assert.Equal((null, 151643, 151643), (t.BosToken, t.EosId, t.PadId));

        // Without tokenizer_config.json: special_tokens_map.json, then config.json ids (the first of a list).
        File.Delete(dir["tokenizer_config.json"]);
        File.WriteAllText(dir["config.json"], """{"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643}""");
        t = HfJsonTokenizer.Load(dir.Path);
        Assert.Equal((151643, 151645, 151643), (t.BosToken, t.EosId, t.PadId));
        Assert.Null(t.BosId); // named, but Qwen2's post-processor does not add it
        File.WriteAllText(dir["special_tokens_map.json"], """{"eos_token": "<|im_start|>"}""");
        Assert.Equal(151644, HfJsonTokenizer.Load(dir.Path).EosId);

        File.Delete(dir["special_tokens_map.json"]);
        File.Delete(dir["config.json"]);
        var e = Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path));
        Assert.Contains("no eos", e.Message);
    }

    [Fact]
    public void A_template_free_llama3_file_adds_no_bos_as_hugging_face()
    {
        // The first Llama 3 release's tokenizer.json had only a ByteLevel post-processor: no bos is added.
        using var dir = new Fixtures.TempDir();
        CopyTokenizer("llama3-style", dir.Path, json => json["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true });
        File.WriteAllText(dir["tokenizer_config.json"], """{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}""");
        var t = HfJsonTokenizer.Load(dir.Path);
        Assert.Null(t.BosId);
        Assert.Equal(151643, t.BosToken);
        Assert.Equal(151644, t.EosId);
        Assert.Equal([9707, 1879], t.Encode("Hello world").Ids);
    }

    [Fact]
    public void Lone_surrogates_encode_as_replacement_characters_and_bad_ids_are_refused()
    {
        var t = Tokenizer("llama3-style");
        Assert.Equal(t.Encode("a\uFFFDb").Ids, t.Encode("a\uD800b").Ids);
        Assert.Throws<ArgumentException>(() => t.Decode([151899]));
        Assert.Throws<ArgumentException>(() => t.Decode([-1]));
    }

    [Fact]
    public void Stand_ins_have_the_category_they_stand_for()
    {
        for (var c = 0; c < CodePointRegex.StandIns.Length; c++)
        {
            if ((UnicodeCategory)c == UnicodeCategory.Surrogate) continue;
            var standIn = CodePointRegex.StandIns[c];
            Assert.Equal((UnicodeCategory)c, CharUnicodeInfo.GetUnicodeCategory(standIn));
            Assert.False(char.IsWhiteSpace(standIn) && (c is < 11 or > 13), $"stand-in U+{(int)standIn:X4} is whitespace");
            Assert.True(standIn > 0x7F);
        }
        Assert.Equal(30, CodePointRegex.StandIns.Length);
    }

    [Fact]
    public void Astral_letters_and_digits_match_as_code_points()
    {
        const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        var regex = new CodePointRegex(Llama3);
        string[] Pieces(string text) => regex.Matches(text).Select(m => text.Substring(m.Start, m.Length)).ToArray();
        Assert.Equal(["x\U0001D400y", " z"], Pieces("x\U0001D400y z")); // 𝐀 is a letter (Lu)
        Assert.Equal(["\U0001F600abc"], Pieces("\U0001F600abc")); // an emoji is the optional non-letter before letters
        Assert.Equal(["\U0001D7CF\U0001D7D0\U0001D7D1", "\U0001D7D2"], Pieces("\U0001D7CF\U0001D7D0\U0001D7D1\U0001D7D2")); // 𝟏𝟐𝟑𝟒: digits in threes
        Assert.Equal(["hello", "   "], Pieces("hello   "));
        Assert.Equal(["it", "'s", " ", "123", "4"], Pieces("it's 1234"));
    }

    public static TheoryData<string> TinyVariants()
    {
        var data = new TheoryData<string>();
        foreach (var v in Cases("tiny")["variants"]!.AsArray()) data.Add(v!["variant"]!.GetValue<string>());
        return data;
    }

    [Theory]
    [MemberData(nameof(TinyVariants))]
    public void Tiny_variants_match_hugging_face(string variant)
    {
        var v = Cases("tiny")["variants"]!.AsArray().First(x => x!["variant"]!.GetValue<string>() == variant)!;
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir["tokenizer.json"], v["tokenizer"]!.ToJsonString());
        File.WriteAllText(dir["tokenizer_config.json"], """{"bos_token": "<s>", "eos_token": "</s>"}""");
        var t = HfJsonTokenizer.Load(dir.Path);
        Assert.Equal((263, 264, 264, 267), (t.BosId, t.EosId, t.PadId, t.VocabSize));
        foreach (var c in v["cases"]!.AsArray())
        {
            var text = c!["text"]!.GetValue<string>();
            var ids = Ids(c["ids"]!);
            Assert.Equal(ids, t.Encode(text).Ids);
            Assert.Equal(Ids(c["ids_no_special"]!), t.Encode(text, addSpecialTokens: false).Ids);
            Assert.Equal(c["decode"]!.GetValue<string>(), t.Decode(ids, skipSpecialTokens: false));
            Assert.Equal(c["decode_skip_special_tokens"]!.GetValue<string>(), t.Decode(ids));
        }
    }

    private static string TinyFolder(Fixtures.TempDir dir, Action<JsonObject> edit)
    {
        var json = Cases("tiny")["variants"]![0]!["tokenizer"]!.DeepClone().AsObject();
        edit(json);
        File.WriteAllText(dir["tokenizer.json"], json.ToJsonString());
        File.WriteAllText(dir["tokenizer_config.json"], """{"eos_token": "</s>"}""");
        return dir.Path;
    }

    public static TheoryData<string, string> BadFiles() => new()
    {
        { "not json", "not valid JSON" },
        { "[1, 2]", "not a JSON object" },
        { """{"version": "1.0"}""", "no \"model\" section" },
        { """{"model": {"type": "WordPiece", "vocab": {"a": 0}}}""", "model type 'WordPiece' is not supported" },
        { """{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}""", "model type 'Unigram' is not supported" },
        { """{"model": {"type": "BPE", "merges": []}}""", "has no vocab" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Bad_files_are_errors_that_name_the_file_and_the_problem(string content, string problem)
    {
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir["tokenizer.json"], content);
        var e = Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path));
        Assert.Contains(dir["tokenizer.json"], e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Equal(dir["tokenizer.json"], e.FilePath);
    }

    [Fact]
    public void Unsupported_parts_of_a_bpe_file_are_named()
    {
        using var dir = new Fixtures.TempDir();
        string Problem(Action<JsonObject> edit) => Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(TinyFolder(dir, edit))).Message;

        // A SentencePiece-style tokenizer.json (Llama 2): Metaspace pre-tokenizer, read from tokenizer.model instead.
        Assert.Contains("not a byte-level BPE", Problem(j => j["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁" }));
        Assert.Contains("tokenizer.model", Problem(j => j["pre_tokenizer"] = null));
        Assert.Contains("decoder 'Metaspace'", Problem(j => j["decoder"] = new JsonObject { ["type"] = "Metaspace" }));
        Assert.Contains("merge #0", Problem(j => j["model"]!["merges"]![0] = "h e x"));
        Assert.Contains("not in the vocab", Problem(j => j["model"]!["merges"]![0] = "h \u4e00"));
        Assert.Contains("dropout", Problem(j => j["model"]!["dropout"] = 0.1));
        Assert.Contains("normalizer 'Lowercase'", Problem(j => j["normalizer"] = new JsonObject { ["type"] = "Lowercase" }));
        Assert.Contains("post_processor 'BertProcessing'", Problem(j => j["post_processor"] = new JsonObject { ["type"] = "BertProcessing" }));
        Assert.Contains("not a pattern .NET can run", Problem(j => j["pre_tokenizer"] = JsonNode.Parse(
            """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "a(?<"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel"}]}""")));
        TinyFolder(dir, _ => { });
        File.WriteAllText(dir["tokenizer_config.json"], "{oops");
        Assert.Contains("tokenizer_config.json' is not valid JSON", Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(dir.Path)).Message);
    }

    [Fact]
    public void Model_loader_reads_tokenizer_json_and_keeps_tokenizer_model_first()
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadCausalTokenizer(dir.Path));
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains("tokenizer.json", e.Message);
        Assert.DoesNotContain("not supported yet", e.Message);
        Assert.Contains("tokenizer.json", Assert.Throws<ModelFormatException>(() => ModelLoader.LoadTokenizer(dir.Path)).Message);

        TinyFolder(dir, _ => { });
        Assert.IsType<HfJsonTokenizer>(ModelLoader.LoadCausalTokenizer(dir.Path));
        Assert.IsType<HfJsonTokenizer>(ModelLoader.LoadTokenizer(dir.Path));

        // Llama 2 / Mistral folders ship both files: the golden-tested SentencePiece path wins.
        File.Copy(Path.Combine(Fixtures.Root, "llama", "tokenizer.model"), dir["tokenizer.model"]);
        Assert.IsType<LlamaTokenizer>(ModelLoader.LoadCausalTokenizer(dir.Path));
        Assert.IsType<LlamaTokenizer>(ModelLoader.LoadTokenizer(dir.Path));
    }
}
