using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraHub.Core.Training;

/// <summary>How to pretrain a small model from scratch (all parameters).</summary>
public sealed record BaseTrainingOptions
{
    public int Steps { get; init; } = 600;
    public int BatchSize { get; init; } = 64;
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Linear warm-up steps; null = 5% of the steps. The rate then decays linearly to zero.</summary>
    public int? WarmupSteps { get; init; }

    public double ClipNorm { get; init; } = 1.0;

    /// <summary>
    /// Probability of replacing each teacher-forced decoder input token (not the start token) with a random one of
    /// <see cref="NoiseTokenIds"/>. Noise keeps the model from aligning its output with its input by the content
    /// of the previous output token, so a LoRA module that changes which tokens come out does not break alignment.
    /// </summary>
    public double DecoderInputNoise { get; init; }

    /// <summary>
    /// Adapter noise: at every step a fresh random rank-<see cref="AdapterNoiseRank"/> update is added to q and v of every
    /// attention block (A uniform like PEFT's init, B normal with std drawn uniformly in [0, AdapterNoise]), so the model
    /// learns a copy mechanism that tolerates LoRA updates of those layers. 0 = off.
    /// </summary>
    public double AdapterNoise { get; init; }

    public int AdapterNoiseRank { get; init; } = 16;

    /// <summary>Token ids the decoder input noise draws from (required when DecoderInputNoise &gt; 0).</summary>
    public IReadOnlyList<int>? NoiseTokenIds { get; init; }

    /// <summary>Seed of the initial weights (and of the batch order when training on a fixed list).</summary>
    public int Seed { get; init; }

    internal void Validate()
    {
        if (Steps < 1) throw new ArgumentException("steps must be at least 1");
        if (BatchSize < 1) throw new ArgumentException("batch size must be at least 1");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException("learning rate must be a positive number");
        if (WarmupSteps is < 0) throw new ArgumentException("warm-up steps cannot be negative");
        if (!(ClipNorm > 0)) throw new ArgumentException("the gradient clipping norm must be positive");
        if (DecoderInputNoise is < 0 or >= 1) throw new ArgumentException("decoder input noise must be in [0, 1)");
        if (DecoderInputNoise > 0 && NoiseTokenIds is not { Count: > 0 }) throw new ArgumentException("decoder input noise needs the token ids to draw from");
    }
}

/// <summary>The result of pretraining: the batch loss of every step and the time taken.</summary>
public sealed record BaseTrainingResult(IReadOnlyList<double> Losses, TimeSpan Elapsed);

