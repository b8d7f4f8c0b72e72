using LoraHub.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Lora;

/// <summary>How the modules of a composition are merged.</summary>
public enum MergeMode
{
    /// <summary>The paper's: A_hat = Σ w_i A_i and B_hat = Σ w_i B_i merged separately (cross terms B_i A_j included).</summary>
    LoraHub,
    /// <summary>Exactly Σ w_i s_i B_i A_i, stored as one adapter of rank Σ r_i (PEFT's "cat"): [w_i A_i] stacked over [s_i B_i].</summary>
    Linear,
}

public static class MergeModes
{
    public static readonly IReadOnlyList<string> Names = ["lorahub", "linear"];

    public static MergeMode Parse(string name) => name.ToLowerInvariant() switch
    {
        "lorahub" => MergeMode.LoraHub,
        "linear" => MergeMode.Linear,
        _ => throw new ArgumentException($"unknown merge mode '{name}' (known: {string.Join(", ", Names)})"),
    };

    public static string Name(this MergeMode mode) => mode == MergeMode.Linear ? "linear" : "lorahub";
}

/// <summary>
/// A base model with a weighted composition of K LoRA modules attached. The modules' A and B (scale folded
/// into B) are laid out once, so switching to another weight vector costs two products for the whole model (lorahub
/// merge) or one small product per layer (linear); the base model is never copied or reloaded, and no d×d matrix is
/// ever formed.
/// </summary>
public sealed class ComposedModel : IDisposable
{
    private readonly List<Target> targets = [];
    private readonly double[] scales;
    private readonly long[] ranks;
    private readonly bool ownsModules;

    private readonly Device device;

    /// <summary>
    /// lorahub merge: every module's A and scaled B of every layer flattened into one row per module, [K, Σ r·in] and
    /// [K, Σ out·r] (zeros where a module does not target a layer), so a switch to new weights is two products for the
    /// whole model, not two per layer; a layer's part starts at its Target's offsets.
    /// </summary>
    private readonly Tensor? hubA;
    private readonly Tensor? hubB;

    /// <summary>
    /// A wrapped layer. Linear merge: all modules' A rows [Σ r_i, in], module i owning rows offsets[i] .. offsets[i] + r_i
    /// (zeros where a module does not target the layer), and their scaled B columns [out, Σ r_i].
    /// </summary>
    private sealed record Target(string Path, LoraLinear Layer, long AOffset, long BOffset, Tensor? AllA, Tensor? AllB) : IDisposable
    {
        public Tensor? A { get; set; }
        public Tensor? B { get; set; }

        public void Dispose()
        {
            AllA?.Dispose();
            AllB?.Dispose();
            A?.Dispose();
            B?.Dispose();
        }
    }

    public IAdaptableModel Model { get; }
    public IReadOnlyList<LoraModule> Modules { get; }
    public MergeMode Mode { get; }
    /// <summary>Rank of the merged adapter: r for the lorahub merge, Σ r_i for the linear one.</summary>
    public int Rank { get; }
    public IReadOnlyList<double>? Weights { get; private set; }

    /// <summary>
    /// Validates every module against the model (and, for the lorahub merge, that all share one rank: it adds
    /// A matrices) and wraps the targeted layers.
    /// </summary>
    /// <remarks>The caller keeps ownership of modules passed in; <see cref="Load"/> gives a composition that owns them
    /// and keeps only their laid-out copy (the modules' own tensors are released layer by layer as they are laid out,
    /// so loading K modules never holds two copies of them).</remarks>
    public ComposedModel(IAdaptableModel model, IReadOnlyList<LoraModule> modules, MergeMode mode = MergeMode.LoraHub)
        : this(model, modules, mode, ownsModules: false)
    {
    }

    /// <summary>
    /// Loads the modules from their folders and attaches them to the model; disposing the composition releases the
    /// modules too. Names default to the folder names. A module that fails to load or to fit releases the others.
    /// </summary>
    public static ComposedModel Load(IAdaptableModel model, IReadOnlyList<string> moduleDirs, MergeMode mode = MergeMode.LoraHub,
        IReadOnlyList<string>? names = null)
    {
        if (names is not null && names.Count != moduleDirs.Count)
            throw new ArgumentException($"{names.Count} names for {moduleDirs.Count} module folders", nameof(names));
        var modules = new List<LoraModule>();
        try
        {
            for (var i = 0; i < moduleDirs.Count; i++) modules.Add(LoraModule.Load(moduleDirs[i], names?[i]));
            return new ComposedModel(model, modules, mode, ownsModules: true);
        }
        catch
        {
            foreach (var m in modules) m.Dispose();
            throw;
        }
    }

