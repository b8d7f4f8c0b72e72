// T5 / Flan-T5 encoder-decoder, one readable file. Field names equal the Hugging Face checkpoint keys
// (shared.weight, encoder.block.0.layer.0.SelfAttention.q.weight, ...) so loading is a plain mapping.
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>The fields of a Hugging Face T5 config.json that change the computation.</summary>
public sealed record T5Config(
    int VocabSize,
    int DModel,
    int DKv,
    int DFf,
    int NumLayers,
    int NumDecoderLayers,
    int NumHeads,
    int RelativeAttentionNumBuckets = 32,
    int RelativeAttentionMaxDistance = 128,
    double LayerNormEpsilon = 1e-6,
    string DenseActFn = "relu",
    bool IsGatedAct = false,
    bool TieWordEmbeddings = true,
    int DecoderStartTokenId = 0,
    int EosTokenId = 1,
    int PadTokenId = 0)
{
    public static T5Config FromJson(JsonObject json, string source)
    {
        // Every number is checked (type, sign, range) before a tensor is sized from it: see ConfigFields.
        var f = new ConfigFields(json, source, message => new ModelFormatException(message));
        // HF: feed_forward_proj "relu" | "gated-gelu" | "gated-<act>"; gated-gelu means gelu_new (tanh approximation).
        var ffProj = f.String("feed_forward_proj") ?? "relu";
        var gated = ffProj.StartsWith("gated-", StringComparison.Ordinal);
        var act = gated ? ffProj["gated-".Length..] : ffProj;
        if (act == "gelu") act = "gelu_new";
        if (act is not ("relu" or "gelu_new" or "silu"))
            throw new ModelFormatException($"{source}: feed_forward_proj '{ffProj}' is not supported (relu, gated-gelu, gated-silu)");
        const int maxDim = ConfigFields.MaxDimension;
        var vocab = f.Int("vocab_size", 1, ConfigFields.MaxVocabulary);
        var dModel = f.Int("d_model", 1, maxDim);
        var dKv = f.Int("d_kv", 1, maxDim);
        var heads = f.Int("num_heads", 1, maxDim);
        if ((long)heads * dKv > maxDim)
            throw f.Error("'num_heads' x 'd_kv'", $"is {(long)heads * dKv}, more than {maxDim}");
        var layers = f.Int("num_layers", 1, ConfigFields.MaxLayers);
        var buckets = f.Int("relative_attention_num_buckets", 4, 1 << 16, 32);
        // The bucket formula takes log(max_distance / max_exact); max_exact is buckets / 2 in the decoder.
        var maxDistance = f.Int("relative_attention_max_distance", buckets / 2 + 1, 1 << 24, Math.Max(128, buckets / 2 + 1));
        int TokenId(string key, int fallback) => f.Int(key, 0, vocab - 1, Math.Min(fallback, vocab - 1));
        return new T5Config(
            VocabSize: vocab,
            DModel: dModel,
            DKv: dKv,
            DFf: f.Int("d_ff", 1, maxDim),
            NumLayers: layers,
            NumDecoderLayers: f.Int("num_decoder_layers", 1, ConfigFields.MaxLayers, layers),
            NumHeads: heads,
            RelativeAttentionNumBuckets: buckets,
            RelativeAttentionMaxDistance: maxDistance,
            LayerNormEpsilon: f.Double("layer_norm_epsilon", 0, 1, 1e-6, exclusiveMin: true),
            DenseActFn: act,
            IsGatedAct: gated,
            TieWordEmbeddings: f.Bool("tie_word_embeddings", true),
            DecoderStartTokenId: TokenId("decoder_start_token_id", 0),
            EosTokenId: TokenId("eos_token_id", 1),
            PadTokenId: TokenId("pad_token_id", 0));
    }
}

/// <summary>T5's RMS norm: no mean subtraction, no bias, variance in float32.</summary>
public sealed class T5LayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public T5LayerNorm(int size, double eps, ParameterFactory parameters) : base(nameof(T5LayerNorm))
    {
        weight = parameters.Ones(size);
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var variance = x.to(ScalarType.Float32).pow(2).mean([-1L], keepdim: true);
        var normed = x * rsqrt(variance + eps);
        return (weight * normed.to(weight.dtype)).MoveToOuterDisposeScope();
    }
}

public sealed class T5Attention : nn.Module
{
    // Projections are typed as the generic module so a LoRA layer can wrap them in place.
    private nn.Module<Tensor, Tensor> q, k, v, o;
    private readonly Embedding? relative_attention_bias;
    private readonly T5Config config;
    private readonly bool bidirectional;

