using LoraHub.Core.Training;
using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Experiments.Training;

// The T5 (encoder-decoder) pieces of the base trainer: initialisation, noisy teacher forcing, config.json.
public static partial class BaseTrainer
{
    /// <summary>
    /// A new T5 with Hugging Face's T5 initialisation (normal, std = factor * fan-in^-0.5, with q also scaled by
    /// d_kv^-0.5 because T5 attention is unscaled; embeddings std 1; layer norms 1), drawn from a generator
    /// seeded with <paramref name="seed"/>. The untied head uses std d_model^-0.5 so initial logits are O(1).
    /// </summary>
    public static T5ForConditionalGeneration Create(T5Config config, int seed)
    {
        var model = new T5ForConditionalGeneration(config);
        try
        {
            using var noGrad = no_grad();
            var generator = new Generator((ulong)seed);
            double dModel = config.DModel, dKv = config.DKv, heads = config.NumHeads, dFf = config.DFf;
            foreach (var (name, p) in model.named_parameters())
            {
                var last = name.Split('.')[^2]; // the module's own name (the key ends in .weight)
                double? std = last switch
                {
                    "shared" => 1.0,
                    "lm_head" => Math.Pow(dModel, -0.5),
                    "q" => Math.Pow(dModel * dKv, -0.5),
                    "k" or "v" => Math.Pow(dModel, -0.5),
                    "o" => Math.Pow(heads * dKv, -0.5),
                    "relative_attention_bias" => Math.Pow(dModel, -0.5),
                    "wi" or "wi_0" or "wi_1" => Math.Pow(dModel, -0.5),
                    "wo" => Math.Pow(dFf, -0.5),
                    _ => null,
                };
                if (std is { } s) p.normal_(0, s, generator);
                else if (last.EndsWith("layer_norm", StringComparison.Ordinal)) p.fill_(1.0);
                else throw new InvalidOperationException($"no initialisation rule for parameter '{name}'");
            }
            generator.Dispose();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Seq2Seq.PerExampleLoss with noisy teacher forcing: each decoder input token after the start token is
    /// replaced, with probability <paramref name="p"/>, by a random token of <paramref name="tokenIds"/>.
    /// The labels are unchanged.
    /// </summary>
    internal static Tensor NoisyLoss(ISeq2SeqModel model, IReadOnlyList<TokenizedExample> batch, double p, IReadOnlyList<int> tokenIds, Random random)
    {
        var read = batch.Select(e =>
        {
            var ids = Seq2Seq.DecoderInput(model, e);
            for (var i = 1; i < ids.Length; i++)
                if (random.NextDouble() < p) ids[i] = tokenIds[random.Next(tokenIds.Count)];
            return ids;
        }).ToList();
        return Seq2Seq.PerExampleLoss(model, batch, read);
    }

    /// <summary>The Hugging Face config.json of a T5 config.</summary>
    public static JsonObject ConfigJson(T5Config c)
    {
        var ffProj = c.IsGatedAct ? "gated-" + (c.DenseActFn == "gelu_new" ? "gelu" : c.DenseActFn) : c.DenseActFn;
        return new JsonObject
        {
            ["architectures"] = new JsonArray("T5ForConditionalGeneration"),
            ["model_type"] = "t5",
            ["vocab_size"] = c.VocabSize,
            ["d_model"] = c.DModel,
            ["d_kv"] = c.DKv,
            ["d_ff"] = c.DFf,
            ["num_layers"] = c.NumLayers,
            ["num_decoder_layers"] = c.NumDecoderLayers,
            ["num_heads"] = c.NumHeads,
            ["relative_attention_num_buckets"] = c.RelativeAttentionNumBuckets,
            ["relative_attention_max_distance"] = c.RelativeAttentionMaxDistance,
            ["layer_norm_epsilon"] = c.LayerNormEpsilon,
            ["feed_forward_proj"] = ffProj,
            ["dense_act_fn"] = c.DenseActFn,
            ["is_gated_act"] = c.IsGatedAct,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["decoder_start_token_id"] = c.DecoderStartTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["pad_token_id"] = c.PadTokenId,
            ["is_encoder_decoder"] = true,
            ["dropout_rate"] = 0.0,
            ["initializer_factor"] = 1.0,
            ["use_cache"] = true,
            ["torch_dtype"] = "float32",
        };
    }
}
