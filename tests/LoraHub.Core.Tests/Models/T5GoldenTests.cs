using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Models;

[CollectionDefinition("tiny-t5")]
public sealed class TinyT5Collection : ICollectionFixture<TinyT5Fixture>;

[Collection("tiny-t5")]
public sealed class T5GoldenTests(TinyT5Fixture fx)
{
    private static readonly JsonArray Cases = Fixtures.Golden["cases"]!.AsArray();
    public static TheoryData<int, string> LossCases()
    {
        var data = new TheoryData<int, string>();
        for (var i = 0; i < Cases.Count; i++)
            foreach (var mix in new[] { "base", "lora_0", "lora_1", "lora_2", "lorahub" }) data.Add(i, mix);
        return data;
    }

    private static int[] Ids(JsonNode node) => node.AsArray().Select(x => x!.GetValue<int>()).ToArray();
    private static TokenizedExample Example(int i) => new(Ids(Cases[i]!["input_ids"]!), Ids(Cases[i]!["labels"]!));

    [Theory]
    [MemberData(nameof(LossCases))]
    public void Loss_and_token_losses_match_hugging_face(int index, string mix)
    {
        fx.Use(mix);
        var expected = Cases[index]!["loss"]![mix]!.GetValue<double>();
        var loss = Seq2Seq.ExampleLosses(fx.Model, [Example(index)]).Single();
        Assert.InRange(Math.Abs(loss - expected), 0, 1e-4);
        var tokens = Seq2Seq.TokenLosses(fx.Model, Example(index));
        var expectedTokens = Cases[index]!["token_nll"]![mix]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        Assert.Equal(expectedTokens.Length, tokens.Length);
        for (var t = 0; t < tokens.Length; t++) Assert.InRange(Math.Abs(tokens[t] - expectedTokens[t]), 0, 1e-3);
    }

    [Theory]
    [InlineData("base")]
    [InlineData("lora_0")]
    [InlineData("lorahub")]
    public void Batched_padded_losses_equal_one_by_one_losses(string mix)
    {
        fx.Use(mix);
        var examples = Enumerable.Range(0, Cases.Count).Select(Example).ToList();
        var batched = Seq2Seq.ExampleLosses(fx.Model, examples);
        for (var i = 0; i < examples.Count; i++)
        {
            var alone = Seq2Seq.ExampleLosses(fx.Model, [examples[i]]).Single();
            Assert.InRange(Math.Abs(batched[i] - alone), 0, 1e-5);
            if (mix != "lora_0") Assert.InRange(Math.Abs(batched[i] - Cases[i]!["loss"]![mix]!.GetValue<double>()), 0, 1e-4);
        }
    }

    [Theory]
    [InlineData("base")]
    [InlineData("lorahub")]
    public void Greedy_tokens_match_hugging_face_exactly(string mix)
    {
        fx.Use(mix);
        for (var i = 0; i < Cases.Count; i++)
        {
            var expected = Ids(Cases[i]![$"greedy_{mix}"]!["new_tokens"]!);
            var tokens = Seq2Seq.Greedy(fx.Model, Ids(Cases[i]!["input_ids"]!), maxNewTokens: 8, stopAtEos: false);
            Assert.Equal(expected, tokens);
        }
    }

    [Fact]
    public void Switching_weights_leaves_the_base_weights_untouched()
    {
        var before = fx.Model.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter.clone());
        fx.Use("lorahub");
        fx.Use("lora_1");
        fx.Use("base");
        foreach (var (name, p) in fx.Model.Module.named_parameters()) Assert.True(p.eq(before[name]).all().item<bool>(), name);
        var loss = Seq2Seq.ExampleLosses(fx.Model, [Example(0)]).Single();
        Assert.InRange(Math.Abs(loss - Cases[0]!["loss"]!["base"]!.GetValue<double>()), 0, 1e-4);
    }

    [Theory]
    [InlineData(true, "bidirectional_num_buckets32_max_distance128")]
    [InlineData(false, "unidirectional_num_buckets32_max_distance128")]
    public void Relative_position_buckets_match_hugging_face(bool bidirectional, string key)
    {
        var table = Fixtures.Golden["relative_position_buckets"]!;
        var positions = table["relative_position = key_pos - query_pos"]!.AsArray().Select(x => (long)x!.GetValue<int>()).ToArray();
        var expected = table[key]!.AsArray().Select(x => (long)x!.GetValue<int>()).ToArray();
        using var buckets = T5Attention.RelativePositionBucket(tensor(positions), bidirectional, 32, 128);
        Assert.Equal(expected, buckets.data<long>().ToArray());
    }
}
