using TorchSharp;

namespace LoraHub.Core.Tensors;

/// <summary>
/// Shared plumbing for the readers: dtype tables, streaming bytes straight into native tensor
/// memory (no managed copy of the whole tensor, so tensors above 2 GB work), and the final cast.
/// </summary>
internal static class TensorIO
{
    // Copy granularity between a stream and native memory. Spans over native memory are limited
    // to int.MaxValue bytes, so large tensors are always moved in slices of this size.
    internal const long DefaultChunkBytes = 16L << 20;

    /// <summary>Safetensors dtype names we read and write, with their torch type and element size.</summary>
    private static readonly (string Name, torch.ScalarType Type, int Size)[] SafetensorsDtypes =
    [
        ("F64", torch.ScalarType.Float64, 8),
        ("F32", torch.ScalarType.Float32, 4),
        ("F16", torch.ScalarType.Float16, 2),
        ("BF16", torch.ScalarType.BFloat16, 2),
        ("I64", torch.ScalarType.Int64, 8),
        ("I32", torch.ScalarType.Int32, 4),
        ("I16", torch.ScalarType.Int16, 2),
        ("I8", torch.ScalarType.Int8, 1),
        ("U8", torch.ScalarType.Byte, 1),
        ("BOOL", torch.ScalarType.Bool, 1),
    ];

    public static string SupportedSafetensorsDtypes => string.Join(", ", SafetensorsDtypes.Select(d => d.Name));

    public static bool TryParseSafetensorsDtype(string name, out torch.ScalarType type, out int size)
    {
        foreach (var d in SafetensorsDtypes)
        {
            if (d.Name == name)
            {
                (type, size) = (d.Type, d.Size);
                return true;
            }
        }
        (type, size) = (default, 0);
        return false;
    }

    public static bool TryGetSafetensorsDtype(torch.ScalarType type, out string name, out int size)
    {
        foreach (var d in SafetensorsDtypes)
        {
            if (d.Type == type)
            {
                (name, size) = (d.Name, d.Size);
                return true;
            }
        }
        (name, size) = ("", 0);
        return false;
    }

    public static int ElementSize(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Float64 or torch.ScalarType.Int64 => 8,
        torch.ScalarType.Float32 or torch.ScalarType.Int32 => 4,
        torch.ScalarType.Float16 or torch.ScalarType.BFloat16 or torch.ScalarType.Int16 => 2,
        torch.ScalarType.Int8 or torch.ScalarType.Byte or torch.ScalarType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported dtype"),
    };

    public static bool IsFloating(torch.ScalarType type) => type is torch.ScalarType.Float64
        or torch.ScalarType.Float32 or torch.ScalarType.Float16 or torch.ScalarType.BFloat16;

    /// <summary>Product of the dimensions, or null when it overflows a long.</summary>
    public static long? CheckedNumel(IReadOnlyList<long> shape)
    {
        long n = 1;
        try
        {
            foreach (var d in shape) n = checked(n * d);
        }
        catch (OverflowException)
        {
            return null;
        }
        return n;
    }

    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>
    /// Reads exactly <paramref name="numel"/> elements of <paramref name="type"/> from the stream into a
    /// new 1-D CPU tensor. Throws <see cref="EndOfStreamException"/> if the stream ends early.
    /// File bytes are little-endian, as is every host TorchSharp runs on (checked by <see cref="EnsureLittleEndianHost"/>).
    /// </summary>
    public static torch.Tensor ReadFlat(Stream stream, torch.ScalarType type, long numel, long chunkBytes = DefaultChunkBytes)
    {
        var flat = torch.empty(numel, type);
        try
        {
            ReadInto(stream, flat, chunkBytes);
            return flat;
        }
        catch
        {
            flat.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Fills a contiguous CPU tensor's own memory with the next numel × element-size bytes of the stream (its dtype is
    /// the stored one: no conversion). This is how a parameter is loaded with no temporary copy.
    /// </summary>
    public static void ReadInto(Stream stream, torch.Tensor destination, long chunkBytes = DefaultChunkBytes)
    {
        if (destination.device_type != DeviceType.CPU || !destination.is_contiguous())
            throw new ArgumentException("bytes can only be read into a contiguous CPU tensor", nameof(destination));
        using var noGrad = torch.no_grad();
        using var flat = destination.view(-1);
        long numel = flat.numel();
        long chunkElements = Math.Max(1, chunkBytes / ElementSize(flat.dtype));
        for (long start = 0; start < numel; start += chunkElements)
        {
            long count = Math.Min(chunkElements, numel - start);
            // narrow() is a view, so its bytes span points into the destination's native memory.
            using var slice = flat.narrow(0, start, count);
            stream.ReadExactly(slice.bytes);
        }
    }

    /// <summary>Writes the raw bytes of a tensor (any device, any layout) to the stream, in slices.</summary>
    public static void WriteRaw(Stream stream, torch.Tensor tensor, long chunkBytes = DefaultChunkBytes)
    {
        // Temporaries (CPU copy, contiguous copy, flattened view) live in this scope; the caller's
        // tensor is never disposed because it was not created inside the scope.
        using var scope = torch.NewDisposeScope();
        var flat = tensor.detach().cpu().contiguous().reshape(-1);
        long numel = flat.numel();
        long chunkElements = Math.Max(1, chunkBytes / flat.element_size());
        for (long start = 0; start < numel; start += chunkElements)
        {
            long count = Math.Min(chunkElements, numel - start);
            using var slice = flat.narrow(0, start, count);
            stream.Write(slice.bytes);
        }
    }

    /// <summary>Casts floating tensors to <paramref name="castTo"/>; integer and bool tensors are left alone.</summary>
    public static torch.Tensor CastIfFloating(torch.Tensor tensor, torch.ScalarType? castTo)
    {
        if (castTo is not { } target || !IsFloating(tensor.dtype) || tensor.dtype == target) return tensor;
        return tensor.to_type(target);
    }

    public static void EnsureLittleEndianHost()
    {
        // Both formats store little-endian bytes and we copy them verbatim into tensors.
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("tensor files can only be read on little-endian hosts");
    }
}
