using LoraHub.Core.Training;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Experiments.Training;

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
    /// Noisy teacher forcing: the probability of replacing each teacher-forced target token the model reads (T5: a
    /// decoder input token after the start token; decoder-only: a completion token read to predict the next one)
    /// with a random one of <see cref="NoiseTokenIds"/>; the scored targets are unchanged. Noise keeps the model from
    /// aligning its output with its input by the content of the previous output token, so a LoRA module that
    /// changes which tokens come out does not break alignment.
    /// </summary>
    public double DecoderInputNoise { get; init; }

    /// <summary>
    /// Adapter noise: at every step a fresh random rank-<see cref="AdapterNoiseRank"/> update is added to the family's
    /// default LoRA targets (q and v of every attention block; q_proj and v_proj for Llama) (A uniform like PEFT's
    /// init, B normal with std drawn uniformly in [0, AdapterNoise]), so the model learns a copy mechanism that
    /// tolerates LoRA updates of those layers. 0 = off.
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
/// Trains a small model from scratch (every parameter) and saves it as a Hugging Face model folder that
/// <see cref="ModelLoader.Load"/> reads back: config.json, model.safetensors (HF key names) and the tokenizer's file.
/// The training loop, its regularisers and saving are family-neutral (any <see cref="IAdaptableModel"/>, its own
/// loss and LoRA targets); what depends on the family lives in BaseTrainer.T5.cs and BaseTrainer.Llama.cs: the
/// initialisation (<c>Create</c>), the noisy teacher-forcing loss and config.json. Train a freshly created model:
/// a loaded one is frozen.
/// </summary>
public static partial class BaseTrainer
{
    /// <summary>Trains every parameter of <paramref name="model"/> on a fixed list of examples, batches drawn by options.Seed.</summary>
    public static BaseTrainingResult Train(IAdaptableModel model, IReadOnlyList<TokenizedExample> examples, BaseTrainingOptions options,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var sampler = new BatchSampler<TokenizedExample>(examples, options.BatchSize, options.Seed);
        return Train(model, _ => sampler.Next(), options, progress, cancellationToken);
    }

    /// <summary>
    /// Trains every parameter of <paramref name="model"/>; <paramref name="batchForStep"/> gives the batch of each
    /// 0-based step (a generated stream, for example), in the family's few-shot convention (<see cref="IAdaptableModel.Format"/>).
    /// Adam, linear warm-up and decay, gradient clipping, one dispose scope per step.
    /// </summary>
    public static BaseTrainingResult Train(IAdaptableModel model, Func<int, IReadOnlyList<TokenizedExample>> batchForStep,
        BaseTrainingOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var clock = Stopwatch.StartNew();
        var module = model.Module;
        var parameters = module.parameters().ToList();
        if (parameters.Any(p => !p.requires_grad))
            throw new InvalidOperationException("the model has frozen parameters (a loaded model?): train a model made with BaseTrainer.Create");
        var warmup = options.WarmupSteps ?? options.Steps / 20;
        var losses = new List<double>(options.Steps);
        module.train();
        using var optimizer = optim.Adam(parameters, options.LearningRate);
        var group = optimizer.ParamGroups.Single();
        var noise = new Random(options.Seed);
        var noisy = options.AdapterNoise > 0
            ? LoraTrainer.TargetPaths(model, model.DefaultLoraTargets).Select(p => LoraInjector.Wrap(module, p)).ToList()
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
                        : model.PerExampleLoss(batch)).mean();
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
            module.eval();
        }
        return new BaseTrainingResult(losses, clock.Elapsed);
    }

    /// <summary>The family's per-example loss with noisy teacher forcing (see <see cref="BaseTrainingOptions.DecoderInputNoise"/>).</summary>
    internal static Tensor NoisyLoss(IAdaptableModel model, IReadOnlyList<TokenizedExample> batch, double p, IReadOnlyList<int> tokenIds, Random random) => model switch
    {
        ISeq2SeqModel seq2seq => NoisyLoss(seq2seq, batch, p, tokenIds, random),
        ICausalLanguageModel causal => NoisyLoss(causal, batch, p, tokenIds, random),
        _ => throw new NotSupportedException($"noisy teacher forcing is not implemented for {model.GetType().Name}"),
    };

    /// <summary>The Hugging Face config.json of a model this trainer can create (T5 or Llama).</summary>
    public static JsonObject ConfigJson(IAdaptableModel model) => model switch
    {
        T5ForConditionalGeneration t5 => ConfigJson(t5.Config),
        LlamaForCausalLM llama => ConfigJson(llama.Config),
        _ => throw new NotSupportedException($"cannot write a config.json for {model.GetType().Name}"),
    };

    /// <summary>
    /// Saves the model as a Hugging Face folder: config.json, model.safetensors (float32, HF key names; keys the
    /// family can do without are omitted as save_pretrained does, e.g. T5's embed_tokens copies of the shared
    /// embedding) and the tokenizer's vocabulary file (CharTokenizer) when given.
    /// </summary>
    public static void Save(IAdaptableModel model, string directory, CharTokenizer? tokenizer = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var config = ConfigJson(model);
        Func<string, bool> omitted = model switch
        {
            T5ForConditionalGeneration => T5ForConditionalGeneration.IsOptionalKey,
            LlamaForCausalLM llama => llama.IsIgnoredKey,
            _ => _ => false,
        };
        Directory.CreateDirectory(directory);
        using (var scope = NewDisposeScope())
        {
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (name, p) in model.Module.named_parameters())
            {
                if (omitted(name)) continue;
                tensors[name] = p.detach().to(ScalarType.Float32).cpu().contiguous();
            }
            SafeTensors.Save(Path.Combine(directory, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        var configPath = Path.Combine(directory, "config.json");
        File.WriteAllText(configPath + ".tmp", config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(configPath + ".tmp", configPath, overwrite: true);
        tokenizer?.Save(directory);
    }
}
