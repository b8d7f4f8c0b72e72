using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Experiments.Toy;
using Xunit;

namespace LoraHub.Experiments.Tests.Toy;

public sealed class CharTokenizerTests
{
    [Fact]
    public void Toy_vocabulary_has_the_specials_then_letters_and_digits()
    {
        var t = ToyTasks.Tokenizer;
        Assert.Equal(23, t.VocabSize);
        Assert.Equal((0, 1, 2), (t.PadId, t.EosId, t.UnkId));
        Assert.Null(t.BosId);
        Assert.Equal(["<pad>", "</s>", "<unk>", "a"], t.Tokens.Take(4));
        Assert.Equal("9", t.Tokens[^1]);
    }

    [Fact]
    public void Encode_appends_eos_and_decode_round_trips_skipping_specials()
    {
        var t = ToyTasks.Tokenizer;
        var e = t.Encode("a0j9");
        Assert.Equal([3, 13, 12, 22, 1], e.Ids);
        Assert.Equal(["a", "0", "j", "9", "</s>"], e.Pieces);
        Assert.Equal([3, 13], t.Encode("a0", addSpecialTokens: false).Ids);
        Assert.Equal("a0j9", t.Decode(e.Ids));
        Assert.Equal("a0j9</s>", t.Decode(e.Ids, skipSpecialTokens: false));
        Assert.Equal("a0", t.Decode([0, 3, 2, 13, 1, 0]));
        foreach (var s in new[] { "", "abcdefghij", "0123456789", "j0i1h2" })
            Assert.Equal(s, t.Decode(t.Encode(s).Ids));
    }

    [Fact]
    public void Unknown_characters_become_unk_and_written_specials_their_ids()
    {
        var t = ToyTasks.Tokenizer;
        Assert.Equal([3, 2, 4, 1], t.Encode("aZb").Ids);
        Assert.Equal([3, 1, 4, 0, 2, 1], t.Encode("a</s>b<pad><unk>").Ids);
        Assert.Equal([2, 1], t.Encode("<").Ids);
        Assert.Throws<ArgumentException>(() => t.Decode([23]));
        Assert.Throws<ArgumentException>(() => t.Decode([-1]));
    }

    [Fact]
    public void Characters_outside_the_basic_plane_are_one_token()
    {
        var t = new CharTokenizer(["x", "\U0001F600"]);
        Assert.Equal([3, 4, 1], t.Encode("x\U0001F600").Ids);
        Assert.Equal("x\U0001F600", t.Decode(t.Encode("x\U0001F600").Ids));
        Assert.Throws<ArgumentException>(() => new CharTokenizer(["ab"]));
        Assert.Throws<ArgumentException>(() => new CharTokenizer(["a", "a"]));
    }

    [Fact]
    public void Saved_vocabulary_loads_back_and_model_loader_finds_it()
    {
        using var dir = new Fixtures.TempDir();
        ToyTasks.Tokenizer.Save(dir.Path);
        var text = File.ReadAllText(Path.Combine(dir.Path, CharTokenizer.FileName));
        Assert.Contains("\"type\":\"chars\"", text);
        var loaded = Assert.IsType<CharTokenizer>(ModelLoader.LoadTokenizer(dir.Path));
        Assert.Equal(ToyTasks.Tokenizer.Tokens, loaded.Tokens);
        Assert.Equal(ToyTasks.Tokenizer.Encode("b7").Ids, loaded.Encode("b7").Ids);
    }

    [Fact]
    public void The_t5_worlds_vocabulary_file_is_unchanged()
    {
        // The cached T5 world's base folder holds this exact file: the bos option must not touch it.
        using var dir = new Fixtures.TempDir();
        ToyTasks.Tokenizer.Save(dir.Path);
        Assert.Equal("{\"type\":\"chars\",\"tokens\":[\"\\u003Cpad\\u003E\",\"\\u003C/s\\u003E\",\"\\u003Cunk\\u003E\",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}\n",
            File.ReadAllText(Path.Combine(dir.Path, CharTokenizer.FileName)));
    }

