using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>What scoring, training and generation need from a decoder-only (causal) language model.</summary>
public interface ICausalLanguageModel : IAdaptableModel
{

    /// <summary>config.json's bos_token_id (whether a text starts with it is the tokenizer's decision).</summary>
    int? BosTokenId { get; }

    /// <summary>The first of config.json's eos_token_id(s).</summary>
    int EosTokenId { get; }

    /// <summary>Every id that ends generation (Llama 3 configs list several).</summary>
    IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>Id written into padded positions (they are masked, so its value never matters).</summary>
    int PadTokenId { get; }

    int VocabSize { get; }

    /// <summary>
    /// Logits [batch, length, vocab] for ids [batch, length]. attentionMask [batch, cached + length] holds 1 for tokens
    /// and 0 for padding (null: nothing padded); positions are counted from it, so left or right padding both work.
    /// With a cache, ids are the new positions only; their keys and values are appended to the cache.
    /// </summary>
    Tensor Forward(Tensor ids, Tensor? attentionMask = null, CausalCache? cache = null);

    /// <summary>An empty key/value cache for one generation.</summary>
    CausalCache NewCache();
}
