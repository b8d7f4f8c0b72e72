// Llama-family decoder-only models (Llama 1/2/3, Mistral, Qwen2), one readable file. Field names equal the Hugging Face
// checkpoint keys (model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight, lm_head.weight, ...) so loading
// is a plain mapping and PEFT CAUSAL_LM adapter paths (model.layers.0.self_attn.q_proj) name our Linear fields.
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>
/// Rotary scaling of a config's rope_scaling: "linear" (positions divided by Factor) or "llama3" (Llama 3.1's
/// frequency-dependent rescaling of the inverse frequencies).
/// </summary>
public sealed record RopeScaling(
    string Type,
    double Factor,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    int OriginalMaxPositionEmbeddings = 8192);

/// <summary>The fields of a Hugging Face Llama / Mistral / Qwen2 config.json that change the computation.</summary>
public sealed record LlamaConfig(
    string ModelType,
    int VocabSize,
    int HiddenSize,
    int IntermediateSize,
    int NumHiddenLayers,
    int NumAttentionHeads,
    int NumKeyValueHeads,
    int HeadDim,
    double RmsNormEps = 1e-6,
    double RopeTheta = 10000.0,
    RopeScaling? RopeScaling = null,
    int MaxPositionEmbeddings = 2048,
    bool TieWordEmbeddings = false,
    bool QkvBias = false,
    bool OutputBias = false,
    bool MlpBias = false,
    int? SlidingWindow = null,
    int BosTokenId = 1,
    IReadOnlyList<int>? EosTokenIds = null,
    int? PadTokenId = null)
{
    /// <summary>The model_type values this file implements.</summary>
    public static readonly IReadOnlyList<string> ModelTypes = ["llama", "mistral", "qwen2"];

    public int EosTokenId => EosTokenIds is { Count: > 0 } e ? e[0] : 2;

    public static LlamaConfig FromJson(JsonObject json, string source)
    {
        // Every number is checked (type, sign, range, divisibility) before a tensor is sized from it: see ConfigFields.
        var f = new ConfigFields(json, source, message => new ModelFormatException(message));
        var modelType = f.String("model_type") ?? "llama";
        if (!ModelTypes.Contains(modelType))
            throw new ModelFormatException($"{source}: model_type '{modelType}' is not a Llama-family model ({string.Join(", ", ModelTypes)})");

        var act = f.String("hidden_act") ?? "silu";
        if (act != "silu")
            throw new ModelFormatException($"{source}: hidden_act '{act}' is not supported (silu)");
        const int maxDim = ConfigFields.MaxDimension;
        var vocab = f.Int("vocab_size", 1, ConfigFields.MaxVocabulary);
        var hidden = f.Int("hidden_size", 1, maxDim);
        var heads = f.Int("num_attention_heads", 1, maxDim);
        var kvHeads = f.Int("num_key_value_heads", 1, heads, heads);
        if (heads % kvHeads != 0)
            throw f.Error("'num_attention_heads'", $"{heads} is not a multiple of num_key_value_heads {kvHeads}");
        var headDim = f.OptInt("head_dim", 2, maxDim) ?? (hidden % heads == 0 ? hidden / heads
            : throw f.Error("'hidden_size'", $"{hidden} is not a multiple of num_attention_heads {heads} and no head_dim is given"));
        if (headDim % 2 != 0) throw f.Error("head dimension", $"{headDim} is odd; rotary embeddings need an even head dimension");
        if ((long)headDim * heads > maxDim) throw f.Error("'num_attention_heads' x head dimension", $"is {(long)headDim * heads}, more than {maxDim}");

        // Llama: attention_bias puts a bias on q, k, v and o. Qwen2: q, k and v always have one, o never.
        var attentionBias = f.Bool("attention_bias", false);
        var qkvBias = modelType == "qwen2" || attentionBias;
        var outputBias = modelType != "qwen2" && attentionBias;

        int? window = null;
        if (modelType == "mistral")
        {
            window = f.OptInt("sliding_window", 1, int.MaxValue);
        }
        else if (modelType == "qwen2" && f.Bool("use_sliding_window", false))
        {
            throw new ModelFormatException($"{source}: Qwen2 with use_sliding_window = true is not supported");
        }

        int TokenId(JsonNode node, string field) => f.IntValue(node, field, 0, vocab - 1);
        List<int>? eos = json["eos_token_id"] switch
        {
            null => null,
            JsonArray { Count: 0 } => throw f.Error("'eos_token_id'", "is an empty list"),
            JsonArray arr => arr.Select((x, i) => TokenId(x ?? throw f.Error($"'eos_token_id'[{i}]", "is null"), $"'eos_token_id'[{i}]")).ToList(),
            var one => [TokenId(one, "'eos_token_id'")],
        };
        // Some old Llama configs say pad_token_id -1 for "none".
        var pad = f.OptInt("pad_token_id", -1, vocab - 1);

        return new LlamaConfig(
            ModelType: modelType,
            VocabSize: vocab,
            HiddenSize: hidden,
            IntermediateSize: f.Int("intermediate_size", 1, maxDim),
            NumHiddenLayers: f.Int("num_hidden_layers", 1, ConfigFields.MaxLayers),
            NumAttentionHeads: heads,
            NumKeyValueHeads: kvHeads,
            HeadDim: headDim,
            RmsNormEps: f.Double("rms_norm_eps", 0, 1, 1e-6, exclusiveMin: true),
            RopeTheta: f.Double("rope_theta", 0, 1e12, 10000.0, exclusiveMin: true),
            RopeScaling: ParseRopeScaling(json["rope_scaling"], source),
            MaxPositionEmbeddings: f.Int("max_position_embeddings", 1, 1 << 24, 2048),
            // LlamaConfig, MistralConfig and Qwen2Config all default to an untied head.
            TieWordEmbeddings: f.Bool("tie_word_embeddings", false),
            QkvBias: qkvBias,
            OutputBias: outputBias,
            MlpBias: f.Bool("mlp_bias", false),
            SlidingWindow: window,
            BosTokenId: f.Int("bos_token_id", 0, vocab - 1, Math.Min(1, vocab - 1)),
            EosTokenIds: eos ?? [Math.Min(2, vocab - 1)],
            PadTokenId: pad is < 0 ? null : pad);
    }

    private static RopeScaling? ParseRopeScaling(JsonNode? node, string source)
    {
        if (node is null) return null;
        if (node is not JsonObject o) throw new ModelFormatException($"{source}: rope_scaling is not an object");
        var f = new ConfigFields(o, source, message => new ModelFormatException(message));
        var type = f.String("rope_type") ?? f.String("type") ?? "default";
        double D(string key, double fallback) => f.Double(key, 0, 1e6, fallback, exclusiveMin: true);
        switch (type)
        {
            case "default":
                return null;
            case "linear":
                return new RopeScaling(type, D("factor", 1.0));
            case "llama3":
                var low = D("low_freq_factor", 1.0);
                var high = D("high_freq_factor", 4.0);
                if (!(high > low)) throw f.Error("rope_scaling 'high_freq_factor'", $"{high} must be larger than low_freq_factor {low}");
                return new RopeScaling(type, D("factor", 8.0), low, high, f.Int("original_max_position_embeddings", 1, 1 << 24, 8192));
            default:
                throw new ModelFormatException($"{source}: rope_scaling type '{type}' is not supported (linear, llama3)");
        }
    }

    /// <summary>
    /// Rotary inverse frequencies [head_dim / 2], computed in float32 exactly as Hugging Face does
    /// (1 / theta^(2i/d), then the rope_scaling adjustment).
    /// </summary>
    public float[] InverseFrequencies()
    {
        using var scope = NewDisposeScope();
        var exponent = arange(0, HeadDim, 2, dtype: ScalarType.Int64).to(ScalarType.Float32) / HeadDim;
        var invFreq = 1.0f / pow(tensor((float)RopeTheta), exponent);
        if (RopeScaling is { Type: "linear" } linear)
        {
            invFreq = invFreq / (float)linear.Factor;
        }
        else if (RopeScaling is { Type: "llama3" } s)
        {
            var lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            var highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            var wavelen = 2 * Math.PI / invFreq;
            var scaled = where(wavelen > lowFreqWavelen, invFreq / s.Factor, invFreq);
            var smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
            var smoothed = (1 - smooth) * scaled / s.Factor + smooth * scaled;
            var medium = (wavelen >= highFreqWavelen).logical_and(wavelen <= lowFreqWavelen);
            invFreq = where(medium, smoothed, scaled);
        }
        return invFreq.to(ScalarType.Float32).data<float>().ToArray();
    }
}

