using System.Buffers.Binary;
using System.Text.Json;
using TorchSharp;

namespace LoraHub.Core.Tensors;

/// <summary>
/// Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}</c>, then the data
/// section, with offsets relative to its start. Every header field is validated before any tensor is
/// allocated, so a hostile or corrupt file fails with a <see cref="TensorFileException"/> naming the file
/// and the tensor instead of an out-of-range read or a huge allocation.
/// </summary>
public static class SafeTensors
{
    /// <summary>Same cap as the reference implementation: a larger header is corrupt or hostile.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    /// <summary>
    /// Loads every tensor of a safetensors file onto the CPU. Floating tensors are cast to
    /// <paramref name="castTo"/> (pass null to keep the stored dtype); integer and bool tensors keep theirs.
    /// The returned tensors belong to no dispose scope: the caller owns them and disposes them.
    /// </summary>
    public static Dictionary<string, torch.Tensor> Load(string path, torch.ScalarType? castTo = torch.ScalarType.Float32)
    {
        using var file = Open(path);
        return file.ReadAll(castTo);
    }

    /// <summary>Opens a file and validates its header; tensors are read later, one at a time.</summary>
    internal static Reader Open(string path)
    {
        // Stryker disable once Statement : every supported host is little-endian; the check is for the others
        TensorIO.EnsureLittleEndianHost();
        var fullPath = Path.GetFullPath(path);
        var stream = OpenRead(fullPath);
        try
        {
            return new Reader(fullPath, stream, ParseHeader(fullPath, stream));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>An open safetensors file whose header has been validated.</summary>
    internal sealed class Reader(string fullPath, FileStream stream, Header header) : ITensorFile
    {
        private readonly Dictionary<string, Entry> entries = header.Entries.ToDictionary(e => e.Name, StringComparer.Ordinal);

        public string FilePath => fullPath;

        // File order, so reading them one after another moves the stream forward only.
        public IReadOnlyList<StoredTensor> Tensors { get; } = header.Entries.OrderBy(e => e.Begin)
            .Select(e => new StoredTensor(e.Name, e.Type, e.Shape, fullPath)).ToList();

        public void ReadInto(string name, torch.Tensor destination)
        {
            var entry = entries[name];
            Read(entry, () => Checkpoint.ReadInto(stream, entry.Type, TensorIO.CheckedNumel(entry.Shape)!.Value, destination));
        }

        public Dictionary<string, torch.Tensor> ReadAll(torch.ScalarType? castTo)
        {
            // Everything allocated here is disposed with the scope unless detached on success,
            // so a failure halfway through leaks nothing.
            using var scope = torch.NewDisposeScope();
            var result = new Dictionary<string, torch.Tensor>(entries.Count, StringComparer.Ordinal);
            foreach (var t in Tensors)
            {
                var entry = entries[t.Name];
                torch.Tensor flat = null!;
                Read(entry, () => flat = TensorIO.ReadFlat(stream, entry.Type, TensorIO.CheckedNumel(entry.Shape)!.Value));
                result[entry.Name] = TensorIO.CastIfFloating(flat.reshape(entry.Shape), castTo);
            }

            // Keep the header's order in the returned dictionary (it is what users see when listing keys).
            var ordered = new Dictionary<string, torch.Tensor>(result.Count, StringComparer.Ordinal);
            foreach (var entry in header.Entries) ordered[entry.Name] = result[entry.Name];
            scope.Detach(ordered.Values);
            return ordered;
        }

        private void Read(Entry entry, Action read)
        {
            stream.Seek(header.DataStart + entry.Begin, SeekOrigin.Begin);
            try
            {
                read();
            }
            catch (EndOfStreamException e)
            {
                // Only possible if the file shrank after validation.
                throw new TensorFileException(fullPath, $"tensor '{entry.Name}': file ended while reading its data", e);
            }
        }

        public void Dispose() => stream.Dispose();
    }

    /// <summary>Reads the <c>__metadata__</c> map (empty when absent). Validates the whole header.</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        var fullPath = Path.GetFullPath(path);
        using var stream = OpenRead(fullPath);
        return ParseHeader(fullPath, stream).Metadata;
    }

    /// <summary>
    /// Reads the tensor names with their stored dtype name (e.g. "BF16") and shape, without reading any
    /// tensor data. Validates the whole header, so a file that passes here only fails to load on I/O errors.
    /// </summary>
    public static IReadOnlyDictionary<string, (string Dtype, long[] Shape)> ReadHeader(string path)
    {
        var fullPath = Path.GetFullPath(path);
        using var stream = OpenRead(fullPath);
        var header = ParseHeader(fullPath, stream);
        var result = new Dictionary<string, (string, long[])>(header.Entries.Count, StringComparer.Ordinal);
        foreach (var e in header.Entries) result[e.Name] = (e.Dtype, e.Shape);
        return result;
    }

    /// <summary>
    /// Writes tensors (any device, any layout; stored with their own dtype) and optional string metadata.
    /// Like the reference implementation, data is ordered by element size (largest first) then by name,
    /// which keeps every tensor aligned to its element size, and the header is padded with spaces to a
    /// multiple of 8 bytes. The file is written next to the target and renamed over it, so readers never
    /// see a half-written file.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, torch.Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var fullPath = Path.GetFullPath(path);

        var plan = new List<(string Name, torch.Tensor Tensor, string Dtype, long Begin, long End)>(tensors.Count);
        long offset = 0;
        var ordered = tensors
            .Select(kv => (kv.Key, kv.Value, Info: DescribeForSave(kv.Key, kv.Value)))
            .OrderByDescending(t => t.Info.Size)
            .ThenBy(t => t.Key, StringComparer.Ordinal);
        foreach (var (name, tensor, info) in ordered)
        {
            long bytes = checked(tensor.numel() * info.Size);
            plan.Add((name, tensor, info.Dtype, offset, offset + bytes));
            offset += bytes;
        }

        var headerBytes = BuildHeader(plan.Select(p => (p.Name, p.Dtype, p.Tensor.shape, p.Begin, p.End)), metadata);

        var directory = Path.GetDirectoryName(fullPath)!;
        Directory.CreateDirectory(directory);
        var tempPath = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            // Stryker disable once Bitwise : a buffer size (0 = unbuffered): the same bytes, speed only
            using (var stream = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)headerBytes.Length);
                stream.Write(prefix);
                stream.Write(headerBytes);
                foreach (var p in plan) TensorIO.WriteRaw(stream, p.Tensor);
                // Stryker disable once Statement,Boolean : durability across a power cut, not observable in a test
                stream.Flush(flushToDisk: true);
            }
            File.Move(tempPath, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }
    }

    private static (string Dtype, int Size) DescribeForSave(string name, torch.Tensor tensor)
    {
        if (string.IsNullOrEmpty(name) || name == MetadataKey)
            throw new ArgumentException($"'{name}' cannot be used as a tensor name in a safetensors file", "tensors");
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (!TensorIO.TryGetSafetensorsDtype(tensor.dtype, out var dtype, out var size))
            throw new ArgumentException($"tensor '{name}' has dtype {tensor.dtype}, which safetensors cannot store here (supported: {TensorIO.SupportedSafetensorsDtypes})", "tensors");
        return (dtype, size);
    }

    private static byte[] BuildHeader(IEnumerable<(string Name, string Dtype, long[] Shape, long Begin, long End)> entries,
        IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    json.WriteString(key, value);
                json.WriteEndObject();
            }
            foreach (var (name, dtype, shape, begin, end) in entries)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (var d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(begin);
                json.WriteNumberValue(end);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
        int padding = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static FileStream OpenRead(string fullPath)
    {
        try
        {
            // Stryker disable once Bitwise : a buffer size (0 = unbuffered): the same bytes, speed only
            return new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (FileNotFoundException e)
        {
            throw new TensorFileException(fullPath, "file not found", e);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new TensorFileException(fullPath, "file not found", e);
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    internal sealed record Entry(string Name, string Dtype, torch.ScalarType Type, long[] Shape, long Begin, long End);

    internal sealed record Header(long DataStart, IReadOnlyList<Entry> Entries, IReadOnlyDictionary<string, string> Metadata);

    /// <summary>Reads and fully validates the header. Never allocates more than the (capped) header size.</summary>
    internal static Header ParseHeader(string path, FileStream stream)
    {
        long fileLength = stream.Length;
        if (fileLength < 8)
            throw new TensorFileException(path, $"file is {fileLength} bytes, too short for the 8-byte header length (truncated, or not a safetensors file)");

        Span<byte> prefix = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderBytes)
            throw new TensorFileException(path, $"header length {headerLength} is larger than the {MaxHeaderBytes}-byte limit (corrupt, or not a safetensors file)");
        if (8 + (long)headerLength > fileLength)
            throw new TensorFileException(path, $"header length {headerLength} runs past the end of the file ({fileLength} bytes)");

        var headerBytes = new byte[(int)headerLength];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw new TensorFileException(path, $"header is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            try
            {
                return ReadHeader(path, document.RootElement, dataStart, dataLength);
            }
            catch (InvalidOperationException e)
            {
                // JsonDocument checks UTF-8 only when a string is read: a header with a bad byte in a name fails here.
                throw new TensorFileException(path, $"header is not valid UTF-8 JSON ({e.Message})", e);
            }
        }
    }

    private static Header ReadHeader(string path, JsonElement root, long dataStart, long dataLength)
    {
        {
            if (root.ValueKind != JsonValueKind.Object)
                throw new TensorFileException(path, $"header is a JSON {root.ValueKind}, not an object");

            var entries = new List<Entry>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            IReadOnlyDictionary<string, string>? metadata = null;
            foreach (var property in root.EnumerateObject())
            {
                // JsonDocument keeps duplicate keys, so they can be caught here.
                if (!names.Add(property.Name))
                    throw new TensorFileException(path, property.Name == MetadataKey
                        ? $"'{MetadataKey}' appears twice in the header"
                        : $"tensor '{property.Name}' appears twice in the header");
                if (property.Name == MetadataKey)
                    metadata = ParseMetadata(path, property.Value);
                else
                    entries.Add(ParseEntry(path, property.Name, property.Value, dataLength));
            }

            CheckNoOverlap(path, entries);
            return new Header(dataStart, entries, metadata ?? new Dictionary<string, string>());
        }
    }

    private static Dictionary<string, string> ParseMetadata(string path, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new TensorFileException(path, $"'{MetadataKey}' is a JSON {value.ValueKind}, not an object of strings");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new TensorFileException(path, $"'{MetadataKey}' value for '{item.Name}' is a JSON {item.Value.ValueKind}, not a string");
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                throw new TensorFileException(path, $"'{MetadataKey}' key '{item.Name}' appears twice");
        }
        return metadata;
    }

    private static Entry ParseEntry(string path, string name, JsonElement value, long dataLength)
    {
        TensorFileException Bad(string problem) => new(path, $"tensor '{name}': {problem}");

        if (value.ValueKind != JsonValueKind.Object)
            throw Bad($"header entry is a JSON {value.ValueKind}, not an object");

        if (!value.TryGetProperty("dtype", out var dtypeElement))
            throw Bad("header entry is missing 'dtype'");
        if (dtypeElement.ValueKind != JsonValueKind.String)
            throw Bad($"'dtype' is a JSON {dtypeElement.ValueKind}, not a string");
        var dtype = dtypeElement.GetString()!;
        if (!TensorIO.TryParseSafetensorsDtype(dtype, out var type, out var elementSize))
            throw Bad($"unknown dtype '{dtype}' (supported: {TensorIO.SupportedSafetensorsDtypes})");

        if (!value.TryGetProperty("shape", out var shapeElement))
            throw Bad("header entry is missing 'shape'");
        if (shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad($"'shape' is a JSON {shapeElement.ValueKind}, not an array");
        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var d))
                throw Bad($"shape {shapeElement.GetRawText()} holds {dim.GetRawText()}, which is not an integer");
            if (d < 0)
                throw Bad($"negative dimension {d} in shape {shapeElement.GetRawText()}");
            shape[i++] = d;
        }

        if (!value.TryGetProperty("data_offsets", out var offsetsElement))
            throw Bad("header entry is missing 'data_offsets'");
        if (offsetsElement.ValueKind != JsonValueKind.Array || offsetsElement.GetArrayLength() != 2)
            throw Bad($"'data_offsets' must be an array [begin, end], got {offsetsElement.GetRawText()}");
        var begin = ReadOffset(offsetsElement[0]);
        var end = ReadOffset(offsetsElement[1]);
        long? ReadOffset(JsonElement e) =>
            e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var v) && v >= 0 ? v : null;
        if (begin is null || end is null)
            throw Bad($"'data_offsets' {offsetsElement.GetRawText()} must hold two non-negative integers");
        if (begin > end)
            throw Bad($"data_offsets [{begin}, {end}] begin after they end");
        if (end > dataLength)
            throw Bad($"data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes)");

        var numel = TensorIO.CheckedNumel(shape);
        long? expected = numel is { } n ? CheckedMultiply(n, elementSize) : null;
        if (expected != end - begin)
            throw Bad($"shape {TensorIO.FormatShape(shape)} of {dtype} needs {(expected is { } x ? x.ToString() : "more than 2^63")} bytes but data_offsets [{begin}, {end}] hold {end - begin}");

        return new Entry(name, dtype, type, shape, begin.Value, end.Value);
    }

    private static long? CheckedMultiply(long a, long b)
    {
        try { return checked(a * b); } catch (OverflowException) { return null; }
    }

    private static void CheckNoOverlap(string path, List<Entry> entries)
    {
        // Empty tensors occupy no bytes, so they cannot overlap anything.
        Entry? previous = null;
        foreach (var e in entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (previous is not null && e.Begin < previous.End)
                throw new TensorFileException(path,
                    $"tensors '{previous.Name}' [{previous.Begin}, {previous.End}] and '{e.Name}' [{e.Begin}, {e.End}] have overlapping data_offsets");
            previous = e;
        }
    }

    /// <summary>Cheap content sniff: an 8-byte length followed by '{'.</summary>
    internal static bool LooksLikeSafetensors(ReadOnlySpan<byte> head, long fileLength) =>
        head.Length >= 9
        && BinaryPrimitives.ReadUInt64LittleEndian(head) is var n && n <= MaxHeaderBytes && 8 + (long)n <= fileLength
        && head[8] == (byte)'{';
}
