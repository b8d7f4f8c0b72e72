using LoraHub.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Lora;

/// <summary>
/// A base model with a weighted composition of K LoRA modules attached, the paper's way:
/// A_hat = sum_i w_i A_i and B_hat = sum_i w_i B_i, merged separately, delta_W = scale * B_hat A_hat.
/// The modules' A and B are stacked once per layer, so switching to another weight vector costs one small
/// matrix product per layer; the base model is never copied or reloaded.
/// </summary>
public sealed class ComposedModel : IDisposable
{
    private readonly List<Target> targets = [];
    private readonly double[] scales;

    private sealed record Target(string Path, LoraLinear Layer, Tensor StackA, Tensor StackB) : IDisposable
    {
        public Tensor? A { get; set; }
        public Tensor? B { get; set; }

        public void Dispose()
        {
            StackA.Dispose();
            StackB.Dispose();
            A?.Dispose();
            B?.Dispose();
        }
    }

    public ISeq2SeqModel Model { get; }
    public IReadOnlyList<LoraModule> Modules { get; }
    public int Rank { get; }
    public IReadOnlyList<double>? Weights { get; private set; }

    /// <summary>
    /// Validates every module against the model and against each other (one rank for all: the merge adds
    /// A matrices), wraps the targeted layers and stacks the modules' weights. A layer that some modules do
    /// not target counts as zero for them.
    /// </summary>
    public ComposedModel(ISeq2SeqModel model, IReadOnlyList<LoraModule> modules)
    {
        if (modules.Count == 0) throw new ArgumentException("a composition needs at least one LoRA module");
        Model = model;
        Modules = modules;
        foreach (var m in modules) m.ValidateAgainst(model.Module);
        var ranks = modules.Select(m => m.Rank).Distinct().ToList();
        if (ranks.Count > 1)
            throw new LoraFormatException("modules of different ranks cannot be merged the LoraHub way (A and B are summed): "
                + string.Join(", ", modules.Select(m => $"{m.Name} r={m.Rank}")));
        Rank = ranks[0];
        scales = modules.Select(m => m.Config.Scale).ToArray();

        var device = model.Module.parameters().First().device;
        var paths = modules.SelectMany(m => m.Layers.Keys).Distinct().Order(StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var path in paths)
        {
            using var scope = NewDisposeScope();
            var layer = LoraInjector.Wrap(model.Module, path);
            var a = new List<Tensor>();
            var b = new List<Tensor>();
            for (var i = 0; i < modules.Count; i++)
            {
                if (modules[i].Layers.TryGetValue(path, out var ab))
                {
                    a.Add(ab.A);
                    b.Add(ab.B * scales[i]); // the scale travels with B so modules of different alpha mix correctly
                }
                else
                {
                    a.Add(zeros(Rank, layer.InFeatures));
                    b.Add(zeros(layer.OutFeatures, Rank));
                }
            }
            var stackA = stack(a).to(device).DetachFromDisposeScope();
            var stackB = stack(b).to(device).DetachFromDisposeScope();
            targets.Add(new Target(path, layer, stackA, stackB));
        }
    }

    public IEnumerable<string> TargetPaths => targets.Select(t => t.Path);

    /// <summary>Attaches the composition with these weights (one per module) to the model.</summary>
    public void SetWeights(IReadOnlyList<double> weights)
    {
        if (weights.Count != Modules.Count)
            throw new ArgumentException($"{weights.Count} weights given for {Modules.Count} modules");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var w = tensor(weights.Select(x => (float)x).ToArray()).to(targets[0].StackA.device);
        foreach (var t in targets)
        {
            var (oldA, oldB) = (t.A, t.B);
            t.A = tensordot(w, t.StackA, [0], [0]).DetachFromDisposeScope();
            t.B = tensordot(w, t.StackB, [0], [0]).DetachFromDisposeScope();
            t.Layer.SetAdapter(t.A, t.B);
            oldA?.Dispose();
            oldB?.Dispose();
        }
        Weights = weights.ToArray();
    }

    /// <summary>
    /// Attaches C compositions at once (one weight vector each) for a forward pass whose batch is C equal
    /// groups of rows, candidate-major: group c is computed with candidate c's adapter.
    /// </summary>
    public void SetCandidates(IReadOnlyList<IReadOnlyList<double>> candidates)
    {
        if (candidates.Count == 0) throw new ArgumentException("no candidates");
        if (candidates.Any(c => c.Count != Modules.Count))
            throw new ArgumentException($"every candidate needs {Modules.Count} weights");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var flat = candidates.SelectMany(c => c.Select(x => (float)x)).ToArray();
        var w = tensor(flat, [candidates.Count, Modules.Count]).to(targets[0].StackA.device);
        foreach (var t in targets)
        {
            var (oldA, oldB) = (t.A, t.B);
            t.A = tensordot(w, t.StackA, [1], [0]).DetachFromDisposeScope();
            t.B = tensordot(w, t.StackB, [1], [0]).DetachFromDisposeScope();
            t.Layer.SetAdapter(t.A, t.B);
            oldA?.Dispose();
            oldB?.Dispose();
        }
        Weights = null;
    }

    /// <summary>Detaches the adapter: the model computes as the base model again.</summary>
    public void Clear()
    {
        foreach (var t in targets)
        {
            t.Layer.ClearAdapter();
            t.A?.Dispose();
            t.B?.Dispose();
            t.A = t.B = null;
        }
        Weights = null;
    }

    /// <summary>
    /// The merged adapter as PEFT stores it: per layer A_hat and B_hat (unscaled), with the lora_alpha that
    /// gives back the effective scale. When the modules' scales differ, B carries them and lora_alpha = r.
    /// </summary>
    public MergedAdapter Merge(IReadOnlyList<double> weights)
    {
        var sameScale = scales.All(s => Math.Abs(s - scales[0]) < 1e-12);
        var alpha = sameScale ? Modules[0].Config.LoraAlpha : Rank;
        var rslora = sameScale && Modules[0].Config.UseRslora;
        var divide = sameScale ? scales[0] : 1.0;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var w = tensor(weights.Select(x => (float)x).ToArray()).to(targets[0].StackA.device);
        var layers = new Dictionary<string, (Tensor A, Tensor B)>();
        foreach (var t in targets)
        {
            var a = tensordot(w, t.StackA, [0], [0]).cpu().DetachFromDisposeScope();
            var b = (tensordot(w, t.StackB, [0], [0]) / divide).cpu().DetachFromDisposeScope();
            layers[t.Path] = (a, b);
        }
        return new MergedAdapter(Rank, alpha, rslora, layers);
    }

    public void Dispose()
    {
        Clear();
        foreach (var t in targets) t.Dispose();
        targets.Clear();
    }
}
