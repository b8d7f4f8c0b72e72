using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>What scoring, training and generation need from a decoder-only (causal) language model.</summary>
public interface ICausalLanguageModel : IAdaptableModel
{
    /// <summary>config.json's bos_token_id (whether a text starts with it is the tokenizer's decision).</summary>
    int? BosTokenId { get; }

    /// <summary>Every id that ends generation (Llama 3 configs list several; <see cref="IAdaptableModel.EosTokenId"/> is the first).</summary>
    IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>
    /// Logits [batch, length, vocab] for ids [batch, length]. attentionMask [batch, cached + length] holds 1 for tokens
    /// and 0 for padding (null: nothing padded); positions are counted from it, so left or right padding both work.
    /// With a cache, ids are the new positions only; their keys and values are appended to the cache.
    /// </summary>
    Tensor Forward(Tensor ids, Tensor? attentionMask = null, CausalCache? cache = null);

    /// <summary>An empty key/value cache for one generation.</summary>
    CausalCache NewCache();

    // bos + tokens(input) + tokens(output) + eos, scored on tokens(output) + eos (FewShotFormat.DecoderOnly).
    string IAdaptableModel.PeftTaskType => "CAUSAL_LM";
    IReadOnlyList<string> IAdaptableModel.DefaultLoraTargets => ["q_proj", "v_proj"];
    FewShotFormat IAdaptableModel.Format => FewShotFormat.DecoderOnly;
    double[] IAdaptableModel.ExampleLosses(IReadOnlyList<TokenizedExample> batch, int groups) => CausalLm.ExampleLosses(this, batch.Select(CausalExample.Of).ToList(), groups);
    Tensor IAdaptableModel.PerExampleLoss(IReadOnlyList<TokenizedExample> batch) => CausalLm.PerExampleLoss(this, batch.Select(CausalExample.Of).ToList());
    int[] IAdaptableModel.Greedy(int[] promptIds, int maxNewTokens, bool stopAtEos) => CausalLm.Greedy(this, promptIds, maxNewTokens, stopAtEos);
    int[][] IAdaptableModel.GreedyBatch(IReadOnlyList<int[]> prompts, int maxNewTokens) => CausalLm.GreedyBatch(this, prompts, maxNewTokens);
}
