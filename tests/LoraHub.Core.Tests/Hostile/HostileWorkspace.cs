using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tests.Tokenization;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// A scratch folder holding working copies of the real fixtures (tiny T5 and Llama models, their LoRA modules, an
/// examples file, a small byte-level BPE tokenizer), which a hostile case then mutates. Large files that a case does
/// not touch are symbolic links to the fixtures; <see cref="Replace"/> swaps a link for a real file before writing.
/// </summary>
public sealed class HostileWorkspace : IDisposable
{
    private readonly Fixtures.TempDir dir = new();

    public HostileWorkspace()
    {
        T5 = Model(Fixtures.TinyT5, "t5", ["model.safetensors", "spiece.model"]);
        Llama = Model(Path.Combine(Fixtures.Root, "llama", "tiny-llama"), "llama", ["model.safetensors", "tokenizer.model"]);
        T5Modules = Path.Combine(dir.Path, "t5-modules");
        LlamaModules = Path.Combine(dir.Path, "llama-modules");
        for (var i = 0; i < 2; i++)
        {
            CopyFolder(Fixtures.Adapter(i), Path.Combine(T5Modules, $"lora_{i}"));
            CopyFolder(Path.Combine(Fixtures.Root, "llama", "adapters", $"lora_{i}"), Path.Combine(LlamaModules, $"lora_{i}"));
        }
        Examples = Path.Combine(dir.Path, "examples.jsonl");
        File.WriteAllLines(Examples, Fixtures.Golden["cases"]!.AsArray().Take(3).Select(c =>
            new JsonObject { ["input"] = c!["input_text"]!.GetValue<string>(), ["output"] = c["target_text"]!.GetValue<string>() }.ToJsonString()));
        Out = Path.Combine(dir.Path, "out");
    }

    public string Root => dir.Path;
    public string T5 { get; }
    public string Llama { get; }
    public string T5Modules { get; }
    public string LlamaModules { get; }
    public string T5Module0 => Path.Combine(T5Modules, "lora_0");
    public string LlamaModule0 => Path.Combine(LlamaModules, "lora_0");
    public string Examples { get; }
    public string Out { get; }

    public string this[string relative] => Path.Combine(dir.Path, relative);

    /// <summary>`lorahub compose` of the T5 pool on the examples into --out (budget 2), plus extra options.</summary>
    public string[] ComposeT5(params string[] extra) =>
        ["compose", "--base", T5, "--modules", T5Modules, "--examples", Examples, "--out", Out, .. Budget(extra), .. extra];

    public string[] ComposeLlama(params string[] extra) =>
        ["compose", "--base", Llama, "--modules", LlamaModules, "--examples", Examples, "--out", Out, .. Budget(extra), .. extra];

    private static string[] Budget(string[] extra) => extra.Contains("--budget") ? [] : ["--budget", "2"];

    /// <summary>A model folder holding the tiny byte-level BPE tokenizer (tests/fixtures/hf-bpe/tiny, its gpt2 variant).</summary>
    public string BpeTokenizerFolder()
    {
        var folder = Path.Combine(dir.Path, "bpe");
        Directory.CreateDirectory(folder);
        var variants = JsonNode.Parse(File.ReadAllText(Path.Combine(HfBpeFiles.Root, "tiny", "tokenizer-cases.json")))!["variants"]!.AsArray();
        var gpt2 = variants.First(v => v!["variant"]!.GetValue<string>() == "gpt2")!["tokenizer"]!;
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), gpt2.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """{"bos_token": "<s>", "eos_token": "</s>"}""");
        return folder;
    }

    /// <summary>Every file under the workspace with its size and write time: compared before and after a run.</summary>
    public IReadOnlyList<string> Snapshot() => Directory.EnumerateFileSystemEntries(dir.Path, "*", SearchOption.AllDirectories)
        .Select(p => new FileInfo(p) is var i && i.Exists && i.LinkTarget is null ? $"{Path.GetRelativePath(dir.Path, p)} {i.Length} {i.LastWriteTimeUtc.Ticks}" : Path.GetRelativePath(dir.Path, p))
        .Order(StringComparer.Ordinal).ToList();

    // ----- mutations ------------------------------------------------------------------------------------------------

    /// <summary>Sets one field of a JSON file to raw JSON text (kept verbatim: "1e999" stays 1e999); null removes it.</summary>
    public void SetJson(string path, string key, string? rawJson)
    {
        var obj = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        if (rawJson is null) obj.Remove(key);
        else obj[key] = JsonNode.Parse(rawJson);
        Replace(path, Encoding.UTF8.GetBytes(obj.ToJsonString()));
    }

    /// <summary>Writes a file, replacing a symbolic link to a fixture by a real file first.</summary>
    public static void Replace(string path, byte[] bytes)
    {
        if (new FileInfo(path).LinkTarget is not null) File.Delete(path);
        File.WriteAllBytes(path, bytes);
    }

    public static void Replace(string path, string text) => Replace(path, Encoding.UTF8.GetBytes(text));

    /// <summary>Keeps the first fraction of a file.</summary>
    public static void Truncate(string path, double fraction)
    {
        var bytes = File.ReadAllBytes(path);
        Replace(path, bytes[..(int)(bytes.Length * fraction)]);
    }

    /// <summary>Rewrites a safetensors file after changing its tensors (loaded in their stored dtype).</summary>
    public static void EditTensors(string path, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> edit)
    {
        using var scope = NewDisposeScope();
        var tensors = SafeTensors.Load(path, castTo: null);
        var edited = edit(tensors);
        var bytesPath = path + ".edited";
        SafeTensors.Save(bytesPath, edited);
        var bytes = File.ReadAllBytes(bytesPath);
        File.Delete(bytesPath);
        Replace(path, bytes);
    }

    /// <summary>Sets element [0, 0] of the named tensor (the first whose name contains it) to value.</summary>
    public static void Poison(string path, string nameContains, float value) => EditTensors(path, tensors =>
    {
        var name = tensors.Keys.Order(StringComparer.Ordinal).First(k => k.Contains(nameContains, StringComparison.Ordinal));
        var copy = tensors[name].clone();
        copy.view(-1)[0] = tensor(value, copy.dtype);
        tensors[name] = copy;
        return tensors;
    });

    private string Model(string fixture, string name, string[] linked)
    {
        var folder = Path.Combine(dir.Path, name);
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(fixture))
        {
            var target = Path.Combine(folder, Path.GetFileName(file));
            if (linked.Contains(Path.GetFileName(file))) File.CreateSymbolicLink(target, file);
            else File.Copy(file, target);
        }
        return folder;
    }

    /// <summary>Copies a real file over a link so that it can be edited in place (large files: model.safetensors).</summary>
    public static void Materialize(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is null) return;
        var source = info.ResolveLinkTarget(true)!.FullName;
        File.Delete(path);
        File.Copy(source, path);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    public void Dispose() => dir.Dispose();
}