    private ComposedModel(IAdaptableModel model, IReadOnlyList<LoraModule> modules, MergeMode mode, bool ownsModules)
    {
        if (modules.Count == 0) throw new ArgumentException("a composition needs at least one LoRA module");
        Model = model;
        Modules = modules;
        Mode = mode;
        this.ownsModules = ownsModules;
        foreach (var m in modules) m.ValidateAgainst(model.Module);
        if (mode == MergeMode.LoraHub && modules.Select(m => m.Rank).Distinct().Count() > 1)
            throw new LoraFormatException("modules of different ranks cannot be merged the LoraHub way (A and B are summed): "
                + string.Join(", ", modules.Select(m => $"{m.Name} r={m.Rank}")) + "; the linear merge can combine them");
        ranks = modules.Select(m => (long)m.Rank).ToArray();
        Rank = mode == MergeMode.LoraHub ? modules[0].Rank : modules.Sum(m => m.Rank);
        scales = modules.Select(m => m.Config.Scale).ToArray();

        // Stryker disable once Linq : a model always has parameters (First and FirstOrDefault agree)
        device = model.Module.parameters().First().device;
        var layers = modules.SelectMany(m => m.Layers.Keys).Distinct().Order(StringComparer.Ordinal)
            .Select(path => (Path: path, Layer: LoraInjector.Wrap(model.Module, path))).ToList();
        using var noGrad = no_grad();
        if (mode == MergeMode.LoraHub)
        {
            var r = ranks[0];
            hubA = zeros(modules.Count, layers.Sum(l => r * l.Layer.InFeatures), device: device).DetachFromDisposeScope();
            hubB = zeros(modules.Count, layers.Sum(l => l.Layer.OutFeatures * r), device: device).DetachFromDisposeScope();
        }
        long aOffset = 0, bOffset = 0;
        foreach (var (path, layer) in layers)
        {
            using var scope = NewDisposeScope();
            if (mode == MergeMode.LoraHub)
            {
                var (aSize, bSize) = (ranks[0] * layer.InFeatures, layer.OutFeatures * ranks[0]);
                for (var i = 0; i < modules.Count; i++)
                {
                    if (!modules[i].Layers.TryGetValue(path, out var ab)) continue;
                    hubA![i].narrow(0, aOffset, aSize).copy_(ab.A.flatten());
                    // The scale travels with B so modules of different alpha mix correctly.
                    hubB![i].narrow(0, bOffset, bSize).copy_((ab.B * scales[i]).flatten());
                }
                targets.Add(new Target(path, layer, aOffset, bOffset, null, null));
                (aOffset, bOffset) = (aOffset + aSize, bOffset + bSize);
            }
            else
            {
                var a = new List<Tensor>();
                var b = new List<Tensor>();
                for (var i = 0; i < modules.Count; i++)
                {
                    var found = modules[i].Layers.TryGetValue(path, out var ab);
                    a.Add(found ? ab.A : zeros(ranks[i], layer.InFeatures));
                    b.Add(found ? ab.B * scales[i] : zeros(layer.OutFeatures, ranks[i]));
                }
                targets.Add(new Target(path, layer, 0, 0, cat(a, 0).to(device).DetachFromDisposeScope(), cat(b, 1).to(device).DetachFromDisposeScope()));
            }
            if (ownsModules)
                foreach (var m in modules) m.ReleaseLayer(path);
        }
    }

    public IEnumerable<string> TargetPaths => targets.Select(t => t.Path);