    [Fact]
    public void The_decoder_only_vocabulary_has_bos_and_the_input_end()
    {
        var t = ToyTasks.DecoderOnlyTokenizer;
        Assert.Equal(25, t.VocabSize);
        Assert.Equal((0, 1, 2, 3), (t.PadId, t.EosId, t.UnkId, t.BosId));
        Assert.Equal(["<pad>", "</s>", "<unk>", "<s>", "a"], t.Tokens.Take(5));
        Assert.Equal("=", t.Tokens[^1]);
        Assert.True(t.IsSpecial(3));
        Assert.False(t.IsSpecial(4));

        // With special tokens: bos + text + eos; without: the characters alone. Decoding drops bos like the others.
        Assert.Equal([3, 4, 14, 24, 1], t.Encode("a0=").Ids);
        Assert.Equal(["<s>", "a", "0", "=", "</s>"], t.Encode("a0=").Pieces);
        Assert.Equal([4, 14, 24], t.Encode("a0=", addSpecialTokens: false).Ids);
        Assert.Equal("a0=", t.Decode([3, 4, 14, 24, 1]));
        Assert.Equal("<s>a</s>", t.Decode([3, 4, 1], skipSpecialTokens: false));
        Assert.Equal([4, 3, 5], t.Encode("a<s>b", addSpecialTokens: false).Ids);

        // The decoder-only few-shot convention: prompt bos + input, target output + eos.
        var example = FewShotFormat.DecoderOnly.Tokenize(t, "ab=", "ba");
        Assert.Equal([3, 4, 5, 24], example.InputIds);
        Assert.Equal([5, 4, 1], example.Labels);
    }

    [Fact]
    public void A_vocabulary_with_bos_round_trips_through_its_file()
    {
        using var dir = new Fixtures.TempDir();
        ToyTasks.DecoderOnlyTokenizer.Save(dir.Path);
        Assert.Contains("\"\\u003Cs\\u003E\"", File.ReadAllText(Path.Combine(dir.Path, CharTokenizer.FileName)));
        var loaded = Assert.IsType<CharTokenizer>(ModelLoader.LoadTokenizer(dir.Path));
        Assert.Equal(ToyTasks.DecoderOnlyTokenizer.Tokens, loaded.Tokens);
        Assert.Equal(3, loaded.BosId);
        Assert.Equal(ToyTasks.DecoderOnlyTokenizer.Encode("j9=").Ids, loaded.Encode("j9=").Ids);
        Assert.Throws<ArgumentException>(() => new CharTokenizer(["<s>"])); // not one character: never a plain token
    }

    [Fact]
    public void Spiece_model_wins_over_the_char_vocabulary()
    {
        using var dir = new Fixtures.TempDir();
        ToyTasks.Tokenizer.Save(dir.Path);
        File.Copy(Path.Combine(Fixtures.TinyT5, "spiece.model"), Path.Combine(dir.Path, "spiece.model"));
        Assert.IsType<T5Tokenizer>(ModelLoader.LoadTokenizer(dir.Path));
    }