/// <summary>Llama's RMS norm: x / sqrt(mean(x²) + eps) computed in float32, cast back, times the weight.</summary>
public sealed class LlamaRMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public LlamaRMSNorm(int size, double eps, ParameterFactory parameters) : base(nameof(LlamaRMSNorm))
    {
        weight = parameters.Ones(size);
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var variance = x32.pow(2).mean([-1L], keepdim: true);
        var normed = (x32 * rsqrt(variance + eps)).to(x.dtype);
        return (weight * normed).MoveToOuterDisposeScope();
    }
}

/// <summary>Keys and values of every layer kept between generation steps, and how many positions they hold.</summary>
public sealed class CausalCache : IDisposable
{
    public CausalCache(int layers) => Layers = Enumerable.Range(0, layers).Select(_ => new KeyValueCache()).ToArray();

    /// <summary>One cache per decoder layer (keys and values before the grouped-query repeat: [batch, kv heads, length, head dim]).</summary>
    public IReadOnlyList<KeyValueCache> Layers { get; }

    /// <summary>Number of positions (columns of the attention mask) already in the cache.</summary>
    public long Length { get; internal set; }

    public void Dispose()
    {
        foreach (var l in Layers) l.Dispose();
    }
}

/// <summary>Multi-head attention with grouped key/value heads and rotary position embeddings.</summary>
public sealed class LlamaAttention : nn.Module
{
    // Projections are typed as the generic module so a LoRA layer can wrap them in place.
    private nn.Module<Tensor, Tensor> q_proj, k_proj, v_proj, o_proj;
    private readonly LlamaConfig config;

