using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

internal static class TensorFixtures
{
    public static string Path(params string[] parts) =>
        System.IO.Path.Combine([AppContext.BaseDirectory, "fixtures", .. parts]);

    public static string TinyT5Dir => Path("t5", "tiny-t5");
    public static string TinyT5Model => Path("t5", "tiny-t5", "model.safetensors");
    public static string Lora0Safetensors => Path("t5", "adapters", "lora_0", "adapter_model.safetensors");
    public static string Lora0Bin => Path("bin", "lora_0", "adapter_model.bin");
}

/// <summary>A fresh folder under the temp directory, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Root);

    public string Root { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lorahub-tensors-" + Guid.NewGuid().ToString("N"));

    public string Path(string name) => System.IO.Path.Combine(Root, name);

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Disposes every tensor of a loaded state dict at the end of a test.</summary>
internal sealed class Loaded(Dictionary<string, torch.Tensor> tensors) : IDisposable
{
    public Dictionary<string, torch.Tensor> Tensors { get; } = tensors;

    public torch.Tensor this[string name] => Tensors[name];

    public void Dispose()
    {
        foreach (var t in Tensors.Values) t.Dispose();
    }
}

internal static class TensorAssert
{
    /// <summary>Runs <paramref name="load"/> and checks it throws a TensorFileException naming the file and every fragment.</summary>
    public static TensorFileException Throws(string path, Func<object> load, params string[] fragments)
    {
        var ex = Assert.Throws<TensorFileException>(() =>
        {
            var result = load();
            if (result is Dictionary<string, torch.Tensor> d) new Loaded(d).Dispose();
        });
        Assert.Equal(System.IO.Path.GetFullPath(path), ex.FilePath);
        Assert.Contains(System.IO.Path.GetFileName(path), ex.Message);
        foreach (var fragment in fragments) Assert.Contains(fragment, ex.Message);
        return ex;
    }

    public static void Equal(torch.Tensor expected, torch.Tensor actual)
    {
        using var scope = torch.NewDisposeScope();
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.equal(actual).all().item<bool>(), "tensor values differ");
    }

    public static void Values(float[] expected, torch.Tensor actual)
    {
        using var f = actual.to_type(torch.ScalarType.Float32).contiguous().reshape(-1);
        Assert.Equal(expected, f.data<float>().ToArray());
    }
}

/// <summary>Builds small safetensors files byte by byte, for malformed-input tests.</summary>
internal static class RawSafetensors
{
    public static void Write(string path, string headerJson, int dataBytes, long? headerLengthOverride = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        using var stream = File.Create(path);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)(headerLengthOverride ?? header.Length));
        stream.Write(prefix);
        stream.Write(header);
        stream.Write(new byte[dataBytes]);
    }
}

/// <summary>
/// Hand-assembled pickles in torch.save's shape (protocol 2), and torch.save-style zip archives around them,
/// for tests that need a specific malformation or a fresh marker path.
/// </summary>
internal sealed class PickleBuilder
{
    private readonly List<byte> _bytes = [0x80, 0x02];

    public PickleBuilder Op(char op) { _bytes.Add((byte)op); return this; }

    public PickleBuilder Op(byte op) { _bytes.Add(op); return this; }

    public PickleBuilder Global(string module, string name)
    {
        _bytes.Add((byte)'c');
        _bytes.AddRange(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
        return this;
    }

    public PickleBuilder Str(string s)
    {
        var utf8 = Encoding.UTF8.GetBytes(s);
        _bytes.Add((byte)'X');
        _bytes.AddRange(BitConverter.GetBytes((uint)utf8.Length));
        _bytes.AddRange(utf8);
        return this;
    }

    public PickleBuilder Int(int value)
    {
        _bytes.Add((byte)'J');
        _bytes.AddRange(BitConverter.GetBytes(value));
        return this;
    }

    public PickleBuilder IntTuple(params int[] values)
    {
        Op('(');
        foreach (var v in values) Int(v);
        return Op('t');
    }

    /// <summary>OrderedDict() then MARK: follow with key/value pairs and <see cref="EndDict"/>.</summary>
    public PickleBuilder BeginDict() => Global("collections", "OrderedDict").Op(')').Op('R').Op('(');

    public PickleBuilder EndDict() => Op('u');

    /// <summary>A _rebuild_tensor_v2 call on storage ('storage', torch.&lt;type&gt;, key, 'cpu', numel).</summary>
    public PickleBuilder Tensor(string storageType, string key, int numel, int offset, int[] size, int[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Op('(');
        Op('(').Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Op('t').Op('Q');
        Int(offset).IntTuple(size).IntTuple(stride).Op(0x89); // NEWFALSE: requires_grad
        Global("collections", "OrderedDict").Op(')').Op('R'); // backward_hooks
        return Op('t').Op('R');
    }

    public byte[] Build(bool stop = true) => stop ? [.. _bytes, (byte)'.'] : [.. _bytes];

    public static void WriteArchive(string path, byte[]? pickle, params (string Key, byte[] Data)[] storages)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        if (pickle is not null) Add(zip, "archive/data.pkl", pickle);
        Add(zip, "archive/byteorder", "little"u8.ToArray());
        foreach (var (key, data) in storages) Add(zip, $"archive/data/{key}", data);
        Add(zip, "archive/version", "3\n"u8.ToArray());
    }

    private static void Add(ZipArchive zip, string name, byte[] data)
    {
        using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(data);
    }

    public static byte[] Floats(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();
}
