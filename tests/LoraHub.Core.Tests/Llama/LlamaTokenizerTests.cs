using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using Xunit;
using static LoraHub.Core.Tests.Llama.LlamaFiles;

namespace LoraHub.Core.Tests.Llama;

public sealed class LlamaTokenizerTests
{
    private static readonly JsonArray Cases = TokenizerCases["cases"]!.AsArray();
    private static readonly LlamaTokenizer Tokenizer = LlamaTokenizer.Load(TinyLlama);

    public static TheoryData<int> CaseIndexes()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Cases.Count; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void Special_ids_come_from_the_model_files()
    {
        Assert.Equal(1, Tokenizer.BosId);
        Assert.Equal(2, Tokenizer.EosId);
        Assert.Equal(0, Tokenizer.UnkId);
        Assert.Equal(32000, Tokenizer.VocabSize);
        Assert.True(Tokenizer.AddBos);
        Assert.False(Tokenizer.AddEos);
        var fromLoader = ModelLoader.LoadCausalTokenizer(TinyLlama);
        Assert.Equal(Tokenizer.EosId, fromLoader.EosId);
        // The bare tokenizer.model (no JSON next to it) gives the same ids from the SentencePiece model itself.
        var bare = LlamaTokenizer.Load(TokenizerModel);
        Assert.Equal((1, 2, 0), (bare.BosId, bare.EosId, bare.UnkId));
    }

    [Theory]
    [MemberData(nameof(CaseIndexes))]
    public void Ids_pieces_and_decoding_match_hugging_face(int index)
    {
        var c = Cases[index]!;
        var text = c["text"]!.GetValue<string>();
        var encoding = Tokenizer.Encode(text);
        Assert.Equal(Ids(c["ids"]!), encoding.Ids);
        Assert.Equal(c["pieces"]!.AsArray().Select(x => x!.GetValue<string>()), encoding.Pieces);
        Assert.Equal(Ids(c["ids"]!)[1..], Tokenizer.Encode(text, addSpecialTokens: false).Ids);
        Assert.Equal(c["hf_decode_skip_special_tokens"]!.GetValue<string>(), Tokenizer.Decode(encoding.Ids));
        Assert.Equal(c["hf_decode"]!.GetValue<string>(), Tokenizer.Decode(encoding.Ids, skipSpecialTokens: false));
    }

    [Fact]
    public void Prompt_and_completion_are_tokenized_separately_as_the_golden_cases()
    {
        foreach (var c in Golden["cases"]!.AsArray())
        {
            var e = CausalExample.FromText(Tokenizer, c!["prompt"]!.GetValue<string>(), c["completion"]!.GetValue<string>());
            Assert.Equal(Ids(c["input_ids"]!), e.InputIds);
            Assert.Equal(Ids(c["input_ids"]!)[..c["n_prompt_tokens_with_bos"]!.GetValue<int>()], e.PromptIds);
            Assert.Equal([1, .. Ids(c["prompt_ids"]!)], CausalExample.Prompt(Tokenizer, c["prompt"]!.GetValue<string>()));
        }
    }

    [Fact]
    public void Special_tokens_split_the_text_wherever_they_stand_and_each_part_is_encoded_alone()
    {
        // HF's legacy slow tokenizer: the text is cut at special tokens and each part gets its own dummy prefix.
        int[] Bare(string text) => [.. Tokenizer.Encode(text, addSpecialTokens: false).Ids];
        Assert.Equal([15043], Bare("Hello"));
        Assert.Equal([1, 15043], Bare("<s>Hello"));
        Assert.Equal([1, 2, 0], Bare("<s></s><unk>"));
        Assert.Equal([.. Bare("a<b"), 2, .. Bare("c")], Bare("a<b</s>c"));
        Assert.Equal([.. Bare("x"), 2, .. Bare("<")], Bare("x</s><"));
        Assert.Equal([.. Bare("<"), 1, 15043], Bare("<<s>Hello"));
        Assert.Equal([1, .. Bare("<"), 2], Tokenizer.Encode("<</s>").Ids);

        var e = Tokenizer.Encode("<s>Hello</s>a<b", addSpecialTokens: false);
        Assert.Equal(["<s>", "\u2581Hello", "</s>", .. Tokenizer.Encode("a<b", false).Pieces], e.Pieces);
    }

    [Fact]
    public void Null_or_blank_arguments_are_argument_errors()
    {
        Assert.Throws<ArgumentNullException>(() => Tokenizer.Encode(null!));
        Assert.Throws<ArgumentNullException>(() => Tokenizer.Decode(null!));
        Assert.ThrowsAny<ArgumentException>(() => LlamaTokenizer.Load("  "));
        Assert.ThrowsAny<ArgumentException>(() => LlamaTokenizer.Load(null!));
    }

    [Fact]
    public void Special_tokens_written_in_the_text_map_to_their_ids()
    {
        var ids = Tokenizer.Encode("Hello</s>", addSpecialTokens: false).Ids;
        Assert.Equal([15043, 2], ids);
    }

    [Fact]
    public void A_unigram_model_is_rejected_with_a_clear_error()
    {
        var e = Assert.Throws<TokenizerException>(() => LlamaTokenizer.Load(Path.Combine(Fixtures.T5, "spiece.model")));
        Assert.Contains("BPE", e.Message);
    }
}
