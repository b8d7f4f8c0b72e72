using LoraHub.Core.Training;
using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Experiments.Training;

// The Llama (decoder-only) pieces of the base trainer: initialisation, noisy teacher forcing, config.json.
public static partial class BaseTrainer
{
    /// <summary>
    /// A new LlamaForCausalLM (model_type llama, no rope scaling, no sliding window), drawn from a generator seeded
    /// with <paramref name="seed"/>. Normal init with std = fan-in^-0.5 for every projection, so activations start
    /// O(1) whatever the width (Hugging Face's flat 0.02 is tuned for wide models); o_proj and down_proj, which write
    /// into the residual stream, are further scaled by (2 · layers)^-0.5 (GPT-2's rule) so the stream does not grow
    /// with depth. The embedding has std 1 (it feeds pre-norm layers) unless it is tied to the head, where it takes
    /// the head's hidden^-0.5 so initial logits are O(1). Norms start at 1, biases at 0.
    /// </summary>
    public static LlamaForCausalLM Create(LlamaConfig config, int seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.ModelType != "llama" || config.RopeScaling is not null || config.SlidingWindow is not null)
            throw new ArgumentException("BaseTrainer creates plain Llama models (model_type llama, no rope scaling, no sliding window)");
        var model = new LlamaForCausalLM(config);
        try
        {
            using var noGrad = no_grad();
            using var generator = new Generator((ulong)seed);
            double hidden = config.HiddenSize, attention = config.NumAttentionHeads * config.HeadDim, ff = config.IntermediateSize;
            var residual = Math.Pow(2.0 * config.NumHiddenLayers, -0.5);
            foreach (var (name, p) in model.named_parameters())
            {
                var parts = name.Split('.');
                var last = parts[^2]; // the module's own name (the key ends in .weight or .bias)
                if (parts[^1] == "bias")
                {
                    p.zero_();
                    continue;
                }
                double? std = last switch
                {
                    "embed_tokens" => config.TieWordEmbeddings ? Math.Pow(hidden, -0.5) : 1.0,
                    "lm_head" => Math.Pow(hidden, -0.5),
                    "q_proj" or "k_proj" or "v_proj" or "gate_proj" or "up_proj" => Math.Pow(hidden, -0.5),
                    "o_proj" => Math.Pow(attention, -0.5) * residual,
                    "down_proj" => Math.Pow(ff, -0.5) * residual,
                    _ => null,
                };
                if (std is { } s) p.normal_(0, s, generator);
                else if (last.EndsWith("norm", StringComparison.Ordinal)) p.fill_(1.0);
                else throw new InvalidOperationException($"no initialisation rule for parameter '{name}'");
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// CausalLm.PerExampleLoss with noisy teacher forcing: each completion token the model reads to predict the next
    /// one (every completion token but the last) is replaced, with probability <paramref name="p"/>, by a random token
    /// of <paramref name="tokenIds"/>. The prompt and the scored targets are unchanged.
    /// </summary>
    internal static Tensor NoisyLoss(ICausalLanguageModel model, IReadOnlyList<TokenizedExample> batch, double p, IReadOnlyList<int> tokenIds, Random random)
    {
        var examples = batch.Select(CausalExample.Of).ToList();
        var read = examples.Select(e =>
        {
            var ids = e.InputIds; // a fresh array
            for (var i = e.PromptIds.Length; i < ids.Length - 1; i++)
                if (random.NextDouble() < p) ids[i] = tokenIds[random.Next(tokenIds.Count)];
            return ids;
        }).ToList();
        return CausalLm.PerExampleLoss(model, examples, read);
    }

    /// <summary>The Hugging Face config.json of a Llama config (what <see cref="LlamaConfig.FromJson"/> reads back).</summary>
    public static JsonObject ConfigJson(LlamaConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.ModelType != "llama" || c.RopeScaling is not null || c.SlidingWindow is not null || c.QkvBias != c.OutputBias)
            throw new ArgumentException("only plain Llama configs are written (model_type llama, no rope scaling, no sliding window)");
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["vocab_size"] = c.VocabSize,
            ["hidden_size"] = c.HiddenSize,
            ["intermediate_size"] = c.IntermediateSize,
            ["num_hidden_layers"] = c.NumHiddenLayers,
            ["num_attention_heads"] = c.NumAttentionHeads,
            ["num_key_value_heads"] = c.NumKeyValueHeads,
            ["head_dim"] = c.HeadDim,
            ["hidden_act"] = "silu",
            ["max_position_embeddings"] = c.MaxPositionEmbeddings,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["rope_scaling"] = null,
            ["attention_bias"] = c.QkvBias,
            ["mlp_bias"] = c.MlpBias,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["bos_token_id"] = c.BosTokenId,
            ["eos_token_id"] = c.EosTokenIds is { Count: > 1 } many ? new JsonArray(many.Select(i => (JsonNode)JsonValue.Create(i)).ToArray()) : c.EosTokenId,
            ["use_cache"] = true,
            ["torch_dtype"] = "float32",
        };
        if (c.PadTokenId is int pad) json["pad_token_id"] = pad;
        return json;
    }
}
