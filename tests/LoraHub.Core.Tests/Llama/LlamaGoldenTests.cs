using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using TorchSharp;
using Xunit;
using static LoraHub.Core.Tests.Llama.LlamaFiles;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Llama;

[Collection("tiny-llama")]
public sealed class LlamaGoldenTests(TinyLlamaFixture fx)
{
    private static readonly JsonArray Cases = Golden["cases"]!.AsArray();
    private static readonly string[] AllMixes = ["base", "lora_0", "lora_1", "lora_2", "lorahub"];

    public static TheoryData<int, string> LossCases()
    {
        var data = new TheoryData<int, string>();
        for (var i = 0; i < Cases.Count; i++)
            foreach (var mix in AllMixes) data.Add(i, mix);
        return data;
    }

    /// <summary>The golden convention: [1] + prompt_ids as the prompt, completion_ids + [2] as the completion.</summary>
    private static CausalExample Example(int i) => CausalExample.Join(1, Ids(Cases[i]!["prompt_ids"]!), Ids(Cases[i]!["completion_ids"]!), 2);

    [Fact]
    public void Examples_join_ids_as_the_golden_input_ids_and_labels()
    {
        for (var i = 0; i < Cases.Count; i++)
        {
            var e = Example(i);
            Assert.Equal(Ids(Cases[i]!["input_ids"]!), e.InputIds);
            var labels = Ids(Cases[i]!["labels"]!);
            Assert.Equal(labels.Where(l => l != -100), e.CompletionIds);
            Assert.Equal(Cases[i]!["n_prompt_tokens_with_bos"]!.GetValue<int>(), e.PromptIds.Length);
        }
    }

    [Theory]
    [MemberData(nameof(LossCases))]
    public void Loss_and_token_losses_match_hugging_face(int index, string mix)
    {
        fx.Use(mix);
        var expected = Cases[index]!["loss"]![mix]!.GetValue<double>();
        var loss = CausalLm.ExampleLosses(fx.Model, [Example(index)]).Single();
        Assert.InRange(Math.Abs(loss - expected), 0, 1e-4);
        var tokens = CausalLm.TokenLosses(fx.Model, Example(index));
        var expectedTokens = Cases[index]!["token_nll"]![mix]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        Assert.Equal(expectedTokens.Length, tokens.Length);
        for (var t = 0; t < tokens.Length; t++) Assert.InRange(Math.Abs(tokens[t] - expectedTokens[t]), 0, 1e-4);
    }

    [Theory]
    [InlineData("base")]
    [InlineData("lora_1")]
    [InlineData("lorahub")]
    public void Batched_right_padded_losses_equal_one_by_one_losses(string mix)
    {
        fx.Use(mix);
        var examples = Enumerable.Range(0, Cases.Count).Select(Example).ToList();
        var batched = CausalLm.ExampleLosses(fx.Model, examples);
        for (var i = 0; i < examples.Count; i++)
        {
            var alone = CausalLm.ExampleLosses(fx.Model, [examples[i]]).Single();
            Assert.InRange(Math.Abs(batched[i] - alone), 0, 1e-5);
            Assert.InRange(Math.Abs(batched[i] - Cases[i]!["loss"]![mix]!.GetValue<double>()), 0, 1e-4);
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
            var greedy = Cases[i]![$"greedy_{mix}"]!;
            var prompt = Example(i).PromptIds;
            var tokens = CausalLm.Greedy(fx.Model, prompt, maxNewTokens: 8, stopAtEos: false);
            Assert.Equal(Ids(greedy["new_tokens"]!), tokens);
            var generated = CausalLm.Greedy(fx.Model, prompt, maxNewTokens: 8, stopAtEos: true);
            Assert.Equal(Ids(greedy["hf_generate_sequence"]!), prompt.Concat(generated));
        }
    }

    [Theory]
    [InlineData("base")]
    [InlineData("lorahub")]
    public void Batched_left_padded_greedy_equals_one_by_one(string mix)
    {
        fx.Use(mix);
        var prompts = Enumerable.Range(0, Cases.Count).Select(i => Example(i).PromptIds).ToList();
        var batch = CausalLm.GreedyBatch(fx.Model, prompts, maxNewTokens: 8);
        for (var i = 0; i < prompts.Count; i++)
            Assert.Equal(Ids(Cases[i]![$"greedy_{mix}"]!["new_tokens"]!), batch[i]);
    }

    [Fact]
    public void Loss_is_differentiable_through_a_lora_adapter()
    {
        fx.Use("lora_0");
        var layer = LoraHub.Core.Lora.LoraInjector.Wrap(fx.Model.Module, "model.layers.0.self_attn.q_proj");
        using var a = (fx.Modules[0].Layers["model.layers.0.self_attn.q_proj"].A.clone()).requires_grad_(true);
        using var b = (fx.Modules[0].Layers["model.layers.0.self_attn.q_proj"].B * 2.0).detach().requires_grad_(true);
        layer.SetAdapter(a, b);
        try
        {
            using var scope = NewDisposeScope();
            var loss = CausalLm.PerExampleLoss(fx.Model, [Example(0), Example(1)]).mean();
            loss.backward();
            Assert.NotNull(a.grad);
            Assert.True(a.grad!.abs().sum().item<float>() > 0);
            Assert.True(b.grad!.abs().sum().item<float>() > 0);
        }
        finally
        {
            fx.Use("base");
        }
    }

    [Fact]
    public void Rotary_tables_match_hugging_face()
    {
        var rope = Golden["rope"]!;
        var config = ((LlamaForCausalLM)fx.Model).Config;
        Assert.Equal(rope["head_dim"]!.GetValue<int>(), config.HeadDim);
        var positions = Ids(rope["positions"]!).Select(p => (long)p).ToArray();
        var model = (LlamaModel)fx.Model.Module.named_children().Single(c => c.name == "model").module;
        using var scope = NewDisposeScope();
        var (cos, sin) = model.Rotary(tensor(positions).unsqueeze(0), ScalarType.Float32);
        foreach (var (name, table) in new[] { ("cos", cos), ("sin", sin) })
        {
            var expected = rope[name]!.AsArray();
            for (var p = 0; p < positions.Length; p++)
            {
                var row = table[0, 0, p].data<float>().ToArray();
                var want = expected[p]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
                for (var d = 0; d < want.Length; d++) Assert.InRange(Math.Abs(row[d] - want[d]), 0, 1e-6);
            }
        }
    }
}
