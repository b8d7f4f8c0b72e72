using System.Text.Json;
using TorchSharp;

namespace LoraHub.Core.Tensors;

/// <summary>
/// Entry points that pick the right reader: by content (zip magic vs safetensors header) and file
/// extension for single files, and by Hugging Face's file names for model folders (single file or
/// sharded with an index).
/// </summary>
public static class StateDict
{
    private static readonly string[] BinExtensions = [".bin", ".pt", ".pth"];

    /// <summary>
    /// Loads a .safetensors, .bin, .pt or .pth state dict. The content decides the reader when it is
    /// recognisable (a renamed file still loads); the extension decides which error a broken file gets.
    /// Floating tensors are cast to <paramref name="castTo"/> (null keeps the stored dtype).
    /// The caller owns (and disposes) the returned tensors.
    /// </summary>
    public static Dictionary<string, torch.Tensor> LoadFile(string path, torch.ScalarType? castTo = torch.ScalarType.Float32)
    {
        using var checkpoint = OpenFile(path);
        return checkpoint.ReadAll(castTo);
    }

    /// <summary>Opens a tensor file as <see cref="LoadFile"/> reads it, validating it without reading tensor data.</summary>
    public static Checkpoint OpenFile(string path)
    {
        var fullPath = Path.GetFullPath(path);
        return Single(OpenTensorFile(fullPath), fullPath);
    }

    private static ITensorFile OpenTensorFile(string fullPath)
    {
        if (!File.Exists(fullPath)) throw new TensorFileException(fullPath, "file not found");

        Span<byte> head = stackalloc byte[9];
        long length;
        int read;
        using (var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1))
        {
            length = stream.Length;
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        head = head[..read];

        if (read >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4)
            return PyTorchBin.Open(fullPath);
        if (SafeTensors.LooksLikeSafetensors(head, length))
            return SafeTensors.Open(fullPath);

        var extension = Path.GetExtension(fullPath).ToLowerInvariant();
        if (extension == ".safetensors") return SafeTensors.Open(fullPath); // reports what is wrong
        if (BinExtensions.Contains(extension)) return PyTorchBin.Open(fullPath);
        throw new TensorFileException(fullPath,
            "not a recognised tensor file: neither a safetensors header nor a torch.save zip archive (expected .safetensors, .bin, .pt or .pth)");
    }

    private static Checkpoint Single(ITensorFile file, string fullPath)
    {
        try
        {
            return new Checkpoint([file], fullPath, Path.GetDirectoryName(fullPath)!);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads the weights of a Hugging Face model folder, trying in order: model.safetensors,
    /// model.safetensors.index.json (sharded), pytorch_model.bin, pytorch_model.bin.index.json.
    /// For a sharded model every shard must exist inside the folder, every name in the index's weight_map
    /// must be in its shard, and no tensor may appear in two shards.
    /// </summary>
    public static Dictionary<string, torch.Tensor> LoadModelFolder(string dir, torch.ScalarType? castTo = torch.ScalarType.Float32)
    {
        using var checkpoint = OpenModelFolder(dir);
        return checkpoint.ReadAll(castTo);
    }

    /// <summary>
    /// Opens a model folder's weights as <see cref="LoadModelFolder"/> finds them and validates every file (headers,
    /// pickles, the shard index) without reading tensor data; read them one at a time from the returned checkpoint.
    /// </summary>
    public static Checkpoint OpenModelFolder(string dir)
    {
        var fullDir = Path.GetFullPath(dir);
        if (!Directory.Exists(fullDir)) throw new TensorFileException(fullDir, "model folder not found");

        string[] candidates = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];
        foreach (var candidate in candidates)
        {
            var file = Path.Combine(fullDir, candidate);
            if (!File.Exists(file)) continue;
            return candidate.EndsWith(".index.json", StringComparison.Ordinal)
                ? OpenSharded(fullDir, file)
                : Single(OpenTensorFile(file), file);
        }
        throw new TensorFileException(fullDir, $"no model weights found (looked for {string.Join(", ", candidates)})");
    }

    private static Checkpoint OpenSharded(string fullDir, string indexPath)
    {
        var weightMap = ReadWeightMap(fullDir, indexPath);

        // shard path → names the index places in it
        var shards = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (name, shardPath) in weightMap)
        {
            if (!shards.TryGetValue(shardPath, out var names)) shards[shardPath] = names = [];
            names.Add(name);
        }

        foreach (var shardPath in shards.Keys)
        {
            if (!File.Exists(shardPath))
                throw new TensorFileException(indexPath, $"shard '{Path.GetRelativePath(fullDir, shardPath)}' named in weight_map does not exist");
        }

        // Opening reads only headers and pickles, so every name is checked before any tensor data is read.
        var files = new List<ITensorFile>();
        try
        {
            foreach (var (shardPath, names) in shards)
            {
                var file = OpenTensorFile(shardPath);
                files.Add(file);
                var stored = file.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
                CheckShardHasNames(indexPath, fullDir, shardPath, names, stored.Contains);
            }
            return new Checkpoint(files, indexPath, fullDir);
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    private static void CheckShardHasNames(string indexPath, string fullDir, string shardPath, List<string> names, Func<string, bool> contains)
    {
        var missing = names.FirstOrDefault(n => !contains(n));
        if (missing is not null)
            throw new TensorFileException(indexPath, $"weight_map places '{missing}' in '{Path.GetRelativePath(fullDir, shardPath)}', but that shard does not contain it");
    }

    /// <summary>Reads {"weight_map": {tensor name: shard file}} and resolves each shard to a full path inside the folder.</summary>
    private static Dictionary<string, string> ReadWeightMap(string fullDir, string indexPath)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(indexPath), Models.ConfigFields.StrictJson);
        }
        catch (JsonException e)
        {
            throw new TensorFileException(indexPath, $"index is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map)
                || map.ValueKind != JsonValueKind.Object)
                throw new TensorFileException(indexPath, "index has no \"weight_map\" object");

            var folderPrefix = fullDir.EndsWith(Path.DirectorySeparatorChar) ? fullDir : fullDir + Path.DirectorySeparatorChar;
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var item in map.EnumerateObject())
            {
                if (item.Value.ValueKind != JsonValueKind.String || item.Value.GetString() is not { Length: > 0 } shard)
                    throw new TensorFileException(indexPath, $"weight_map entry for '{item.Name}' is not a file name");
                // A shard name comes from the file: it must stay inside the model folder.
                var shardPath = Path.GetFullPath(Path.Combine(fullDir, shard));
                if (Path.IsPathRooted(shard) || !shardPath.StartsWith(folderPrefix, StringComparison.Ordinal))
                    throw new TensorFileException(indexPath, $"weight_map entry for '{item.Name}' points outside the model folder: '{shard}'");
                if (!result.TryAdd(item.Name, shardPath))
                    throw new TensorFileException(indexPath, $"weight_map lists '{item.Name}' twice");
            }
            if (result.Count == 0) throw new TensorFileException(indexPath, "weight_map is empty");
            return result;
        }
    }
}
