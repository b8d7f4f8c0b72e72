using static TorchSharp.torch;

namespace LoraHub.Core.Tensors;

/// <summary>
/// The load-time check that weights are finite, so a module or model holding NaN or Inf is refused by name instead of
/// scoring "loss NaN". isfinite().all() over slices of 1 M values: a whole-tensor isfinite (or a sum in float64) makes
/// a temporary the size of the tensor (a 32 k × 2 k embedding: 65 MB of bools, 524 MB of doubles), and the loaders
/// call this on every tensor; glibc keeps such freed temporaries in the process, which showed as 10–25 % more memory
/// after loading a model.
/// </summary>
public static class NonFinite
{
    /// <summary>Null when every value is finite (or the tensor is not floating point), else "N NaN and M Inf values".</summary>
    public static string? Describe(Tensor tensor)
    {
        if (!tensor.is_floating_point() || tensor.numel() == 0) return null;
        using var scope = NewDisposeScope();
        if (AllFinite(tensor)) return null;
        var nan = isnan(tensor).sum().item<long>();
        var inf = isinf(tensor).sum().item<long>();
        return $"{nan} NaN and {inf} infinite value(s)";
    }

    private const long Slice = 1 << 20;

    private static bool AllFinite(Tensor tensor)
    {
        using var flat = tensor.reshape(-1);
        var n = flat.shape[0];
        for (long start = 0; start < n; start += Slice)
        {
            using var part = flat.narrow(0, start, Math.Min(Slice, n - start));
            using var finite = isfinite(part);
            using var all = finite.all();
            if (!all.item<bool>()) return false;
        }
        return true;
    }
}