    [Fact]
    public void Missing_or_bad_vocabulary_is_a_clear_error()
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.LoadTokenizer(dir.Path));
        Assert.Contains("spiece.model", e.Message);
        Assert.Contains("lorahub-vocab.json", e.Message);

        var path = Path.Combine(dir.Path, CharTokenizer.FileName);
        File.WriteAllText(path, "{\"type\":\"bpe\",\"tokens\":[]}");
        Assert.Contains("expected 'chars'", Assert.Throws<TokenizerException>(() => ModelLoader.LoadTokenizer(dir.Path)).Message);
        File.WriteAllText(path, "{\"type\":\"chars\",\"tokens\":[\"a\",\"b\",\"c\"]}");
        Assert.Contains("<pad>", Assert.Throws<TokenizerException>(() => CharTokenizer.Load(path)).Message);
        File.WriteAllText(path, "not json");
        Assert.Contains(path, Assert.Throws<TokenizerException>(() => CharTokenizer.Load(dir.Path)).Message);
    }

    [Theory]
    [InlineData("{\"type\":\"bpe\",\"tokens\":[]}", "vocabulary type is 'bpe', expected 'chars'")]
    [InlineData("{\"tokens\":[]}", "vocabulary type is '(none)', expected 'chars'")]
    [InlineData("{\"type\":\"chars\"}", "vocabulary file has no \"tokens\" array")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"</s>\",\"<unk>\",7]}", "every token must be a string")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"</s>\"]}", "the first tokens must be <pad>, </s>, <unk> (ids 0, 1, 2)")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"</s>\",\"<s>\"]}", "the first tokens must be <pad>, </s>, <unk> (ids 0, 1, 2)")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"<s>\",\"<unk>\"]}", "the first tokens must be <pad>, </s>, <unk> (ids 0, 1, 2)")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"x\",\"</s>\",\"<unk>\"]}", "the first tokens must be <pad>, </s>, <unk> (ids 0, 1, 2)")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"</s>\",\"<unk>\",\"ab\"]}", "character token 'ab' is not exactly one character (Parameter 'characters')")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"</s>\",\"<unk>\",\"\"]}", "character token '' is not exactly one character (Parameter 'characters')")]
    [InlineData("{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"</s>\",\"<unk>\",\"a\",\"a\"]}", "character 'a' appears twice in the vocabulary (Parameter 'characters')")]
    [InlineData("null", "vocabulary file is empty")]
    [InlineData("[1]", "vocabulary file is not a JSON object (")]
    public void Every_bad_vocabulary_file_is_named_with_its_problem(string content, string problem)
    {
        using var dir = new Fixtures.TempDir();
        var path = Path.Combine(dir.Path, CharTokenizer.FileName);
        File.WriteAllText(path, content);
        var e = Assert.Throws<TokenizerException>(() => CharTokenizer.Load(dir.Path));
        Assert.StartsWith($"{path}: {problem}", e.Message);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void A_missing_file_and_bad_arguments_are_named()
    {
        using var dir = new Fixtures.TempDir();
        var path = Path.Combine(dir.Path, CharTokenizer.FileName);
        var e = Assert.Throws<TokenizerException>(() => CharTokenizer.Load(dir.Path));
        Assert.Equal(($"{path}: character vocabulary file does not exist", path), (e.Message, e.FilePath));

        Assert.Throws<ArgumentNullException>(() => new CharTokenizer(null!));
        var t = new CharTokenizer(["a", "b"]);
        Assert.Throws<ArgumentNullException>(() => t.Encode(null!));
        Assert.Throws<ArgumentNullException>(() => t.Decode(null!));
        Assert.Equal("Token id 5 is outside the character vocabulary (valid ids are 0..4). (Parameter 'ids')", Assert.Throws<ArgumentException>(() => t.Decode([5])).Message);
        // Written specials keep their pieces as well as their ids.
        Assert.Equal(["a", "</s>", "b", "</s>"], t.Encode("a</s>b").Pieces);

        // The three specials alone are a (useless but valid) vocabulary.
        File.WriteAllText(path, "{\"type\":\"chars\",\"tokens\":[\"<pad>\",\"</s>\",\"<unk>\"]}");
        Assert.Equal((3, (int?)null), (CharTokenizer.Load(dir.Path).VocabSize, CharTokenizer.Load(dir.Path).BosId));

        // Save writes the folder and replaces an existing file whole.
        var folder = Path.Combine(dir.Path, "new", "model");
        t.Save(folder);
        new CharTokenizer(["c"]).Save(folder);
        Assert.Equal(["<pad>", "</s>", "<unk>", "c"], CharTokenizer.Load(folder).Tokens);
        Assert.Equal([CharTokenizer.FileName], Directory.GetFiles(folder).Select(Path.GetFileName));
    }
}