/// <summary>
/// Writes torch.save-style archives (a zip of archive/data.pkl and archive/data/&lt;key&gt;) with a pickle built opcode by
/// opcode, so the hostile suite can make the shapes a fuzzer finds: many views of one storage, deep nesting, a member
/// whose header claims 2 GiB.
/// </summary>
public static class TorchArchive
{
    /// <summary>One tensor: a view (offset, size, stride) of storage key, whose storage type and element count are given.</summary>
    public sealed record View(string Name, string Key, string StorageType, long StorageNumel, long Offset, long[] Size, long[] Stride);

    public static byte[] Pickle(IEnumerable<View> views)
    {
        var p = new PickleWriter();
        p.Op(0x80).Op(2); // PROTO 2
        p.Op((byte)'}'); // EMPTY_DICT
        foreach (var v in views)
        {
            p.Str(v.Name);
            p.Global("torch._utils", "_rebuild_tensor_v2");
            p.Op((byte)'('); // MARK: the arguments
            p.Op((byte)'(').Str("storage").Global("torch", v.StorageType).Str(v.Key).Str("cpu").Int(v.StorageNumel).Op((byte)'t').Op((byte)'Q');
            p.Int(v.Offset);
            p.Op((byte)'('); foreach (var d in v.Size) p.Int(d); p.Op((byte)'t');
            p.Op((byte)'('); foreach (var d in v.Stride) p.Int(d); p.Op((byte)'t');
            p.Op(0x89); // False
            p.Global("collections", "OrderedDict").Op((byte)')').Op((byte)'R');
            p.Op((byte)'t').Op((byte)'R'); // args tuple, REDUCE
            p.Op((byte)'s'); // SETITEM
        }
        p.Op((byte)'.');
        return p.ToArray();
    }

    /// <summary>Writes the archive: data.pkl stored, each storage deflated (or stored) from the given bytes.</summary>
    public static void Write(string path, byte[] pickle, IReadOnlyDictionary<string, byte[]> storages, CompressionLevel storageCompression = CompressionLevel.Optimal)
    {
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        void Entry(string name, byte[] bytes, CompressionLevel level)
        {
            using var s = zip.CreateEntry(name, level).Open();
            s.Write(bytes);
        }
        Entry("archive/data.pkl", pickle, CompressionLevel.NoCompression);
        Entry("archive/byteorder", "little"u8.ToArray(), CompressionLevel.NoCompression);
        foreach (var (key, bytes) in storages) Entry($"archive/data/{key}", bytes, storageCompression);
    }

    /// <summary>
    /// Rewrites the uncompressed size of a zip member in its local header and the central directory (a lying header:
    /// the data stays as it was).
    /// </summary>
    public static void ClaimSize(string path, string member, uint uncompressed)
    {
        var bytes = File.ReadAllBytes(path);
        var name = Encoding.UTF8.GetBytes(member);
        for (var i = 0; i + 46 < bytes.Length; i++)
        {
            var sig = BitConverter.ToUInt32(bytes, i);
            if (sig == 0x04034b50 && bytes.AsSpan(i + 30, name.Length).SequenceEqual(name) && BitConverter.ToUInt16(bytes, i + 26) == name.Length)
                BitConverter.TryWriteBytes(bytes.AsSpan(i + 22, 4), uncompressed);
            if (sig == 0x02014b50 && BitConverter.ToUInt16(bytes, i + 28) == name.Length && bytes.AsSpan(i + 46, name.Length).SequenceEqual(name))
                BitConverter.TryWriteBytes(bytes.AsSpan(i + 24, 4), uncompressed);
        }
        File.WriteAllBytes(path, bytes);
    }

    private sealed class PickleWriter
    {
        private readonly MemoryStream s = new();
        public PickleWriter Op(byte b) { s.WriteByte(b); return this; }
        public PickleWriter Str(string text)
        {
            var b = Encoding.UTF8.GetBytes(text);
            Op((byte)'X');
            s.Write(BitConverter.GetBytes((uint)b.Length));
            s.Write(b);
            return this;
        }
        public PickleWriter Int(long v)
        {
            // LONG1 with 8 bytes: any int64.
            Op(0x8a).Op(8);
            s.Write(BitConverter.GetBytes(v));
            return this;
        }
        public PickleWriter Global(string module, string name)
        {
            Op((byte)'c');
            s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
            return this;
        }
        public byte[] ToArray() => s.ToArray();
    }
}