/// <summary>
/// Trains a small T5 from scratch (every parameter) and saves it as a Hugging Face model folder that
/// <see cref="ModelLoader.Load"/> reads back: config.json (model_type t5), model.safetensors (HF key names) and the
/// tokenizer's file. Train a freshly created model (<see cref="Create"/>): a loaded one is frozen.
/// </summary>
public static class BaseTrainer
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

    /// <summary>Trains every parameter of <paramref name="model"/> on a fixed list of examples, batches drawn by options.Seed.</summary>
    public static BaseTrainingResult Train(T5ForConditionalGeneration model, IReadOnlyList<TokenizedExample> examples, BaseTrainingOptions options,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var sampler = new BatchSampler<TokenizedExample>(examples, options.BatchSize, options.Seed);
        return Train(model, _ => sampler.Next(), options, progress, cancellationToken);
    }

    /// <summary>
    /// Trains every parameter of <paramref name="model"/>; <paramref name="batchForStep"/> gives the batch of each
    /// 0-based step (a generated stream, for example). Adam, linear warm-up and decay, gradient clipping, one
    /// dispose scope per step.
    /// </summary>
    public static BaseTrainingResult Train(T5ForConditionalGeneration model, Func<int, IReadOnlyList<TokenizedExample>> batchForStep,
        BaseTrainingOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var clock = Stopwatch.StartNew();
        var parameters = model.parameters().ToList();
        if (parameters.Any(p => !p.requires_grad))
            throw new InvalidOperationException("the model has frozen parameters (a loaded model?): train a model made with BaseTrainer.Create");
        var warmup = options.WarmupSteps ?? options.Steps / 20;
        var losses = new List<double>(options.Steps);
        model.train();
        using var optimizer = optim.Adam(parameters, options.LearningRate);
        var group = optimizer.ParamGroups.Single();
        var noise = new Random(options.Seed);
        var noisy = options.AdapterNoise > 0
            ? LoraTrainer.TargetPaths(model, ["q", "v"]).Select(p => LoraInjector.Wrap(model, p)).ToList()
            : [];
        using var generator = new Generator((ulong)options.Seed + 1);
        try
        {
            for (var step = 0; step < options.Steps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = batchForStep(step);
                var lr = options.LearningRate * TrainingSupport.LearningRateFactor(step, options.Steps, warmup);
                group.LearningRate = lr;
                using (var scope = NewDisposeScope())
                {
                    if (noisy.Count > 0)
                    {
                        var std = options.AdapterNoise * noise.NextDouble();
                        foreach (var layer in noisy)
                        {
                            var a = (rand(options.AdapterNoiseRank, layer.InFeatures, generator: generator) * 2 - 1) / Math.Sqrt(layer.InFeatures);
                            var b = randn(layer.OutFeatures, options.AdapterNoiseRank, generator: generator) * std;
                            layer.SetAdapter(a, b);
                        }
                    }
                    var loss = (options.DecoderInputNoise > 0
                        ? NoisyLoss(model, batch, options.DecoderInputNoise, options.NoiseTokenIds!, noise)
                        : Seq2Seq.PerExampleLoss(model, batch)).mean();
                    optimizer.zero_grad();
                    loss.backward();
                    nn.utils.clip_grad_norm_(parameters, options.ClipNorm);
                    optimizer.step();
                    losses.Add(loss.item<float>());
                    foreach (var layer in noisy) layer.ClearAdapter();
                }
                progress?.Report(new TrainingProgress(step + 1, options.Steps, losses[^1], lr, clock.Elapsed));
            }
        }
        finally
        {
            foreach (var layer in noisy) layer.ClearAdapter();
            optimizer.zero_grad();
            model.eval();
        }
        return new BaseTrainingResult(losses, clock.Elapsed);
    }

    /// <summary>
    /// Seq2Seq.PerExampleLoss with noisy teacher forcing: each decoder input token after the start token is
    /// replaced, with probability <paramref name="p"/>, by a random token of <paramref name="tokenIds"/>.
    /// The labels are unchanged.
    /// </summary>
    internal static Tensor NoisyLoss(ISeq2SeqModel model, IReadOnlyList<TokenizedExample> batch, double p, IReadOnlyList<int> tokenIds, Random random)
    {
        using var scope = NewDisposeScope();
        var device = model.Module.parameters().First().device;
        var (inputIds, inputMask) = Seq2Seq.Pad(batch.Select(e => e.InputIds).ToList(), model.PadTokenId, device);
        var decoderIds = batch.Select(e =>
        {
            var ids = new[] { model.DecoderStartTokenId }.Concat(e.Labels[..^1]).ToArray();
            for (var i = 1; i < ids.Length; i++)
                if (random.NextDouble() < p) ids[i] = tokenIds[random.Next(tokenIds.Count)];
            return ids;
        }).ToList();
        var (decoderInput, _) = Seq2Seq.Pad(decoderIds, model.PadTokenId, device);
        var (labels, labelMask) = Seq2Seq.Pad(batch.Select(e => e.Labels).ToList(), 0, device);
        var encoded = model.Encode(inputIds, inputMask);
        var logits = model.Decode(decoderInput, encoded, inputMask);
        var nll = -nn.functional.log_softmax(logits.to(ScalarType.Float32), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1);
        var mask = labelMask.to(ScalarType.Float32);
        return ((nll * mask).sum(1) / mask.sum(1)).MoveToOuterDisposeScope();
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

    /// <summary>
    /// Saves the model as a Hugging Face folder: config.json, model.safetensors (float32, HF key names; the
    /// embed_tokens copies of the shared embedding are omitted as save_pretrained does) and the tokenizer's
    /// vocabulary file (CharTokenizer) when given.
    /// </summary>
    public static void Save(T5ForConditionalGeneration model, string directory, CharTokenizer? tokenizer = null)
    {
        Directory.CreateDirectory(directory);
        using (var scope = NewDisposeScope())
        {
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (name, p) in model.named_parameters())
            {
                if (T5ForConditionalGeneration.IsOptionalKey(name)) continue;
                tensors[name] = p.detach().to(ScalarType.Float32).cpu().contiguous();
            }
            SafeTensors.Save(Path.Combine(directory, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        var configPath = Path.Combine(directory, "config.json");
        File.WriteAllText(configPath + ".tmp", ConfigJson(model.Config).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(configPath + ".tmp", configPath, overwrite: true);
        tokenizer?.Save(directory);
    }
}
