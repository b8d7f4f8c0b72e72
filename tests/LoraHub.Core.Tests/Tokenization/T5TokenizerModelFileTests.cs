using LoraHub.Core.Tokenization;
using Xunit;
using static LoraHub.Core.Tests.Tokenization.ProtoBytes;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>
/// T5Tokenizer on edited copies of the real spiece.model (tests/fixtures/t5): a model that is not a T5 Unigram model
/// is refused naming the file and what is wrong, nmt_nfkc's deleted control characters are deleted only for an nmt_nfkc
/// model, and the id helpers refuse ids outside the vocabulary.
/// </summary>
public sealed class T5TokenizerModelFileTests
{
    private static readonly string SpiecePath = Path.Combine(Fixtures.T5, "spiece.model");
    private static readonly byte[] Spiece = File.ReadAllBytes(SpiecePath);

    private static T5Tokenizer Real => T5Tokenizer.Load(SpiecePath);

    private static TokenizerException Refused(byte[] model)
    {
        var e = Assert.Throws<TokenizerException>(() => T5Tokenizer.FromBytes(model, "edited/spiece.model"));
        Assert.Equal("edited/spiece.model", e.FilePath);
        return e;
    }

    [Fact]
    public void A_bpe_model_is_refused_naming_its_type()
    {
        var e = Refused(AppendToTrainerSpec(Spiece, Int(3, 2)));
        Assert.Equal("'edited/spiece.model' is a SentencePiece model of type 2; T5 needs a Unigram model (type 1).", e.Message);
    }

    [Theory]
    [InlineData(43, "it has no pad (pad_id = -1) or no eos (eos_id = 1)")]
    [InlineData(42, "it has no pad (pad_id = 0) or no eos (eos_id = -1)")]
    public void A_model_without_pad_or_eos_is_refused(int field, string problem)
    {
        var e = Refused(AppendToTrainerSpec(Spiece, Int(field, -1)));
        Assert.Equal($"'edited/spiece.model' is not a T5 SentencePiece model: {problem}.", e.Message);
    }

    [Fact]
    public void From_bytes_builds_the_same_tokenizer_as_the_file_and_names_its_source_in_errors()
    {
        var t = T5Tokenizer.FromBytes(Spiece, "memory");
        Assert.Equal("memory", t.ModelPath);
        Assert.Equal(Real.Encode("translate English to German: hi").Ids, t.Encode("translate English to German: hi").Ids);
        Assert.Throws<ArgumentNullException>(() => T5Tokenizer.FromBytes(null!, "x"));
        Assert.Throws<ArgumentNullException>(() => T5Tokenizer.FromBytes(Spiece, null!));
        Assert.StartsWith("'memory' is not a valid SentencePiece model: ", Assert.Throws<TokenizerException>(() => T5Tokenizer.FromBytes([0x7F], "memory")).Message);
        Assert.ThrowsAny<ArgumentException>(() => T5Tokenizer.Load(" "));
    }

    [Fact]
    public void Control_characters_are_deleted_for_nmt_nfkc_models_only()
    {
        // nmt_nfkc deletes U+0001..U+0008 etc.; "a\u0001b" then encodes as "ab".
        var nmt = Real;
        Assert.Equal(nmt.Encode("ab").Ids, nmt.Encode("a\u0001b").Ids);
        Assert.Equal(nmt.Encode("ab").Ids, nmt.Encode("a\u007F\u008F\u009Fb").Ids);
        Assert.Equal(nmt.Encode("a b").Ids, nmt.Encode("a\u0001 \u001Fb").Ids);
        Assert.Equal([1], nmt.Encode("\u0001\u0002").Ids);

        var caseFolding = T5Tokenizer.FromBytes(AppendToNormalizerSpec(Spiece, Text(1, "nmt_nfkc_cf")), "cf");
        Assert.Equal(nmt.Encode("ab").Ids, caseFolding.Encode("a\u0001b").Ids);

        // Named otherwise, the characters reach SentencePiece, which has no piece for them: an <unk> in the middle.
        var identity = T5Tokenizer.FromBytes(AppendToNormalizerSpec(Spiece, Text(1, "identity")), "identity");
        Assert.Contains(identity.UnkId, identity.Encode("a\u0001b").Ids);
        Assert.DoesNotContain(nmt.UnkId, nmt.Encode("a\u0001b").Ids);
    }

    [Fact]
    public void Id_helpers_refuse_ids_outside_the_vocabulary()
    {
        var t = Real;
        Assert.Throws<ArgumentOutOfRangeException>(() => t.TokenText(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.TokenText(32100));
        Assert.Equal("<extra_id_99>", t.TokenText(32000));
        Assert.Equal("\u2581", t.TokenText(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.ExtraId(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.ExtraId(100));

        Assert.False(t.IsSpecial(3));
        Assert.False(t.IsSpecial(31999));
        Assert.True(t.IsSpecial(32000));
        Assert.True(t.IsSpecial(32099));
        Assert.False(t.IsSpecial(32100));
        Assert.True(t.IsSpecial(0) && t.IsSpecial(1) && t.IsSpecial(2));
    }

    [Fact]
    public void A_special_token_at_the_very_end_or_start_of_the_text_splits_nothing_else()
    {
        var t = Real;
        Assert.Equal([t.ExtraId(0)], t.Encode("<extra_id_0>", addSpecialTokens: false).Ids);
        Assert.Equal([21820, t.ExtraId(1), 1], t.Encode("hello<extra_id_1>").Ids);
        Assert.Equal([t.ExtraId(2), t.ExtraId(3), 1], t.Encode("<extra_id_2><extra_id_3>").Ids);
        // A '<' as the last character, or one that opens no token, is text.
        Assert.Equal(t.Encode("hello", false).Ids.Concat(t.Encode("<", false).Ids.Skip(1)), t.Encode("hello<", false).Ids);
        Assert.Equal([t.ExtraId(4), .. t.Encode("<", false).Ids], t.Encode("<extra_id_4><", false).Ids);
        Assert.Equal([t.ExtraId(10), 1], t.Encode("<extra_id_10>").Ids);
        Assert.Equal(t.ExtraId(42), t.Encode("a<extra_id_42>", false).Ids[^1]);
    }
}