    public T5Attention(T5Config config, bool hasRelativeBias, bool bidirectional, ParameterFactory parameters) : base(nameof(T5Attention))
    {
        this.config = config;
        this.bidirectional = bidirectional;
        var inner = config.NumHeads * config.DKv;
        q = parameters.Linear(config.DModel, inner, false);
        k = parameters.Linear(config.DModel, inner, false);
        v = parameters.Linear(config.DModel, inner, false);
        o = parameters.Linear(inner, config.DModel, false);
        if (hasRelativeBias) relative_attention_bias = parameters.Embedding(config.RelativeAttentionNumBuckets, config.NumHeads);
        RegisterComponents();
    }

    /// <summary>
    /// Bucket of each relative position (key - query) exactly as Hugging Face computes it: half the buckets exact,
    /// the rest log-spaced up to maxDistance; the encoder distinguishes sign, the decoder only looks back.
    /// </summary>
    public static Tensor RelativePositionBucket(Tensor relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        var buckets = zeros_like(relativePosition);
        var n = relativePosition;
        if (bidirectional)
        {
            numBuckets /= 2;
            buckets = buckets + (relativePosition > 0).to(ScalarType.Int64) * numBuckets;
            n = relativePosition.abs();
        }
        else
        {
            n = -minimum(relativePosition, zeros_like(relativePosition));
        }
        var maxExact = numBuckets / 2;
        var isSmall = n < maxExact;
        var large = (log(n.to(ScalarType.Float32) / maxExact) / Math.Log((double)maxDistance / maxExact) * (numBuckets - maxExact))
            .to(ScalarType.Int64) + maxExact;
        large = minimum(large, full_like(large, numBuckets - 1));
        return (buckets + where(isSmall, n, large)).MoveToOuterDisposeScope();
    }

    /// <summary>Position bias [1, heads, queryLength, keyLength] for queries at offset.. offset+queryLength.</summary>
    public Tensor ComputeBias(long queryLength, long keyLength, long offset, Device device)
    {
        if (relative_attention_bias is null) throw new InvalidOperationException("only the first layer holds the relative attention bias");
        using var scope = NewDisposeScope();
        var context = arange(offset, offset + queryLength, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var memory = arange(keyLength, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var buckets = RelativePositionBucket(memory - context, bidirectional, config.RelativeAttentionNumBuckets, config.RelativeAttentionMaxDistance);
        var values = relative_attention_bias.forward(buckets); // [q, k, heads]
        return values.permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }

    private Tensor Heads(Tensor x) => x.view(x.shape[0], -1, config.NumHeads, config.DKv).transpose(1, 2);

    /// <summary>
    /// Unscaled dot-product attention (T5 folds the scale into its init). keyValueInput null means self-attention.
    /// cache (generation only): decoder self-attention appends the new keys/values; cross-attention computes
    /// them from the encoder output once and reuses them.
    /// </summary>
    public Tensor Forward(Tensor hidden, Tensor? keyValueInput, Tensor bias, KeyValueCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var query = Heads(q.forward(hidden));
        Tensor key, value;
        if (keyValueInput is not null && cache?.Key is not null)
        {
            (key, value) = (cache.Key, cache.Value!);
        }
        else
        {
            var source = keyValueInput ?? hidden;
            key = Heads(k.forward(source));
            value = Heads(v.forward(source));
            if (cache is not null) (key, value) = cache.Append(key, value);
        }
        var scores = matmul(query, key.transpose(2, 3)) + bias;
        var weights = nn.functional.softmax(scores.to(ScalarType.Float32), -1).to(scores.dtype);
        var context = matmul(weights, value).transpose(1, 2).contiguous().view(hidden.shape[0], -1, config.NumHeads * config.DKv);
        return o.forward(context).MoveToOuterDisposeScope();
    }
}

public sealed class T5LayerSelfAttention : nn.Module
{
    private readonly T5Attention SelfAttention;
    private readonly T5LayerNorm layer_norm;

    public T5LayerSelfAttention(T5Config config, bool hasRelativeBias, bool bidirectional, ParameterFactory parameters) : base(nameof(T5LayerSelfAttention))
    {
        SelfAttention = new T5Attention(config, hasRelativeBias, bidirectional, parameters);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon, parameters);
        RegisterComponents();
    }

    public T5Attention Attention => SelfAttention;

    public Tensor Forward(Tensor hidden, Tensor bias, KeyValueCache? cache)
    {
        using var normed = layer_norm.forward(hidden);
        using var attended = SelfAttention.Forward(normed, null, bias, cache);
        return hidden + attended;
    }
}

public sealed class T5LayerCrossAttention : nn.Module
{
    private readonly T5Attention EncDecAttention;
    private readonly T5LayerNorm layer_norm;

