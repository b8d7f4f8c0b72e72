using LoraHub.Core.Tokenization;
using Xunit;
using static LoraHub.Core.Tests.Tokenization.ProtoBytes;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>
/// LlamaTokenizer and the files of its model folder: where bos/eos/pad come from (tokenizer_config.json, then
/// special_tokens_map.json, then config.json ids, then the SentencePiece model), what add_bos_token/add_eos_token do to
/// Encode, and that a bad side file or model is a TokenizerException naming the file. The real Llama 2 tokenizer.model
/// (tests/fixtures/llama) is used throughout: 0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;, 3.. the byte pieces &lt;0x00&gt;...
/// </summary>
public sealed class LlamaTokenizerFolderTests
{
    private static string ModelFile => Path.Combine(Fixtures.Root, "llama", "tokenizer.model");

    private static LlamaTokenizer Folder(Fixtures.TempDir dir, params (string Name, string Json)[] files)
    {
        File.Copy(ModelFile, dir["tokenizer.model"], overwrite: true);
        foreach (var (name, json) in files) File.WriteAllText(dir[name], json);
        return LlamaTokenizer.Load(dir.Path);
    }

    [Fact]
    public void Token_strings_of_tokenizer_config_name_bos_eos_and_pad_in_either_form()
    {
        using var dir = new Fixtures.TempDir();
        var t = Folder(dir, ("tokenizer_config.json", """{"bos_token": {"content": "</s>", "lstrip": false}, "eos_token": "<s>", "pad_token": "<0x00>"}"""));

        Assert.Equal((2, 1, 3, 0), (t.BosToken, t.EosId, t.PadId, t.UnkId));
        Assert.Equal(2, t.BosId);
        Assert.Equal(dir["tokenizer.model"], t.ModelPath);

        // The named pad is a special token: written in the text it is its id, and Decode drops it when skipping.
        Assert.Equal([2, 15043, 3], t.Encode("Hello<0x00>").Ids);
        Assert.Equal("Hello", t.Decode([2, 15043, 3, 1]));
        // HF legacy convert_tokens_to_string: a space, then the run before a special token, then the token.
        Assert.Equal("</s> Hello<0x00><s>", t.Decode([2, 15043, 3, 1], skipSpecialTokens: false));
    }

    [Fact]
    public void Special_tokens_map_is_read_when_tokenizer_config_does_not_name_a_piece()
    {
        using var dir = new Fixtures.TempDir();
        var t = Folder(dir,
            ("tokenizer_config.json", """{"eos_token": "<nope>", "bos_token": 7}"""),
            ("special_tokens_map.json", """{"eos_token": {"content": "<s>"}, "bos_token": "</s>", "pad_token": ["<unk>"]}"""));
        Assert.Equal((2, 1, 0), (t.BosToken, t.EosId, t.PadId));
    }

    [Fact]
    public void Config_ids_come_next_and_the_first_of_a_list_counts()
    {
        using var dir = new Fixtures.TempDir();
        var t = Folder(dir, ("config.json", """{"bos_token_id": 2, "eos_token_id": [1, 2], "pad_token_id": 5}"""));
        Assert.Equal((2, 1, 5), (t.BosToken, t.EosId, t.PadId));
        Assert.Equal("", t.Decode([5])); // pad named by the folder is special

        using var other = new Fixtures.TempDir();
        var none = Folder(other, ("config.json", """{"pad_token_id": -1, "bos_token_id": null, "eos_token_id": null}"""));
        // -1 means "no pad": the model has none either, so padding uses id 0; bos and eos are the model's.
        Assert.Equal((1, 2, 0), (none.BosToken, none.EosId, none.PadId));
        Assert.Equal([1, 15043], none.Encode("Hello").Ids);

        // Id 0 is a piece like any other (here <unk> as eos); only -1 means none.
        using var zero = new Fixtures.TempDir();
        var z = Folder(zero, ("config.json", """{"eos_token_id": 0, "pad_token_id": 0}"""));
        Assert.Equal((1, 0, 0), (z.BosToken, z.EosId, z.PadId));
    }