    public LlamaAttention(LlamaConfig config, ParameterFactory parameters) : base(nameof(LlamaAttention))
    {
        this.config = config;
        var h = config.HiddenSize;
        q_proj = parameters.Linear(h, config.NumAttentionHeads * config.HeadDim, config.QkvBias);
        k_proj = parameters.Linear(h, config.NumKeyValueHeads * config.HeadDim, config.QkvBias);
        v_proj = parameters.Linear(h, config.NumKeyValueHeads * config.HeadDim, config.QkvBias);
        o_proj = parameters.Linear(config.NumAttentionHeads * config.HeadDim, h, config.OutputBias);
        RegisterComponents();
    }

    /// <summary>[b, L, heads*d] -> [b, heads, L, d].</summary>
    private Tensor Heads(Tensor x, int heads) => x.view(x.shape[0], x.shape[1], heads, config.HeadDim).transpose(1, 2);

    /// <summary>HF rotate_half: (x1, x2) -> (-x2, x1) over the two halves of the last dimension.</summary>
    private static Tensor RotateHalf(Tensor x)
    {
        var half = x.shape[^1] / 2;
        return cat([-x[.., .., .., (int)half..], x[.., .., .., ..(int)half]], -1);
    }

    /// <summary>
    /// hidden [b, L, hidden]; cos/sin [b, 1, L, d]; mask: true where a query may NOT see a key, [b or 1, 1, L, keys].
    /// With a cache, the new keys/values are appended and attention covers all cached positions.
    /// </summary>
    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, Tensor blocked, KeyValueCache? cache)
    {
        using var scope = NewDisposeScope();
        var query = Heads(q_proj.forward(hidden), config.NumAttentionHeads);
        var key = Heads(k_proj.forward(hidden), config.NumKeyValueHeads);
        var value = Heads(v_proj.forward(hidden), config.NumKeyValueHeads);
        query = query * cos + RotateHalf(query) * sin;
        key = key * cos + RotateHalf(key) * sin;
        if (cache is not null) (key, value) = cache.Append(key, value);

        var groups = config.NumAttentionHeads / config.NumKeyValueHeads;
        if (groups > 1)
        {
            // Head h reads key/value head h / groups (HF repeat_kv).
            key = key.repeat_interleave(groups, dim: 1);
            value = value.repeat_interleave(groups, dim: 1);
        }
        var scores = matmul(query, key.transpose(2, 3)) / Math.Sqrt(config.HeadDim);
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min);
        var weights = nn.functional.softmax(scores.to(ScalarType.Float32), -1).to(query.dtype);
        var context = matmul(weights, value).transpose(1, 2).contiguous()
            .view(hidden.shape[0], hidden.shape[1], config.NumAttentionHeads * config.HeadDim);
        return o_proj.forward(context).MoveToOuterDisposeScope();
    }
}

