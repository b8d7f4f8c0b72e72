using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>Keys and values of one attention block kept between greedy steps (empty until the first step).</summary>
public sealed class KeyValueCache : IDisposable
{
    public Tensor? Key { get; private set; }
    public Tensor? Value { get; private set; }

    /// <summary>Appends the new steps' keys and values and returns the full ones.</summary>
    public (Tensor Key, Tensor Value) Append(Tensor k, Tensor v)
    {
        var (oldK, oldV) = (Key, Value);
        Key = (oldK is null ? k.alias() : cat([oldK, k], 2)).DetachFromDisposeScope();
        Value = (oldV is null ? v.alias() : cat([oldV, v], 2)).DetachFromDisposeScope();
        oldK?.Dispose();
        oldV?.Dispose();
        return (Key, Value);
    }

    public void Dispose()
    {
        Key?.Dispose();
        Value?.Dispose();
    }
}