    /// <summary>Attaches the composition with these weights (one per module) to the model.</summary>
    public void SetWeights(IReadOnlyList<double> weights)
    {
        CheckWeights(weights);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (t, a, b) in Merged(WeightMatrix([weights])))
            Attach(t, a.squeeze(0), b.squeeze(0));
        Weights = weights.ToArray();
    }

    /// <summary>
    /// Attaches C compositions at once (one weight vector each) for a forward pass whose batch is C equal
    /// groups of rows, candidate-major: group c is computed with candidate c's adapter.
    /// </summary>
    public void SetCandidates(IReadOnlyList<IReadOnlyList<double>> candidates)
    {
        if (candidates.Count == 0) throw new ArgumentException("no candidates");
        foreach (var c in candidates) CheckWeights(c);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (t, a, b) in Merged(WeightMatrix(candidates)))
            Attach(t, a, b);
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
    /// The merged adapter as PEFT stores it: per layer A and B with the lora_alpha that gives back the effective
    /// scale. lorahub merge: A_hat, B_hat (unscaled when all modules share one scale, else B carries the scales and
    /// lora_alpha = r). Linear merge: [w_i A_i] over [s_i B_i], rank Σ r_i, lora_alpha = Σ r_i (scale 1).
    /// </summary>
    public MergedAdapter Merge(IReadOnlyList<double> weights)
    {
        CheckWeights(weights);
        var sameScale = Mode == MergeMode.LoraHub && scales.All(s => Math.Abs(s - scales[0]) < 1e-12);
        var alpha = sameScale ? Modules[0].Config.LoraAlpha : Rank;
        var rslora = sameScale && Modules[0].Config.UseRslora;
        var divide = sameScale ? scales[0] : 1.0;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var layers = new Dictionary<string, (Tensor A, Tensor B)>();
        foreach (var (t, a, b) in Merged(WeightMatrix([weights])))
        {
            layers[t.Path] = (a.squeeze(0).cpu().contiguous().DetachFromDisposeScope(), (b.squeeze(0) / divide).cpu().contiguous().DetachFromDisposeScope());
        }
        return new MergedAdapter(Rank, alpha, rslora, layers, Model.PeftTaskType);
    }

    private void CheckWeights(IReadOnlyList<double> weights)
    {
        if (weights.Count != Modules.Count)
            throw new ArgumentException($"{weights.Count} weights given for {Modules.Count} modules");
    }

    /// <summary>Candidates' weights [C, K] on the adapters' device.</summary>
    private Tensor WeightMatrix(IReadOnlyList<IReadOnlyList<double>> candidates)
    {
        var flat = candidates.SelectMany(c => c.Select(x => (float)x)).ToArray();
        return tensor(flat, [candidates.Count, Modules.Count]).to(device);
    }

    /// <summary>Per layer A [C, r', in] and B [C, out, r'] for weights w [C, K] (tensors in the caller's dispose scope).</summary>
    private IEnumerable<(Target T, Tensor A, Tensor B)> Merged(Tensor w)
    {
        var candidates = w.shape[0];
        if (Mode == MergeMode.LoraHub)
        {
            // Σ w_i A_i and Σ w_i B_i for every layer at once; each layer's A and B are views of these.
            var (allA, allB, r) = (mm(w, hubA!), mm(w, hubB!), ranks[0]);
            foreach (var t in targets)
            {
                var (inF, outF) = (t.Layer.InFeatures, t.Layer.OutFeatures);
                yield return (t, allA.narrow(1, t.AOffset, r * inF).view(candidates, r, inF),
                    allB.narrow(1, t.BOffset, outF * r).view(candidates, outF, r));
            }
            yield break;
        }
        // Linear: each module's rows of A carry its weight; B is shared by all candidates.
        var rows = repeat_interleave(w, tensor(ranks, device: w.device), dim: 1);  // [C, Σr]
        foreach (var t in targets)
            yield return (t, rows.unsqueeze(-1) * t.AllA!.unsqueeze(0),              // [C, Σr, in]
                t.AllB!.unsqueeze(0).expand(candidates, -1, -1));                  // [C, out, Σr]
    }

    private static void Attach(Target t, Tensor a, Tensor b)
    {
        var (oldA, oldB) = (t.A, t.B);
        // Merged in F32 (the modules' type); a model computing in BF16/F16 gets the adapter in its own type.
        var dtype = t.Layer.BaseLayer.weight!.dtype;
        t.A = a.to(dtype).contiguous().DetachFromDisposeScope();
        t.B = b.to(dtype).contiguous().DetachFromDisposeScope();
        t.Layer.SetAdapter(t.A, t.B);
        oldA?.Dispose();
        oldB?.Dispose();
    }

    public void Dispose()
    {
        Clear();
        foreach (var t in targets) t.Dispose();
        targets.Clear();
        hubA?.Dispose();
        hubB?.Dispose();
        if (ownsModules)
            foreach (var m in Modules) m.Dispose();
    }
}