/// <summary>SiLU-gated feed-forward: down(silu(gate(x)) * up(x)).</summary>
public sealed class LlamaMLP : nn.Module<Tensor, Tensor>
{
    private nn.Module<Tensor, Tensor> gate_proj, up_proj, down_proj;

    public LlamaMLP(LlamaConfig config, ParameterFactory parameters) : base(nameof(LlamaMLP))
    {
        gate_proj = parameters.Linear(config.HiddenSize, config.IntermediateSize, config.MlpBias);
        up_proj = parameters.Linear(config.HiddenSize, config.IntermediateSize, config.MlpBias);
        down_proj = parameters.Linear(config.IntermediateSize, config.HiddenSize, config.MlpBias);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>One pre-norm decoder layer: x + attn(norm(x)), then x + mlp(norm(x)).</summary>
public sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMLP mlp;
    private readonly LlamaRMSNorm input_layernorm;
    private readonly LlamaRMSNorm post_attention_layernorm;

    public LlamaDecoderLayer(LlamaConfig config, ParameterFactory parameters) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(config, parameters);
        mlp = new LlamaMLP(config, parameters);
        input_layernorm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps, parameters);
        post_attention_layernorm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps, parameters);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, Tensor blocked, KeyValueCache? cache)
    {
        using var scope = NewDisposeScope();
        hidden = hidden + self_attn.Forward(input_layernorm.forward(hidden), cos, sin, blocked, cache);
        hidden = hidden + mlp.forward(post_attention_layernorm.forward(hidden));
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder stack (HF LlamaModel, the checkpoint's "model." prefix): embedding, layers, final norm.</summary>
public sealed class LlamaModel : nn.Module
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly LlamaRMSNorm norm;
    private readonly LlamaConfig config;
    private readonly float[] inverseFrequencies;

    public LlamaModel(LlamaConfig config, ParameterFactory parameters) : base(nameof(LlamaModel))
    {
        this.config = config;
        embed_tokens = parameters.Embedding(config.VocabSize, config.HiddenSize);
        layers = new ModuleList<LlamaDecoderLayer>();
        for (var i = 0; i < config.NumHiddenLayers; i++) layers.Add(new LlamaDecoderLayer(config, parameters));
        norm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps, parameters);
        inverseFrequencies = config.InverseFrequencies();
        RegisterComponents();
    }

    public Embedding EmbedTokens => embed_tokens;
    public int LayerCount => layers.Count;

    /// <summary>cos and sin [b, 1, L, head_dim] for integer positions [b, L] (float32 products, as HF, then cast).</summary>
    public (Tensor Cos, Tensor Sin) Rotary(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = tensor(inverseFrequencies, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * invFreq; // [b, L, d/2]
        var emb = cat([freqs, freqs], -1).unsqueeze(1);
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// ids [b, L]; attentionMask [b, past + L] of 1 (token) / 0 (padding) over the cached and the new positions, or
    /// null when nothing is padded. Positions are counted from the mask (cumsum - 1), so left and right padding both
    /// give each real token the position it would have alone. Returns the final hidden states [b, L, hidden].
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? attentionMask, CausalCache? cache)
    {
        using var scope = NewDisposeScope();
        var device = ids.device;
        var (batch, length) = (ids.shape[0], ids.shape[1]);
        var past = cache?.Length ?? 0;
        var keys = past + length;
        if (attentionMask is not null && (attentionMask.shape[0] != batch || attentionMask.shape[1] != keys))
            throw new ArgumentException($"attention mask is [{string.Join(", ", attentionMask.shape)}] but the batch needs [{batch}, {keys}] (cached + new positions)");

        Tensor positions;
        if (attentionMask is null)
        {
            positions = arange(past, keys, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(batch, -1);
        }
        else
        {
            var mask = attentionMask.to(ScalarType.Int64);
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[.., (int)past..];
        }

        // blocked[b, 0, i, j]: query i (at column past + i) may not see key column j.
        var queryColumn = arange(past, keys, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var keyColumn = arange(keys, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var blocked = keyColumn > queryColumn;
        if (config.SlidingWindow is int window) blocked = blocked.logical_or(queryColumn - keyColumn >= window);
        blocked = blocked.unsqueeze(0).unsqueeze(0);
        if (attentionMask is not null) blocked = blocked.logical_or((attentionMask == 0).unsqueeze(1).unsqueeze(1));

        var hidden = embed_tokens.forward(ids);
        var (cos, sin) = Rotary(positions, hidden.dtype);
        for (var i = 0; i < layers.Count; i++)
            hidden = layers[i].Forward(hidden, cos, sin, blocked, cache?.Layers[i]);
        if (cache is not null) cache.Length = keys;
        return norm.forward(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>LlamaForCausalLM (also Mistral and Qwen2): the decoder stack and the language-model head (tied or not).</summary>
public sealed class LlamaForCausalLM : nn.Module, ICausalLanguageModel
{
    private readonly LlamaModel model;
    private readonly Linear? lm_head;

    public LlamaConfig Config { get; }

    /// <summary>
    /// A model whose layers come from parameters: randomly initialised F32 on the CPU by default; the loader builds it
    /// uninitialised in the compute dtype on the device, then streams the checkpoint in (see <see cref="ParameterFactory"/>).
    /// </summary>
    public LlamaForCausalLM(LlamaConfig config, ParameterFactory? parameters = null) : base(nameof(LlamaForCausalLM))
    {
        parameters ??= ParameterFactory.Default;
        Config = config;
        model = new LlamaModel(config, parameters);
        if (!config.TieWordEmbeddings) lm_head = parameters.Linear(config.HiddenSize, config.VocabSize, false);
        RegisterComponents();
    }

    public nn.Module Module => this;
    public int? BosTokenId => Config.BosTokenId;
    public int EosTokenId => Config.EosTokenId;
    public IReadOnlyList<int> EosTokenIds => Config.EosTokenIds ?? [Config.EosTokenId];
    /// <summary>config's pad_token_id, else 0 (Llama has no pad token; padded positions are masked anyway).</summary>
    public int PadTokenId => Config.PadTokenId ?? 0;
    public int VocabSize => Config.VocabSize;

    /// <summary>
    /// Checkpoint keys the model can do without or ignores: lm_head.weight when the head is tied (some checkpoints
    /// still store the copy) and the rotary inv_freq buffers older checkpoints saved.
    /// </summary>
    public bool IsIgnoredKey(string key) =>
        (Config.TieWordEmbeddings && key == "lm_head.weight") || key.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public Tensor Forward(Tensor ids, Tensor? attentionMask = null, CausalCache? cache = null)
    {
        using var hidden = model.Forward(ids, attentionMask, cache);
        return lm_head is not null ? lm_head.forward(hidden) : nn.functional.linear(hidden, model.EmbedTokens.weight!);
    }

    public CausalCache NewCache() => new(model.LayerCount);
}