    [Theory]
    [InlineData("32000", "pad_token_id 32000 is not a piece id")]
    [InlineData("-2", "pad_token_id -2 is not a piece id")]
    [InlineData("\"5\"", "pad_token_id \"5\" is not a piece id")]
    [InlineData("1.5", "pad_token_id 1.5 is not a piece id")]
    [InlineData("[32001]", "pad_token_id 32001 is not a piece id")]
    [InlineData("{}", "pad_token_id {} is not a piece id")]
    public void A_config_id_that_is_not_a_piece_is_refused_naming_config_json(string raw, string problem)
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<TokenizerException>(() => Folder(dir, ("config.json", $$"""{"pad_token_id": {{raw}}}""")));
        Assert.Equal(dir["config.json"], e.FilePath);
        Assert.Equal($"'{dir["config.json"]}': {problem} of '{dir["tokenizer.model"]}' (0..31999)", e.Message);
    }

    [Fact]
    public void The_last_piece_id_is_accepted_from_config()
    {
        using var dir = new Fixtures.TempDir();
        Assert.Equal(31999, Folder(dir, ("config.json", """{"pad_token_id": 31999}""")).PadId);
    }

    [Fact]
    public void Add_bos_and_add_eos_decide_what_encode_adds()
    {
        using var plain = new Fixtures.TempDir();
        var defaults = Folder(plain);
        Assert.True(defaults.AddBos);
        Assert.False(defaults.AddEos);
        Assert.Equal([1, 15043], defaults.Encode("Hello").Ids);
        Assert.Equal(["<s>", "\u2581Hello"], defaults.Encode("Hello").Pieces);

        using var dir = new Fixtures.TempDir();
        var t = Folder(dir, ("tokenizer_config.json", """{"add_bos_token": false, "add_eos_token": true}"""));
        Assert.False(t.AddBos);
        Assert.Null(t.BosId);
        Assert.Equal(1, t.BosToken);
        Assert.True(t.AddEos);
        Assert.Equal([15043, 2], t.Encode("Hello").Ids);
        Assert.Equal(["\u2581Hello", "</s>"], t.Encode("Hello").Pieces);
        Assert.Equal([15043], t.Encode("Hello", addSpecialTokens: false).Ids);

        // Anything but true/false leaves the default.
        using var odd = new Fixtures.TempDir();
        var o = Folder(odd, ("tokenizer_config.json", """{"add_bos_token": "no", "add_eos_token": 1}"""));
        Assert.Equal((true, false), (o.AddBos, o.AddEos));
    }

    [Fact]
    public void A_model_without_bos_adds_none_and_one_without_eos_needs_the_folder_to_name_it()
    {
        byte[] model = File.ReadAllBytes(ModelFile);

        using var noBos = new Fixtures.TempDir();
        File.WriteAllBytes(noBos["tokenizer.model"], AppendToTrainerSpec(model, Int(41, -1)));
        var t = LlamaTokenizer.Load(noBos.Path);
        Assert.Null(t.BosToken);
        Assert.False(t.AddBos);
        Assert.Equal([15043], t.Encode("Hello").Ids);

        // A pad the model itself names is used for padding (and is not a special token of the text).
        using var withPad = new Fixtures.TempDir();
        File.WriteAllBytes(withPad["tokenizer.model"], AppendToTrainerSpec(model, Int(43, 3)));
        Assert.Equal(3, LlamaTokenizer.Load(withPad.Path).PadId);

        using var noEos = new Fixtures.TempDir();
        File.WriteAllBytes(noEos["tokenizer.model"], AppendToTrainerSpec(model, Int(42, -1)));
        var e = Assert.Throws<TokenizerException>(() => LlamaTokenizer.Load(noEos.Path));
        Assert.Equal(noEos["tokenizer.model"], e.FilePath);
        Assert.Contains($"'{noEos["tokenizer.model"]}'", e.Message);
    }

    [Theory]
    [InlineData("tokenizer_config.json")]
    [InlineData("special_tokens_map.json")]
    [InlineData("config.json")]
    public void A_side_file_that_is_not_json_is_named(string name)
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<TokenizerException>(() => Folder(dir, (name, "{\"eos_token\": ")));
        Assert.Equal(dir[name], e.FilePath);
        Assert.StartsWith($"'{dir[name]}' is not valid JSON: ", e.Message);
    }

    [Fact]
    public void A_missing_model_is_named_and_a_replaced_one_is_read_again()
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<TokenizerException>(() => LlamaTokenizer.Load(dir.Path));
        Assert.Equal($"Tokenizer model '{dir["tokenizer.model"]}' not found.", e.Message);
        Assert.Equal(dir["tokenizer.model"], e.FilePath);

        var first = Folder(dir);
        Assert.Same(first, LlamaTokenizer.Load(dir["tokenizer.model"]));

        File.WriteAllBytes(dir["tokenizer.model"], [0x7F]);
        File.SetLastWriteTimeUtc(dir["tokenizer.model"], DateTime.UtcNow.AddMinutes(1));
        Assert.Equal(dir["tokenizer.model"], Assert.Throws<TokenizerException>(() => LlamaTokenizer.Load(dir.Path)).FilePath);

        File.Copy(ModelFile, dir["tokenizer.model"], overwrite: true);
        File.SetLastWriteTimeUtc(dir["tokenizer.model"], DateTime.UtcNow.AddMinutes(2));
        var again = LlamaTokenizer.Load(dir.Path);
        Assert.NotSame(first, again);
        Assert.Equal(first.Encode("Hello world").Ids, again.Encode("Hello world").Ids);
    }

    [Fact]
    public void A_unigram_model_is_refused_naming_its_type_and_file()
    {
        using var dir = new Fixtures.TempDir();
        File.Copy(Path.Combine(Fixtures.T5, "spiece.model"), dir["tokenizer.model"]);
        var e = Assert.Throws<TokenizerException>(() => LlamaTokenizer.Load(dir.Path));
        Assert.Equal($"'{dir["tokenizer.model"]}' is a SentencePiece model of type 1; the Llama tokenizer needs a BPE model (type 2).", e.Message);
        Assert.Equal(dir["tokenizer.model"], e.FilePath);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(32000)]
    [InlineData(int.MinValue)]
    public void Decode_refuses_ids_outside_the_vocabulary(int id)
    {
        using var dir = new Fixtures.TempDir();
        var e = Assert.Throws<ArgumentException>(() => Folder(dir).Decode([15043, id]));
        Assert.Contains($"Token id {id} is outside the vocabulary (valid ids are 0..31999)", e.Message);
    }
}
