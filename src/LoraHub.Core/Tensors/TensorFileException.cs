namespace LoraHub.Core.Tensors;

/// <summary>
/// A tensor file (safetensors, torch.save archive, shard index) is malformed, hostile or unsupported.
/// The message always starts with the file's path and then says what is wrong with it.
/// </summary>
public sealed class TensorFileException : Exception
{
    public TensorFileException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
        Problem = problem;
    }

    /// <summary>Full path of the offending file (or folder, for model folders).</summary>
    public string FilePath { get; }

    /// <summary>The problem alone, without the path prefix.</summary>
    public string Problem { get; }
}
