using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraHub.Core.Training;

/// <summary>How to train one LoRA module.</summary>
public sealed record LoraTrainingOptions
{
    public int Rank { get; init; } = 16;
    public double Alpha { get; init; } = 32;

    /// <summary>
    /// Last name part of the Linear layers to wrap ("q", "v" = q and v of every T5 attention block); null = the model
    /// family's default (q, v for T5; q_proj, v_proj for Llama-family models).
    /// </summary>
    public IReadOnlyList<string>? Targets { get; init; }

    public int Steps { get; init; } = 200;
    public int BatchSize { get; init; } = 32;

    /// <summary>Peak learning rate (of B, and of A unless <see cref="ALearningRate"/> is set).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Separate peak learning rate for A (ignored with <see cref="FreezeA"/>).</summary>
    public double? ALearningRate { get; init; }

    /// <summary>Linear warm-up steps; null = 5% of the steps. The rate then decays linearly to zero.</summary>
    public int? WarmupSteps { get; init; }

    /// <summary>Decoupled weight decay (AdamW) of the LoRA weights; 0 = plain Adam.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Gradient clipping: maximum global L2 norm of the LoRA gradients.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Seed of the batch order.</summary>
    public int Seed { get; init; }

    /// <summary>
    /// The hub-wide seed that initialises A (kaiming-uniform like PEFT, per layer path): every module trained with
    /// the same InitSeed and the same geometry starts from identical A matrices. B starts at zero like PEFT.
    /// </summary>
    public int InitSeed { get; init; }

    /// <summary>Train B only and keep A at its seeded start (so a hub's modules share A exactly).</summary>
    public bool FreezeA { get; init; }

    /// <summary>The final loss is measured on at most this many training examples (the first ones).</summary>
    public int FinalLossExamples { get; init; } = 256;

    public double Scale => Alpha / Rank;

    /// <summary>Throws ArgumentException naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Rank < 1) throw new ArgumentException("rank must be at least 1");
        if (!(Alpha > 0) || !double.IsFinite(Alpha)) throw new ArgumentException("alpha must be a positive number");
        if (Targets is not null && (Targets.Count == 0 || Targets.Any(string.IsNullOrWhiteSpace))) throw new ArgumentException("targets must name at least one layer (e.g. q, v)");
        if (Steps < 1) throw new ArgumentException("steps must be at least 1");
        if (BatchSize < 1) throw new ArgumentException("batch size must be at least 1");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException("learning rate must be a positive number");
        if (ALearningRate is { } a && (!(a > 0) || !double.IsFinite(a))) throw new ArgumentException("the learning rate of A must be a positive number");
        if (WarmupSteps is < 0) throw new ArgumentException("warm-up steps cannot be negative");
        if (!(ClipNorm > 0)) throw new ArgumentException("the gradient clipping norm must be positive");
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay)) throw new ArgumentException("weight decay cannot be negative");
    }
}

