using LoraHub.Core.Tensors;

namespace LoraHub.Core.Models;

/// <summary>
/// The sizes a config.json implies, checked against the checkpoint's headers before the model is built: the embedding
/// fixes vocab and width, the last layer's projections fix heads and feed-forward sizes and prove the layer count. So a
/// config that says num_layers 10^9 (or a vocab of 2^30) is refused by name instead of allocating a model that the
/// checkpoint could never fill; what is built is then at most what the checkpoint's validated headers describe.
/// </summary>
internal static class ModelPreflight
{
    /// <summary>One tensor the config implies: any of the names (alternatives), with this shape.</summary>
    internal sealed record Expected(string[] Names, long[] Shape, string Because);

    public static IReadOnlyList<Expected> For(T5Config c)
    {
        var inner = (long)c.NumHeads * c.DKv;
        var ff = c.IsGatedAct ? "wi_0" : "wi";
        var list = new List<Expected>
        {
            new(["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"], [c.VocabSize, c.DModel], "vocab_size x d_model"),
            new(["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], [c.RelativeAttentionNumBuckets, c.NumHeads], "relative_attention_num_buckets x num_heads"),
            new(["encoder.block.0.layer.0.SelfAttention.q.weight"], [inner, c.DModel], "num_heads * d_kv x d_model, in block 0"),
            new([$"encoder.block.{c.NumLayers - 1}.layer.0.SelfAttention.q.weight"], [inner, c.DModel], "num_heads * d_kv x d_model, in the last of num_layers"),
            new([$"encoder.block.{c.NumLayers - 1}.layer.1.DenseReluDense.{ff}.weight"], [c.DFf, c.DModel], "d_ff x d_model, in the last of num_layers"),
            new([$"decoder.block.{c.NumDecoderLayers - 1}.layer.0.SelfAttention.q.weight"], [inner, c.DModel], "num_heads * d_kv x d_model, in the last of num_decoder_layers"),
            new([$"decoder.block.{c.NumDecoderLayers - 1}.layer.2.DenseReluDense.wo.weight"], [c.DModel, c.DFf], "d_model x d_ff, in the last of num_decoder_layers"),
        };
        if (!c.TieWordEmbeddings) list.Add(new(["lm_head.weight"], [c.VocabSize, c.DModel], "vocab_size x d_model (tie_word_embeddings is false)"));
        return list;
    }

    public static IReadOnlyList<Expected> For(LlamaConfig c)
    {
        var list = new List<Expected> { new(["model.embed_tokens.weight"], [c.VocabSize, c.HiddenSize], "vocab_size x hidden_size") };
        // The first layer (where a mis-sized projection is usually first seen) and the last (which proves the count).
        foreach (var (layer, where) in new[] { (0, "in layer 0"), (c.NumHiddenLayers - 1, "in the last of num_hidden_layers") }.Distinct())
        {
            var prefix = $"model.layers.{layer}";
            list.Add(new([$"{prefix}.self_attn.q_proj.weight"], [(long)c.NumAttentionHeads * c.HeadDim, c.HiddenSize], $"num_attention_heads * head_dim x hidden_size, {where}"));
            list.Add(new([$"{prefix}.self_attn.k_proj.weight"], [(long)c.NumKeyValueHeads * c.HeadDim, c.HiddenSize], $"num_key_value_heads * head_dim x hidden_size, {where}"));
            list.Add(new([$"{prefix}.mlp.up_proj.weight"], [c.IntermediateSize, c.HiddenSize], $"intermediate_size x hidden_size, {where}"));
        }
        if (!c.TieWordEmbeddings) list.Add(new(["lm_head.weight"], [c.VocabSize, c.HiddenSize], "vocab_size x hidden_size (tie_word_embeddings is false)"));
        return list;
    }

    /// <summary>Refuses the config when the checkpoint lacks or mis-sizes a tensor it implies; nothing is allocated.</summary>
    public static void Check(IReadOnlyList<Expected> expected, Checkpoint checkpoint, string configPath)
    {
        foreach (var e in expected)
        {
            var found = e.Names.Select(checkpoint.Find).FirstOrDefault(t => t is not null);
            if (found is null)
                throw new ModelFormatException(
                    $"{configPath}: the checkpoint is missing '{e.Names[0]}' ({e.Because}); config.json does not describe this checkpoint");
            if (!found.Shape.SequenceEqual(e.Shape))
                throw new ModelFormatException(
                    $"{configPath}: config.json implies '{found.Name}' of shape [{string.Join(", ", e.Shape)}] ({e.Because}) but the checkpoint has [{string.Join(", ", found.Shape)}]");
        }
    }
}
