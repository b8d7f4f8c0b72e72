using static TorchSharp.torch;

namespace LoraHub.Testing;

internal static class TensorSame
{
    /// <summary>Same shape, dtype and values, bit for bit.</summary>
    public static bool Same(this Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
