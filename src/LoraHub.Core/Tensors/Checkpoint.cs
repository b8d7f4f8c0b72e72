using TorchSharp;

namespace LoraHub.Core.Tensors;

/// <summary>One tensor of a checkpoint as its file describes it (stored dtype and shape); its data is read only on request.</summary>
public sealed record StoredTensor(string Name, torch.ScalarType Type, long[] Shape, string File);

/// <summary>An open tensor file that reads one tensor at a time (safetensors or a torch.save archive).</summary>
internal interface ITensorFile : IDisposable
{
    string FilePath { get; }

    /// <summary>Every tensor, in the order that reads the file front to back.</summary>
    IReadOnlyList<StoredTensor> Tensors { get; }

    /// <summary>Reads a tensor into an existing tensor of the same shape (any dtype, any device).</summary>
    void ReadInto(string name, torch.Tensor destination);

    /// <summary>Every tensor, floating ones cast to castTo (null keeps the stored dtype); the caller owns them.</summary>
    Dictionary<string, torch.Tensor> ReadAll(torch.ScalarType? castTo);
}

/// <summary>
/// A checkpoint opened for reading one tensor at a time: a single tensor file, or the files of a sharded model folder.
/// Opening reads and validates only the headers (safetensors) or the pickles (torch.save), so names, stored dtypes
/// and shapes are known before any data is read, and a model can be filled parameter by parameter with at most one
/// tensor's temporary copy alive (none when the stored dtype is the parameter's and both are on the CPU).
/// Open with <see cref="StateDict.OpenFile"/> or <see cref="StateDict.OpenModelFolder"/>.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private readonly List<ITensorFile> files;
    private readonly Dictionary<string, (StoredTensor Tensor, ITensorFile File)> byName = new(StringComparer.Ordinal);

    /// <summary>Takes ownership of the files. A name stored in two files is an error reported against duplicateSource.</summary>
    internal Checkpoint(List<ITensorFile> files, string duplicateSource, string folder)
    {
        this.files = files;
        var all = new List<StoredTensor>();
        foreach (var file in files)
        {
            foreach (var t in file.Tensors)
            {
                if (!byName.TryAdd(t.Name, (t, file)))
                    throw new TensorFileException(duplicateSource, $"tensor '{t.Name}' appears in more than one shard (again in '{Path.GetRelativePath(folder, file.FilePath)}')");
                all.Add(t);
            }
        }
        Tensors = all;
    }

    /// <summary>Every tensor, in reading order: file by file, each front to back.</summary>
    public IReadOnlyList<StoredTensor> Tensors { get; }

    public bool Contains(string name) => byName.ContainsKey(name);

    public StoredTensor? Find(string name) => byName.TryGetValue(name, out var t) ? t.Tensor : null;

    /// <summary>
    /// Copies the stored tensor into destination (same shape; any dtype, converted as Tensor.copy_ does; any device).
    /// A contiguous CPU destination of the stored dtype is filled straight from the file, with no temporary tensor.
    /// </summary>
    public void ReadInto(string name, torch.Tensor destination)
    {
        if (!byName.TryGetValue(name, out var entry)) throw new KeyNotFoundException($"the checkpoint has no tensor '{name}'");
        if (!entry.Tensor.Shape.SequenceEqual(destination.shape))
            throw new ArgumentException($"tensor '{name}' is {TensorIO.FormatShape(entry.Tensor.Shape)} but the destination is {TensorIO.FormatShape(destination.shape)}", nameof(destination));
        entry.File.ReadInto(name, destination);
    }

    /// <summary>Reads every tensor onto the CPU, floating ones cast to castTo (null keeps the stored dtype); the caller owns them.</summary>
    public Dictionary<string, torch.Tensor> ReadAll(torch.ScalarType? castTo)
    {
        var result = new Dictionary<string, torch.Tensor>(byName.Count, StringComparer.Ordinal);
        try
        {
            foreach (var file in files)
                foreach (var (name, tensor) in file.ReadAll(castTo)) result[name] = tensor;
            return result;
        }
        catch
        {
            foreach (var tensor in result.Values) tensor.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var file in files) file.Dispose();
        files.Clear();
    }

    /// <summary>
    /// Reads into destination: straight from the stream when it is a contiguous CPU tensor of the stored dtype,
    /// otherwise through one temporary CPU tensor of the stored dtype that copy_ converts and moves.
    /// </summary>
    internal static void ReadInto(Stream stream, torch.ScalarType stored, long numel, torch.Tensor destination)
    {
        using var noGrad = torch.no_grad();
        if (destination.device_type == DeviceType.CPU && destination.dtype == stored && destination.is_contiguous())
        {
            TensorIO.ReadInto(stream, destination);
            return;
        }
        using var flat = TensorIO.ReadFlat(stream, stored, numel);
        using var shaped = flat.view(destination.shape);
        destination.copy_(shaped);
    }
}
