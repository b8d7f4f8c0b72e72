using static TorchSharp.torch;

namespace LoraHub.Core.Tensors;

/// <summary>
/// The load-time check that weights are finite: one isfinite().all() per floating tensor (a pass over its memory, no
/// copy kept), so a module or model holding NaN or Inf is refused by name instead of scoring "loss NaN".
/// </summary>
public static class NonFinite
{
    /// <summary>Null when every value is finite (or the tensor is not floating point), else "N NaN and M Inf values".</summary>
    public static string? Describe(Tensor tensor)
    {
        if (!tensor.is_floating_point() || tensor.numel() == 0) return null;
        using var scope = NewDisposeScope();
        if (isfinite(tensor).all().item<bool>()) return null;
        var nan = isnan(tensor).sum().item<long>();
        var inf = isinf(tensor).sum().item<long>();
        return $"{nan} NaN and {inf} infinite value(s)";
    }
}