    public T5LayerCrossAttention(T5Config config, ParameterFactory parameters) : base(nameof(T5LayerCrossAttention))
    {
        EncDecAttention = new T5Attention(config, hasRelativeBias: false, bidirectional: true, parameters);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon, parameters);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor encoderOutput, Tensor bias, KeyValueCache? cache)
    {
        using var normed = layer_norm.forward(hidden);
        using var attended = EncDecAttention.Forward(normed, encoderOutput, bias, cache);
        return hidden + attended;
    }
}

/// <summary>Feed-forward: relu (wi, wo) or gated (act(wi_0 x) * wi_1 x, then wo).</summary>
public sealed class T5DenseActDense : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>? wi, wi_0, wi_1;
    private readonly nn.Module<Tensor, Tensor> wo;
    private readonly string act;

    public T5DenseActDense(T5Config config, ParameterFactory parameters) : base(nameof(T5DenseActDense))
    {
        if (config.IsGatedAct)
        {
            wi_0 = parameters.Linear(config.DModel, config.DFf, false);
            wi_1 = parameters.Linear(config.DModel, config.DFf, false);
        }
        else
        {
            wi = parameters.Linear(config.DModel, config.DFf, false);
        }
        wo = parameters.Linear(config.DFf, config.DModel, false);
        act = config.DenseActFn;
        RegisterComponents();
    }

    private Tensor Activate(Tensor x) => act switch
    {
        "relu" => nn.functional.relu(x),
        "silu" => nn.functional.silu(x),
        // gelu_new: the tanh approximation Hugging Face uses for gated-gelu.
        _ => 0.5 * x * (1.0 + tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * pow(x, 3.0)))),
    };

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = wi is not null ? Activate(wi.forward(x)) : Activate(wi_0!.forward(x)) * wi_1!.forward(x);
        return wo.forward(h).MoveToOuterDisposeScope();
    }
}

public sealed class T5LayerFF : nn.Module<Tensor, Tensor>
{
    private readonly T5DenseActDense DenseReluDense;
    private readonly T5LayerNorm layer_norm;

    public T5LayerFF(T5Config config, ParameterFactory parameters) : base(nameof(T5LayerFF))
    {
        DenseReluDense = new T5DenseActDense(config, parameters);
        layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon, parameters);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var normed = layer_norm.forward(hidden);
        using var ff = DenseReluDense.forward(normed);
        return hidden + ff;
    }
}

/// <summary>One block: layer.0 self-attention, [layer.1 cross-attention,] last layer feed-forward.</summary>
public sealed class T5Block : nn.Module
{
    private readonly ModuleList<nn.Module> layer;
    private readonly bool isDecoder;

    public T5Block(T5Config config, bool isDecoder, bool hasRelativeBias, ParameterFactory parameters) : base(nameof(T5Block))
    {
        this.isDecoder = isDecoder;
        layer = new ModuleList<nn.Module>();
        layer.Add(new T5LayerSelfAttention(config, hasRelativeBias, bidirectional: !isDecoder, parameters));
        if (isDecoder) layer.Add(new T5LayerCrossAttention(config, parameters));
        layer.Add(new T5LayerFF(config, parameters));
        RegisterComponents();
    }

    public T5LayerSelfAttention SelfLayer => (T5LayerSelfAttention)layer[0];

