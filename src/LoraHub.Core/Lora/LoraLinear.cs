using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraHub.Core.Lora;

/// <summary>
/// PEFT's LoRA layer: wraps a base Linear and adds x A^T B^T (B pre-scaled by lora_alpha / r).
/// The adapter is plain data, not a registered parameter, so switching to another composition is a
/// pointer swap: the base weights are never copied or reloaded.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Linear base_layer;
    private readonly long inFeatures;
    private readonly long outFeatures;
    private Tensor? loraA;
    private Tensor? loraB;
    // Transposed views of A and B made once per adapter, not on every forward: the side path is a few small
    // products per layer, so per-call native overhead is a visible part of its cost.
    private Tensor? loraAT;
    private Tensor? loraBT;

    public LoraLinear(Linear baseLayer) : base(nameof(LoraLinear))
    {
        base_layer = baseLayer;
        var shape = baseLayer.weight!.shape;
        (outFeatures, inFeatures) = (shape[0], shape[1]);
        RegisterComponents();
    }

    public long InFeatures => inFeatures;
    public long OutFeatures => outFeatures;
    public Linear BaseLayer => base_layer;

    /// <summary>
    /// A [r, in] and B [out, r] with the scale already folded into B, applied to every row; or, to evaluate
    /// C candidates in one forward pass, A [C, r, in] and B [C, out, r]: the batch is then C equal groups of
    /// rows, candidate-major, and group c uses adapter c. The layer does not own the tensors.
    /// </summary>
    public void SetAdapter(Tensor a, Tensor b)
    {
        var grouped = a.dim() == 3;
        var fits = a.dim() == b.dim() && a.dim() is 2 or 3
            && a.shape[^1] == InFeatures && b.shape[^2] == OutFeatures && a.shape[^2] == b.shape[^1]
            && (!grouped || a.shape[0] == b.shape[0]);
        if (!fits)
            throw new ArgumentException($"adapter shapes A [{string.Join(", ", a.shape)}], B [{string.Join(", ", b.shape)}] do not fit a {InFeatures}->{OutFeatures} layer");
        ReleaseViews();
        (loraA, loraB) = (a, b);
        // Detached: SetAdapter is often called inside a caller's dispose scope, and the views live as long as the adapter.
        if (!grouped) (loraAT, loraBT) = (a.t().DetachFromDisposeScope(), b.t().DetachFromDisposeScope());
    }

    public void ClearAdapter()
    {
        ReleaseViews();
        (loraA, loraB) = (null, null);
    }

    private void ReleaseViews()
    {
        loraAT?.Dispose();
        loraBT?.Dispose();
        (loraAT, loraBT) = (null, null);
    }

    public bool HasAdapter => loraA is not null;

    /// <summary>
    /// When a forward pass has so many rows that the rank-r side path x A^T B^T costs more multiply-adds than
    /// forming W + B A once (rows·(in + out) &gt; FoldFactor · in·out), the layer computes with the folded weight
    /// instead: one product of the base's size, no side path. Applies to the single-adapter case of an F32/F64
    /// layer outside autograd (a BF16 weight would round the small delta away). Off (+∞) by default: in bench
    /// lora-overhead folding changed a random T5's losses by up to 9e-5 (more than the 1e-5 the objective is held to)
    /// and saved no measurable CPU time (1.044 folded everywhere vs 1.025 side path, ÷ base); 1.0 folds where it
    /// saves multiply-adds.
    /// </summary>
    public static double FoldFactor { get; set; } = double.PositiveInfinity;

    public override Tensor forward(Tensor x)
    {
        if (loraA is null) return base_layer.forward(x);
        if (loraAT is not null)
        {
            if (!double.IsPositiveInfinity(FoldFactor)
                && x.numel() / inFeatures * (double)(inFeatures + outFeatures) > FoldFactor * inFeatures * outFeatures
                && base_layer.weight!.dtype is ScalarType.Float32 or ScalarType.Float64 && !is_grad_enabled())
            {
                using var folded = addmm(base_layer.weight!, loraB!, loraA, 1, 1);
                return nn.functional.linear(x, folded, base_layer.bias);
            }
            // As 2-D products on the flattened rows, accumulated into the base output in place: measured faster on
            // CPU than batched 3-D matmul with transposed weights. Temporaries are disposed here, not by a scope.
            var y = base_layer.forward(x);
            using var rows = x.reshape(-1, inFeatures);
            using var down = mm(rows, loraAT);
            using var flat = y.view(-1, outFeatures);
            flat.addmm_(down, loraBT!, 1, 1);
            return y;
        }
        else
        {
            using var scope = NewDisposeScope();
            var y = base_layer.forward(x);
            // [C*G, L, in] -> [C, G*L, in]: one batched product per candidate group.
            var groups = loraA.shape[0];
            var grouped = x.reshape(groups, -1, InFeatures);
            var up = bmm(bmm(grouped, loraA.transpose(1, 2)), loraB!.transpose(1, 2)).reshape(y.shape);
            return y.add_(up).MoveToOuterDisposeScope();
        }
    }
}

/// <summary>Puts LoRA layers around named Linear layers of a model, the way PEFT does with setattr.</summary>
public static class LoraInjector
{
    /// <summary>
    /// Returns the LoRA layer at path (e.g. "encoder.block.0.layer.0.SelfAttention.q"), wrapping the Linear there
    /// first if needed. Throws KeyNotFoundException when the model has no Linear at that path.
    /// The base Linear stays registered under its own name, so the model's parameter names (and a saved
    /// state dict) remain the checkpoint's keys; the wrapper only takes its place in forward.
    /// </summary>
    public static LoraLinear Wrap(nn.Module root, string path)
    {
        var dot = path.LastIndexOf('.');
        var parentPath = dot < 0 ? "" : path[..dot];
        var fieldName = path[(dot + 1)..];
        var parent = parentPath.Length == 0 ? root : root.named_modules().FirstOrDefault(m => m.name == parentPath).module;
        if (parent is null) throw new KeyNotFoundException($"the model has no layer '{path}'");
        var field = FindField(parent.GetType(), fieldName)
            ?? throw new KeyNotFoundException($"the model has no layer '{path}'");
        switch (field.GetValue(parent))
        {
            case LoraLinear existing:
                return existing;
            case Linear linear when field.FieldType.IsAssignableFrom(typeof(LoraLinear)):
                var lora = new LoraLinear(linear);
                field.SetValue(parent, lora);
                return lora;
            case Linear:
                throw new KeyNotFoundException($"the model's layer '{path}' is declared as {field.FieldType.Name} and cannot hold a LoRA layer");
            case var other:
                throw new KeyNotFoundException($"the model's layer '{path}' is a {other?.GetType().Name ?? "null"}, not a Linear");
        }
    }

    private static FieldInfo? FindField(Type type, string name)
    {
        for (var t = type; t is not null; t = t.BaseType)
        {
            var f = t.GetField(name, BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly);
            if (f is not null && typeof(nn.Module).IsAssignableFrom(f.FieldType)) return f;
        }
        return null;
    }
}