/// <summary>A trained LoRA module: the adapter (PEFT layout, unscaled B) and how it was trained.</summary>
public sealed class LoraTrainingResult(MergedAdapter adapter, LoraTrainingOptions options, double finalLoss,
    IReadOnlyList<double> losses, int exampleCount, TimeSpan elapsed) : IDisposable
{
    public const string RecordFile = "lorahub-train.json";

    public MergedAdapter Adapter { get; } = adapter;
    public LoraTrainingOptions Options { get; } = options;

    /// <summary>Mean per-example loss of the trained adapter on (at most FinalLossExamples of) the training examples.</summary>
    public double FinalLoss { get; } = finalLoss;

    /// <summary>The batch loss of every step.</summary>
    public IReadOnlyList<double> Losses { get; } = losses;

    public int ExampleCount { get; } = exampleCount;
    public TimeSpan Elapsed { get; } = elapsed;

    /// <summary>
    /// Writes the PEFT folder (adapter_config.json, adapter_model.safetensors) and lorahub-train.json with the
    /// training record (init_seed, freeze_a, steps, final loss, data file, ...).
    /// </summary>
    public void Save(string directory, string baseModelNameOrPath, string? dataFile = null)
    {
        Adapter.Save(directory, baseModelNameOrPath);
        var o = Options;
        var record = new JsonObject
        {
            ["init_seed"] = o.InitSeed,
            ["freeze_a"] = o.FreezeA,
            ["steps"] = o.Steps,
            ["final_loss"] = FinalLoss,
            ["data"] = dataFile,
            ["examples"] = ExampleCount,
            ["rank"] = o.Rank,
            ["alpha"] = o.Alpha,
            ["targets"] = new JsonArray((o.Targets ?? []).Select(t => (JsonNode)JsonValue.Create(t)).ToArray()),
            ["batch_size"] = o.BatchSize,
            ["learning_rate"] = o.LearningRate,
            ["a_learning_rate"] = o.FreezeA ? null : o.ALearningRate ?? o.LearningRate,
            ["seed"] = o.Seed,
            ["first_loss"] = Losses.Count > 0 ? Losses[0] : null,
            ["seconds"] = Math.Round(Elapsed.TotalSeconds, 3),
            ["base_model"] = baseModelNameOrPath,
        };
        var path = Path.Combine(directory, RecordFile);
        File.WriteAllText(path + ".tmp", record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    public void Dispose() => Adapter.Dispose();
}

/// <summary>
/// Trains a new LoRA module on examples with autograd on the LoRA parameters only; the base model stays frozen
/// and is left clean (no adapter attached, its requires_grad flags as they were) so it can be reused.
/// </summary>
public static class LoraTrainer
{
    private sealed record Target(string Path, LoraLinear Layer, Parameter A, Parameter B) : IDisposable
    {
        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }

    /// <summary>The paths of the model's Linear layers whose last name part is one of the targets, in name order.</summary>
    public static IReadOnlyList<string> TargetPaths(IAdaptableModel model, IReadOnlyList<string> targets)
    {
        var wanted = targets.ToHashSet(StringComparer.Ordinal);
        var linears = model.Module.named_modules().Where(m => m.module is Linear).Select(m => m.name).ToList();
        var paths = linears.Where(n => wanted.Contains(n[(n.LastIndexOf('.') + 1)..])).Order(StringComparer.Ordinal).ToList();
        if (paths.Count == 0)
        {
            var names = linears.Select(n => n[(n.LastIndexOf('.') + 1)..]).Distinct().Order(StringComparer.Ordinal);
            throw new ArgumentException($"no Linear layer of the model is named {string.Join(" or ", targets)}; its Linear layers are named {string.Join(", ", names)}");
        }
        return paths;
    }

    public static LoraTrainingResult Train(IAdaptableModel model, IReadOnlyList<TokenizedExample> examples, LoraTrainingOptions options,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        options = options with { Targets = options.Targets ?? model.DefaultLoraTargets };
        if (examples.Count == 0) throw new ArgumentException("there are no examples to train on", nameof(examples));
        var clock = Stopwatch.StartNew();
        var device = model.Module.parameters().First().device;
        var frozen = model.Module.parameters().Select(p => (p, p.requires_grad)).ToList();
        var targets = new List<Target>();
        AdamW? optimizer = null;
        try
        {
            foreach (var (p, _) in frozen) p.requires_grad = false;
            using (var init = NewDisposeScope())
            {
                foreach (var path in TargetPaths(model, options.Targets!))
                {
                    var layer = LoraInjector.Wrap(model.Module, path);
                    var a = TrainingSupport.KaimingUniformA(options.InitSeed, path, options.Rank, (int)layer.InFeatures);
                    var pa = new Parameter(tensor(a, [options.Rank, layer.InFeatures]).to(device), requires_grad: !options.FreezeA);
                    var pb = new Parameter(zeros(layer.OutFeatures, options.Rank, device: device), requires_grad: true);
                    pa.DetachFromDisposeScope();
                    pb.DetachFromDisposeScope();
                    targets.Add(new Target(path, layer, pa, pb));
                }
            }

            var groups = new List<AdamW.ParamGroup> { new(targets.Select(t => t.B), new AdamW.Options { LearningRate = options.LearningRate, weight_decay = options.WeightDecay }) };
            if (!options.FreezeA)
                groups.Add(new(targets.Select(t => t.A), new AdamW.Options { LearningRate = options.ALearningRate ?? options.LearningRate, weight_decay = options.WeightDecay }));
            optimizer = optim.AdamW(groups, options.LearningRate, weight_decay: options.WeightDecay);
            var peaks = optimizer.ParamGroups.Select(g => g.LearningRate).ToArray();
            var trainable = targets.Select(t => t.B).Concat(options.FreezeA ? [] : targets.Select(t => t.A)).ToList();
            var warmup = options.WarmupSteps ?? options.Steps / 20;
            var sampler = new BatchSampler<TokenizedExample>(examples, options.BatchSize, options.Seed);
            var losses = new List<double>(options.Steps);

            for (var step = 0; step < options.Steps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = sampler.Next();
                var factor = TrainingSupport.LearningRateFactor(step, options.Steps, warmup);
                var i = 0;
                foreach (var g in optimizer.ParamGroups) g.LearningRate = peaks[i++] * factor;
                using (var scope = NewDisposeScope())
                {
                    try
                    {
                        foreach (var t in targets) t.Layer.SetAdapter(t.A, t.B * options.Scale);
                        var loss = model.PerExampleLoss(batch).mean();
                        optimizer.zero_grad();
                        loss.backward();
                        nn.utils.clip_grad_norm_(trainable, options.ClipNorm);
                        optimizer.step();
                        losses.Add(loss.item<float>());
                    }
                    finally
                    {
                        foreach (var t in targets) t.Layer.ClearAdapter();
                    }
                }
                progress?.Report(new TrainingProgress(step + 1, options.Steps, losses[^1], options.LearningRate * factor, clock.Elapsed));
            }

            var finalLoss = FinalLoss(model, targets, examples, options);
            var layers = new Dictionary<string, (Tensor A, Tensor B)>();
            using (no_grad())
            using (var copy = NewDisposeScope())
            {
                foreach (var t in targets)
                    layers[t.Path] = (t.A.detach().cpu().clone().DetachFromDisposeScope(), t.B.detach().cpu().clone().DetachFromDisposeScope());
            }
            var adapter = new MergedAdapter(options.Rank, options.Alpha, useRslora: false, layers, model.PeftTaskType);
            return new LoraTrainingResult(adapter, options, finalLoss, losses, examples.Count, clock.Elapsed);
        }
        finally
        {
            foreach (var t in targets)
            {
                t.Layer.ClearAdapter();
                t.Dispose();
            }
            optimizer?.Dispose();
            foreach (var (p, requiresGrad) in frozen) p.requires_grad = requiresGrad;
        }
    }

    private static double FinalLoss(IAdaptableModel model, List<Target> targets, IReadOnlyList<TokenizedExample> examples, LoraTrainingOptions options)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        try
        {
            foreach (var t in targets) t.Layer.SetAdapter(t.A, t.B * options.Scale);
            var subset = examples.Take(options.FinalLossExamples).ToList();
            return subset.Chunk(Math.Max(options.BatchSize, 32)).SelectMany(c => model.ExampleLosses(c)).Average();
        }
        finally
        {
            foreach (var t in targets) t.Layer.ClearAdapter();
        }
    }
}