    public Tensor Forward(Tensor hidden, Tensor selfBias, Tensor? encoderOutput, Tensor? crossBias, BlockCache? cache)
    {
        using var scope = NewDisposeScope();
        hidden = SelfLayer.Forward(hidden, selfBias, cache?.Self);
        if (isDecoder) hidden = ((T5LayerCrossAttention)layer[1]).Forward(hidden, encoderOutput!, crossBias!, cache?.Cross);
        hidden = ((T5LayerFF)layer[isDecoder ? 2 : 1]).forward(hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>Per-block key/value cache for greedy generation.</summary>
public sealed class BlockCache : IDisposable
{
    public KeyValueCache Self { get; } = new();
    public KeyValueCache Cross { get; } = new();

    public void Dispose()
    {
        Self.Dispose();
        Cross.Dispose();
    }
}

/// <summary>A stack of blocks: the encoder (bidirectional) or the decoder (causal, with cross-attention).</summary>
public sealed class T5Stack : nn.Module
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<T5Block> block;
    private readonly T5LayerNorm final_layer_norm;
    private readonly bool isDecoder;

    public T5Stack(T5Config config, Embedding shared, bool isDecoder, ParameterFactory parameters) : base(nameof(T5Stack))
    {
        this.isDecoder = isDecoder;
        embed_tokens = shared;
        var count = isDecoder ? config.NumDecoderLayers : config.NumLayers;
        block = new ModuleList<T5Block>();
        for (var i = 0; i < count; i++) block.Add(new T5Block(config, isDecoder, hasRelativeBias: i == 0, parameters));
        final_layer_norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon, parameters);
        RegisterComponents();
    }

    /// <summary>
    /// ids [batch, length]; mask [batch, length] of 1/0 for this stack's own tokens (encoder padding);
    /// the decoder adds the causal mask itself and takes the encoder mask for cross-attention.
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? mask, Tensor? encoderOutput, Tensor? encoderMask, IList<BlockCache>? cache = null, long offset = 0)
    {
        using var scope = NewDisposeScope();
        var hidden = embed_tokens.forward(ids);
        var length = ids.shape[1];
        var keyLength = offset + length;
        var minValue = torch.finfo(hidden.dtype).min;

        // Relative position bias is computed by layer 0 and shared by every layer, with the masks added once.
        var selfBias = block[0].SelfLayer.Attention.ComputeBias(length, keyLength, offset, hidden.device);
        if (isDecoder)
        {
            var queryPos = arange(offset, offset + length, device: hidden.device).unsqueeze(1);
            var keyPos = arange(keyLength, device: hidden.device).unsqueeze(0);
            var causal = (keyPos > queryPos).to(hidden.dtype) * minValue;
            selfBias = selfBias + causal.unsqueeze(0).unsqueeze(0);
        }
        if (mask is not null) selfBias = selfBias + ((1.0 - mask.to(hidden.dtype)) * minValue).unsqueeze(1).unsqueeze(1);

        Tensor? crossBias = null;
        if (isDecoder)
        {
            var encLength = encoderOutput!.shape[1];
            crossBias = zeros(1, 1, length, encLength, dtype: hidden.dtype, device: hidden.device);
            if (encoderMask is not null) crossBias = crossBias + ((1.0 - encoderMask.to(hidden.dtype)) * minValue).unsqueeze(1).unsqueeze(1);
        }

        for (var i = 0; i < block.Count; i++)
            hidden = block[i].Forward(hidden, selfBias, encoderOutput, crossBias, cache?[i]);
        return final_layer_norm.forward(hidden).MoveToOuterDisposeScope();
    }

    public int BlockCount => block.Count;
}

/// <summary>T5ForConditionalGeneration: shared embedding, encoder, decoder and the language-model head.</summary>
public sealed class T5ForConditionalGeneration : nn.Module, ISeq2SeqModel
{
    private readonly Embedding shared;
    private readonly T5Stack encoder;
    private readonly T5Stack decoder;
    private readonly Linear? lm_head;

    public T5Config Config { get; }

    /// <summary>
    /// A model whose layers come from parameters: randomly initialised F32 on the CPU by default; the loader builds it
    /// uninitialised in the compute dtype on the device, then streams the checkpoint in (see <see cref="ParameterFactory"/>).
    /// </summary>
    public T5ForConditionalGeneration(T5Config config, ParameterFactory? parameters = null) : base(nameof(T5ForConditionalGeneration))
    {
        parameters ??= ParameterFactory.Default;
        Config = config;
        shared = parameters.Embedding(config.VocabSize, config.DModel);
        encoder = new T5Stack(config, shared, isDecoder: false, parameters);
        decoder = new T5Stack(config, shared, isDecoder: true, parameters);
        if (!config.TieWordEmbeddings) lm_head = parameters.Linear(config.DModel, config.VocabSize, false);
        RegisterComponents();
    }

    public nn.Module Module => this;
    public int DecoderStartTokenId => Config.DecoderStartTokenId;
    public int EosTokenId => Config.EosTokenId;
    public int PadTokenId => Config.PadTokenId;
    public int VocabSize => Config.VocabSize;

    /// <summary>
    /// Checkpoint keys the model can do without: the embed_tokens copies are the shared embedding
    /// (save_pretrained omits them), and lm_head when the head is tied.
    /// </summary>
    public static bool IsOptionalKey(string key) => key is "encoder.embed_tokens.weight" or "decoder.embed_tokens.weight";

    public Tensor Encode(Tensor inputIds, Tensor attentionMask) => encoder.Forward(inputIds, attentionMask, null, null);

    public Tensor Logits(Tensor decoderHidden)
    {
        if (lm_head is not null) return lm_head.forward(decoderHidden);
        // Tied head: Mesh TensorFlow rescales the output by d_model^-0.5 before reusing the embedding.
        using var scaled = decoderHidden * Math.Pow(Config.DModel, -0.5);
        return nn.functional.linear(scaled, shared.weight!);
    }

    public Tensor Decode(Tensor decoderIds, Tensor encoderOutput, Tensor encoderMask, IList<BlockCache>? cache = null, long offset = 0)
    {
        using var hidden = decoder.Forward(decoderIds, null, encoderOutput, encoderMask, cache, offset);
        return Logits(hidden);
    }

    public IList<BlockCache> NewCache() => Enumerable.Range(0, decoder.BlockCount).Select(_ => new BlockCache()).ToList();
}
