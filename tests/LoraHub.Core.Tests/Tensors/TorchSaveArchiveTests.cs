using System.IO.Compression;
using System.Text;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tests.Hostile;
using TorchSharp;
using Xunit;
using View = LoraHub.Core.Tests.Hostile.TorchArchive.View;

namespace LoraHub.Core.Tests.Tensors;

/// <summary>
/// torch.save archives built here, file by file: every storage type torch writes, the three rebuild functions, the
/// layouts a zip tool or an older torch may produce, and each way a stranger's archive can be wrong or oversized. A
/// refusal is one TensorFileException naming the file and the problem, raised before any tensor data is allocated.
/// </summary>
public class TorchSaveArchiveTests
{
    private static void Write(string path, IEnumerable<View> views, params (string Key, byte[] Data)[] storages) =>
        TorchArchive.Write(path, TorchArchive.Pickle(views), storages.ToDictionary(s => s.Key, s => s.Data), CompressionLevel.NoCompression);

    private static View Whole(string name, string key, string type, long numel) => new(name, key, type, numel, 0, [numel], [1]);

    private static byte[] Bytes<T>(params T[] values) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    // ----- what loads ------------------------------------------------------------------------------------------------

    [Fact]
    public void Every_storage_type_torch_writes_loads_with_its_dtype_and_values()
    {
        using var dir = new TempDir();
        var path = dir.Path("types.bin");
        Write(path,
            [
                Whole("f64", "0", "DoubleStorage", 2), Whole("f32", "1", "FloatStorage", 2), Whole("f16", "2", "HalfStorage", 2),
                Whole("bf16", "3", "BFloat16Storage", 2), Whole("i64", "4", "LongStorage", 2), Whole("i32", "5", "IntStorage", 2),
                Whole("i16", "6", "ShortStorage", 2), Whole("i8", "7", "CharStorage", 2), Whole("u8", "8", "ByteStorage", 2),
                Whole("bool", "9", "BoolStorage", 2), Whole("untyped", "10", "UntypedStorage", 3),
            ],
            ("0", Bytes(0.1, -3.0)), ("1", Bytes(0.5f, -2f)), ("2", Bytes((Half)1.5, (Half)(-0.25))),
            ("3", [0x80, 0x3F, 0x20, 0xC0]), // bfloat16 1.0 and -2.5
            ("4", Bytes(-1L, 1L << 40)), ("5", Bytes(-7, 1 << 30)), ("6", Bytes((short)-2, (short)300)),
            ("7", Bytes((sbyte)-5, (sbyte)7)), ("8", [200, 1]), ("9", [1, 0]), ("10", [9, 8, 7]));

        using var t = new Loaded(PyTorchBin.Load(path, castTo: null));
        Assert.Equal(["f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool", "untyped"], t.Tensors.Keys);
        Assert.Equal(torch.ScalarType.Float64, t["f64"].dtype);
        Assert.Equal([0.1, -3.0], t["f64"].data<double>().ToArray());
        Assert.Equal(torch.ScalarType.Float32, t["f32"].dtype);
        Assert.Equal([0.5f, -2f], t["f32"].data<float>().ToArray());
        Assert.Equal(torch.ScalarType.Float16, t["f16"].dtype);
        TensorAssert.Values([1.5f, -0.25f], t["f16"]);
        Assert.Equal(torch.ScalarType.BFloat16, t["bf16"].dtype);
        TensorAssert.Values([1f, -2.5f], t["bf16"]);
        Assert.Equal(torch.ScalarType.Int64, t["i64"].dtype);
        Assert.Equal([-1L, 1L << 40], t["i64"].data<long>().ToArray());
        Assert.Equal(torch.ScalarType.Int32, t["i32"].dtype);
        Assert.Equal([-7, 1 << 30], t["i32"].data<int>().ToArray());
        Assert.Equal(torch.ScalarType.Int16, t["i16"].dtype);
        Assert.Equal([(short)-2, (short)300], t["i16"].data<short>().ToArray());
        Assert.Equal(torch.ScalarType.Int8, t["i8"].dtype);
        Assert.Equal([(sbyte)-5, (sbyte)7], t["i8"].data<sbyte>().ToArray());
        Assert.Equal(torch.ScalarType.Byte, t["u8"].dtype);
        Assert.Equal([(byte)200, (byte)1], t["u8"].data<byte>().ToArray());
        Assert.Equal(torch.ScalarType.Bool, t["bool"].dtype);
        Assert.Equal([true, false], t["bool"].data<bool>().ToArray());
        Assert.Equal(torch.ScalarType.Byte, t["untyped"].dtype);
        Assert.Equal([(byte)9, 8, 7], t["untyped"].data<byte>().ToArray());

        // Casting touches floating tensors only.
        using var cast = new Loaded(PyTorchBin.Load(path, castTo: torch.ScalarType.Float64));
        foreach (var name in new[] { "f64", "f32", "f16", "bf16" }) Assert.Equal(torch.ScalarType.Float64, cast[name].dtype);
        Assert.Equal([0.5, -2.0], cast["f32"].data<double>().ToArray());
        Assert.Equal(torch.ScalarType.Int64, cast["i64"].dtype);
        Assert.Equal(torch.ScalarType.Bool, cast["bool"].dtype);
        Assert.Equal(torch.ScalarType.Byte, cast["untyped"].dtype);
    }

    /// <summary>(storage, offset, size, stride) arguments as torch writes them, for a float storage "0" of numel elements.</summary>
    private static PickleBuilder TensorArgs(PickleBuilder b, int numel, int offset, int[] size, int[] stride) =>
        b.Op('(').Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(numel).Op('t').Op('Q')
            .Int(offset).IntTuple(size).IntTuple(stride);

    [Fact]
    public void The_older_rebuild_function_metadata_and_parameters_all_give_the_tensor()
    {
        using var dir = new TempDir();
        var path = dir.Path("rebuilds.bin");
        var b = new PickleBuilder().BeginDict();
        // _rebuild_tensor(storage, offset, size, stride): torch before 1.0.
        b.Str("old").Global("torch._utils", "_rebuild_tensor").Op('(');
        TensorArgs(b, 4, 0, [2, 2], [2, 1]).Op('t').Op('R');
        // _rebuild_tensor_v2 with its seventh argument (metadata, a dict).
        b.Str("meta").Global("torch._utils", "_rebuild_tensor_v2").Op('(');
        TensorArgs(b, 4, 1, [3], [1]).Op(0x89).Global("collections", "OrderedDict").Op(')').Op('R').Op('}').Op('t').Op('R');
        // An nn.Parameter: _rebuild_parameter(tensor, requires_grad, backward_hooks).
        b.Str("param").Global("torch._utils", "_rebuild_parameter").Op('(');
        b.Global("torch._utils", "_rebuild_tensor_v2").Op('(');
        TensorArgs(b, 4, 3, [1], [1]).Op(0x89).Global("collections", "OrderedDict").Op(')').Op('R').Op('t').Op('R');
        b.Op(0x88).Global("collections", "OrderedDict").Op(')').Op('R').Op('t').Op('R');
        PickleBuilder.WriteArchive(path, b.EndDict().Build(), ("0", PickleBuilder.Floats(1, 2, 3, 4)));

        using var t = new Loaded(PyTorchBin.Load(path));
        Assert.Equal([2L, 2], t["old"].shape);
        TensorAssert.Values([1, 2, 3, 4], t["old"]);
        TensorAssert.Values([2, 3, 4], t["meta"]);
        TensorAssert.Values([4], t["param"]);
    }

    public static TheoryData<string, string> BadRebuildCalls() => new()
    {
        // (what follows the global's name, up to and including its REDUCE) → the problem named
        { "v2:5", "_rebuild_tensor_v2 called with 5 arguments, expected 6 or 7" },
        { "v2:8", "_rebuild_tensor_v2 called with 8 arguments, expected 6 or 7" },
        { "v1:3", "_rebuild_tensor called with 3 arguments, expected 4" },
        { "v1:5", "_rebuild_tensor called with 5 arguments, expected 4" },
        { "param:2", "_rebuild_parameter expects (tensor, requires_grad, backward_hooks)" },
        { "param:not-a-tensor", "_rebuild_parameter expects (tensor, requires_grad, backward_hooks)" },
        { "storage-is-int", "_rebuild_tensor_v2: first argument is int 1, not a storage" },
        { "offset-is-str", "_rebuild_tensor_v2: storage_offset is str '0', not an integer" },
        { "size-is-list", "_rebuild_tensor_v2: size is a list, not a tuple" },
        { "stride-is-none", "_rebuild_tensor_v2: stride is None, not a tuple" },
        { "size-holds-float", "_rebuild_tensor_v2: size holds float, not an integer" },
        { "65-dimensions", "_rebuild_tensor_v2: size has 65 dimensions, more than 64" },
        { "pid-4", "unsupported persistent id a tuple of 4; expected ('storage', type, key, location, numel)" },
        { "pid-not-storage", "unsupported persistent id a tuple of 5; expected ('storage', type, key, location, numel)" },
        { "pid-type-ordereddict", "persistent id names 'collections.OrderedDict' instead of a storage type" },
        { "pid-type-str", "persistent id names str 'FloatStorage' instead of a storage type" },
        { "pid-negative-numel", "persistent id must be ('storage', type, key: str, location: str, numel: int >= 0)" },
        { "pid-int-key", "persistent id must be ('storage', type, key: str, location: str, numel: int >= 0)" },
        { "pid-int-location", "persistent id must be ('storage', type, key: str, location: str, numel: int >= 0)" },
        { "pid-str-numel", "persistent id must be ('storage', type, key: str, location: str, numel: int >= 0)" },
    };

    [Theory]
    [MemberData(nameof(BadRebuildCalls))]
    public void Malformed_rebuild_calls_are_refused_naming_the_file_and_the_problem(string shape, string problem)
    {
        using var dir = new TempDir();
        var path = dir.Path("adapter_model.bin");
        var b = new PickleBuilder().BeginDict().Str("w");
        PickleBuilder Storage(object key, string type = "FloatStorage", string first = "storage", object? location = null, object? numel = null, bool globalType = true)
        {
            b.Op('(').Str(first);
            if (globalType) b.Global(type == "OrderedDict" ? "collections" : "torch", type); else b.Str(type);
            if (key is string k) b.Str(k); else b.Int((int)key);
            if (location is int l) b.Int(l); else b.Str("cpu");
            if (numel is string n) b.Str(n); else b.Int((int?)numel ?? 4);
            return b.Op('t').Op('Q');
        }
        PickleBuilder Tail() => b.Op(0x89).Global("collections", "OrderedDict").Op(')').Op('R').Op('t').Op('R');
        void V2() => b.Global("torch._utils", "_rebuild_tensor_v2").Op('(');
        switch (shape)
        {
            case "v2:5": V2(); Storage("0").Int(0).IntTuple(4).IntTuple(1).Op(0x89).Op('t').Op('R'); break;
            case "v2:8": V2(); Storage("0").Int(0).IntTuple(4).IntTuple(1).Op(0x89).Op('N').Op('N').Op('N').Op('t').Op('R'); break;
            case "v1:3": b.Global("torch._utils", "_rebuild_tensor").Op('('); Storage("0").Int(0).IntTuple(4).Op('t').Op('R'); break;
            case "v1:5": b.Global("torch._utils", "_rebuild_tensor").Op('('); Storage("0").Int(0).IntTuple(4).IntTuple(1).Op('N').Op('t').Op('R'); break;
            case "param:2": b.Global("torch._utils", "_rebuild_parameter").Op('('); V2(); Storage("0").Int(0).IntTuple(4).IntTuple(1); Tail(); b.Op(0x89).Op('t').Op('R'); break;
            case "param:not-a-tensor": b.Global("torch._utils", "_rebuild_parameter").Op('(').Int(1).Op(0x89).Op('N').Op('t').Op('R'); break;
            case "storage-is-int": V2(); b.Int(1).Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "offset-is-str": V2(); Storage("0").Str("0").IntTuple(4).IntTuple(1); Tail(); break;
            case "size-is-list": V2(); Storage("0").Int(0).Op(']').IntTuple(1); Tail(); break;
            case "stride-is-none": V2(); Storage("0").Int(0).IntTuple(4).Op('N'); Tail(); break;
            case "size-holds-float": V2(); Storage("0").Int(0).Op('(').Op('G').Op(0x3f).Op(0xf0).Op(0).Op(0).Op(0).Op(0).Op(0).Op(0).Op('t').IntTuple(1); Tail(); break;
            case "65-dimensions": V2(); Storage("0").Int(0).IntTuple([.. Enumerable.Repeat(1, 65)]).IntTuple([.. Enumerable.Repeat(1, 65)]); Tail(); break;
            case "pid-4": V2(); b.Op('(').Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Op('t').Op('Q').Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "pid-not-storage": V2(); Storage("0", first: "buffer").Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "pid-type-ordereddict": V2(); Storage("0", type: "OrderedDict").Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "pid-type-str": V2(); Storage("0", globalType: false).Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "pid-negative-numel": V2(); Storage("0", numel: -1).Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "pid-int-key": V2(); Storage(0).Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "pid-int-location": V2(); Storage("0", location: 0).Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            case "pid-str-numel": V2(); Storage("0", numel: "4").Int(0).IntTuple(4).IntTuple(1); Tail(); break;
            default: throw new ArgumentException(shape);
        }
        PickleBuilder.WriteArchive(path, b.EndDict().Build(), ("0", PickleBuilder.Floats(1, 2, 3, 4)));

        var e = TensorAssert.Throws(path, () => PyTorchBin.Load(path), "archive/data.pkl at byte ", problem);
        Assert.EndsWith(problem, e.Message);
    }

    [Fact]
    public void A_view_that_ends_on_the_last_element_of_its_storage_loads_and_an_empty_view_reads_nothing()
    {
        using var dir = new TempDir();
        var path = dir.Path("edges.bin");
        Write(path,
            [
                new("last", "0", "FloatStorage", 6, 1, [2, 2], [2, 2]),   // reads 1, 3, 3, 5: element 5 is the storage's last
                new("empty", "0", "FloatStorage", 6, 100, [3, 0], [1, 1]), // reads nothing, so no offset is out of range
                new("broadcast", "1", "FloatStorage", 1, 0, [4], [0]),     // stride 0: one element seen four times
            ],
            ("0", PickleBuilder.Floats(0, 1, 2, 3, 4, 5)), ("1", PickleBuilder.Floats(7)));

        using var t = new Loaded(PyTorchBin.Load(path));
        TensorAssert.Values([1, 3, 3, 5], t["last"]);
        Assert.Equal([3L, 0], t["empty"].shape);
        TensorAssert.Values([7, 7, 7, 7], t["broadcast"]);
    }

    [Fact]
    public void A_tensor_alone_on_part_of_its_storage_reads_that_part_into_a_destination()
    {
        // One tensor per storage, each a view of only part of it (transposed, offset, strided) or of all of it with a
        // size-1 dimension whose stride is arbitrary: reading into a destination must apply the view, not copy the storage.
        using var dir = new TempDir();
        var path = dir.Path("sole-views.bin");
        Write(path,
            [
                new("transposed", "0", "FloatStorage", 6, 0, [3, 2], [1, 3]),
                new("offset", "1", "FloatStorage", 4, 1, [3], [1]),
                new("strided", "2", "FloatStorage", 4, 0, [2], [2]),
                new("prefix", "3", "FloatStorage", 4, 0, [2], [1]),
                new("unit-dim", "4", "FloatStorage", 3, 0, [1, 3], [99, 1]),
                new("rows", "5", "FloatStorage", 6, 0, [2, 3], [0, 1]), // all six elements' worth, but row 0 twice
            ],
            ("0", PickleBuilder.Floats(0, 1, 2, 3, 4, 5)), ("1", PickleBuilder.Floats(9, 1, 2, 3)),
            ("2", PickleBuilder.Floats(1, 0, 2, 0)), ("3", PickleBuilder.Floats(5, 6, 7, 8)), ("4", PickleBuilder.Floats(1, 2, 3)), ("5", PickleBuilder.Floats(1, 2, 3, 4, 5, 6)));

        var expected = new Dictionary<string, float[]>
        {
            ["transposed"] = [0, 3, 1, 4, 2, 5], ["offset"] = [1, 2, 3], ["strided"] = [1, 2], ["prefix"] = [5, 6], ["unit-dim"] = [1, 2, 3], ["rows"] = [1, 2, 3, 1, 2, 3],
        };
        using var all = new Loaded(StateDict.LoadFile(path));
        using var checkpoint = StateDict.OpenFile(path);
        foreach (var (name, values) in expected)
        {
            TensorAssert.Values(values, all[name]);
            using var into = torch.full(checkpoint.Find(name)!.Shape, -1f);
            checkpoint.ReadInto(name, into);
            TensorAssert.Values(values, into);
            using var intoDouble = torch.full(checkpoint.Find(name)!.Shape, -1.0, dtype: torch.ScalarType.Float64);
            checkpoint.ReadInto(name, intoDouble);
            TensorAssert.Values(values, intoDouble);
        }
    }

    [Fact]
    public void Deflated_storages_and_a_root_named_after_the_file_load_like_stored_ones()
    {
        // Older torch names the root folder after the file; a zip tool may deflate the members.
        using var dir = new TempDir();
        var path = dir.Path("repacked.bin");
        var pickle = new PickleBuilder().BeginDict().Str("w").Tensor("FloatStorage", "0", 4096, 0, [4096], [1]).EndDict().Build();
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            void Add(string name, byte[] data)
            {
                using var s = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
                s.Write(data);
            }
            Add("repacked/data.pkl", pickle);
            Add("repacked/byteorder", "little\n"u8.ToArray()); // surrounding whitespace is tolerated
            Add("repacked/data/0", PickleBuilder.Floats([.. Enumerable.Range(0, 4096).Select(i => (float)(i % 7))]));
        }
        using var t = new Loaded(PyTorchBin.Load(path));
        TensorAssert.Values([.. Enumerable.Range(0, 4096).Select(i => (float)(i % 7))], t["w"]);

        // No byteorder member at all (torch before 1.10) means little-endian.
        var noOrder = dir.Path("no-byteorder.bin");
        File.Copy(path, noOrder);
        using (var zip = ZipFile.Open(noOrder, ZipArchiveMode.Update)) zip.GetEntry("repacked/byteorder")!.Delete();
        using var t2 = new Loaded(PyTorchBin.Load(noOrder));
        TensorAssert.Equal(t["w"], t2["w"]);
    }

    // ----- what is refused ---------------------------------------------------------------------------------------------

    [Fact]
    public void A_missing_file_and_files_that_are_not_zip_archives_are_refused_by_what_they_are()
    {
        using var dir = new TempDir();
        var missing = dir.Path("adapter_model.bin");
        TensorAssert.Throws(missing, () => PyTorchBin.Load(missing), "file not found");

        const string NotZip = "not a zip archive; torch.save files are zip archives since PyTorch 1.6 (the older raw-pickle format is not supported)";
        foreach (var (name, bytes) in new (string, byte[])[] { ("empty.bin", []), ("pk.bin", "PK\u0003"u8.ToArray()), ("pz.bin", "PZ\u0003\u0004 and more"u8.ToArray()), ("xk.bin", "XK\u0003\u0004 and more"u8.ToArray()) })
        {
            var path = dir.Path(name);
            File.WriteAllBytes(path, bytes);
            var e = TensorAssert.Throws(path, () => PyTorchBin.Load(path));
            Assert.Equal(NotZip, e.Problem);
        }

        // Starts like a zip but has no central directory (also when it is nothing but the 4-byte signature).
        var signature = dir.Path("signature.bin");
        File.WriteAllBytes(signature, "PK\u0003\u0004"u8.ToArray());
        TensorAssert.Throws(signature, () => PyTorchBin.Load(signature), "not a readable zip archive (");
        var broken = dir.Path("broken.bin");
        File.WriteAllBytes(broken, [.. "PK\u0003\u0004"u8, .. new byte[200]]);
        var b = TensorAssert.Throws(broken, () => PyTorchBin.Load(broken), "not a readable zip archive (");
        Assert.IsType<InvalidDataException>(b.InnerException);
    }

    [Fact]
    public void Archives_with_no_single_root_pickle_are_refused()
    {
        using var dir = new TempDir();
        var pickle = new PickleBuilder().BeginDict().EndDict().Build();
        void Zip(string path, params string[] names)
        {
            using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
            foreach (var name in names)
            {
                using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                s.Write(pickle);
            }
        }
        var two = dir.Path("two.bin");
        Zip(two, "a/data.pkl", "b/data.pkl");
        TensorAssert.Throws(two, () => PyTorchBin.Load(two), "zip archive has several data.pkl entries (a/data.pkl, b/data.pkl)");

        const string None = "zip archive has no '<root>/data.pkl' entry, so it is not a torch.save file";
        var top = dir.Path("top.bin");
        Zip(top, "data.pkl");
        Assert.Equal(None, TensorAssert.Throws(top, () => PyTorchBin.Load(top)).Problem);
        var deep = dir.Path("deep.bin");
        Zip(deep, "a/b/data.pkl", "a/xdata.pkl");
        Assert.Equal(None, TensorAssert.Throws(deep, () => PyTorchBin.Load(deep)).Problem);

        // One root pickle and one deeper down: the root one is the archive's.
        var nested = dir.Path("nested.bin");
        Zip(nested, "a/b/data.pkl", "a/data.pkl");
        using var loaded = new Loaded(PyTorchBin.Load(nested));
        Assert.Empty(loaded.Tensors);
    }

    [Fact]
    public void A_big_endian_or_oversized_byteorder_member_is_refused()
    {
        using var dir = new TempDir();
        var pickle = new PickleBuilder().BeginDict().EndDict().Build();
        string Archive(string name, byte[] order)
        {
            var path = dir.Path(name);
            using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
            using (var s = zip.CreateEntry("archive/data.pkl").Open()) s.Write(pickle);
            using (var s = zip.CreateEntry("archive/byteorder").Open()) s.Write(order);
            return path;
        }
        var big = Archive("big.bin", "big"u8.ToArray());
        Assert.Equal("archive/byteorder says 'big'; only little-endian archives are supported", TensorAssert.Throws(big, () => PyTorchBin.Load(big)).Problem);

        var exactly64 = Archive("pad64.bin", [.. "little"u8, .. Enumerable.Repeat((byte)' ', 58)]);
        using (var ok = new Loaded(PyTorchBin.Load(exactly64))) Assert.Empty(ok.Tensors);
        var over = Archive("pad65.bin", [.. "little"u8, .. Enumerable.Repeat((byte)' ', 59)]);
        Assert.Equal("archive/byteorder is 65 bytes, more than the 64-byte limit", TensorAssert.Throws(over, () => PyTorchBin.Load(over)).Problem);

        // A header that understates a deflated member's size: .NET's zip reader stops at the stated size.
        var lying = Archive("lying.bin", [.. "little"u8, .. Enumerable.Repeat((byte)'!', 5000)]);
        TorchArchive.ClaimSize(lying, "archive/byteorder", 6);
        using (var ok = new Loaded(PyTorchBin.Load(lying))) Assert.Empty(ok.Tensors);
    }

    [Fact]
    public void A_pickle_member_claiming_more_than_256_MiB_is_refused_before_reading()
    {
        using var dir = new TempDir();
        var path = dir.Path("huge-pickle.bin");
        PickleBuilder.WriteArchive(path, new PickleBuilder().BeginDict().EndDict().Build());
        TorchArchive.ClaimSize(path, "archive/data.pkl", (256u << 20) + 1);
        Assert.Equal("archive/data.pkl is 268435457 bytes, more than the 268435456-byte limit", TensorAssert.Throws(path, () => PyTorchBin.Load(path)).Problem);
    }

    [Fact]
    public void State_dict_keys_must_be_strings()
    {
        using var dir = new TempDir();
        var path = dir.Path("int-key.bin");
        var pickle = new PickleBuilder().BeginDict().Int(1).Tensor("FloatStorage", "0", 1, 0, [1], [1]).EndDict().Build();
        PickleBuilder.WriteArchive(path, pickle, ("0", PickleBuilder.Floats(1)));
        Assert.Equal("archive/data.pkl: state dict key int 1 is not a string", TensorAssert.Throws(path, () => PyTorchBin.Load(path)).Problem);
    }

    [Fact]
    public void A_storage_described_two_ways_is_refused()
    {
        using var dir = new TempDir();
        var path = dir.Path("two-ways.bin");
        Write(path, [Whole("a", "0", "FloatStorage", 4), Whole("b", "0", "FloatStorage", 2)], ("0", new byte[16]));
        Assert.Equal("tensor 'b': storage '0' is described as 2 x Float32 here but as 4 x Float32 elsewhere",
            TensorAssert.Throws(path, () => PyTorchBin.Load(path)).Problem);

        var typed = dir.Path("two-types.bin");
        Write(typed, [Whole("a", "0", "FloatStorage", 4), Whole("b", "0", "IntStorage", 4)], ("0", new byte[16]));
        Assert.Equal("tensor 'b': storage '0' is described as 4 x Int32 here but as 4 x Float32 elsewhere",
            TensorAssert.Throws(typed, () => PyTorchBin.Load(typed)).Problem);
    }

    [Fact]
    public void A_storage_whose_byte_size_overflows_is_refused_by_its_size()
    {
        using var dir = new TempDir();
        var path = dir.Path("overflow.bin");
        Write(path, [new("w", "0", "FloatStorage", 1L << 62, 0, [1], [1])], ("0", new byte[4]));
        Assert.Equal("tensor 'w': storage entry 'archive/data/0' holds 4 bytes but 4611686018427387904 x Float32 needs more than 2^63",
            TensorAssert.Throws(path, () => PyTorchBin.Load(path)).Problem);
    }

    [Fact]
    public void A_deflated_member_claiming_more_than_deflate_can_expand_is_refused_before_reading()
    {
        using var dir = new TempDir();
        var path = dir.Path("ratio.bin");
        const long Numel = 1 << 20; // claims 4 MiB from a few compressed bytes: more than deflate's ~1032:1 allows
        TorchArchive.Write(path, TorchArchive.Pickle([Whole("w", "0", "FloatStorage", Numel)]), new Dictionary<string, byte[]> { ["0"] = new byte[4] });
        TorchArchive.ClaimSize(path, "archive/data/0", (uint)(Numel * 4));
        TensorAssert.Throws(path, () => StateDict.OpenFile(path), "storage entry 'archive/data/0' claims 4194304 bytes from ", "compressed bytes in a ", "-byte archive (corrupt zip)");
    }

    [Fact]
    public void A_deflated_member_shorter_than_its_header_says_is_refused_when_read()
    {
        using var dir = new TempDir();
        var path = dir.Path("short.bin");
        var noise = new byte[4000];
        new Random(7).NextBytes(noise);
        TorchArchive.Write(path, TorchArchive.Pickle([Whole("w", "0", "FloatStorage", 1100)]), new Dictionary<string, byte[]> { ["0"] = noise });
        TorchArchive.ClaimSize(path, "archive/data/0", 4400);
        using var checkpoint = StateDict.OpenFile(path); // the directory's sizes agree with the pickle
        TensorAssert.Throws(path, () => StateDict.LoadFile(path), "archive/data/0");
        using var into = torch.empty(1100);
        TensorAssert.Throws(path, () => { checkpoint.ReadInto("w", into); return 0; }, "archive/data/0");
    }

    /// <summary>Overwrites the 4-byte signature of a member's local header (the central directory still lists it).</summary>
    private static void BreakLocalHeader(string path, string member)
    {
        var bytes = File.ReadAllBytes(path);
        var name = Encoding.UTF8.GetBytes(member);
        for (var i = 0; i + 30 + name.Length <= bytes.Length; i++)
        {
            if (BitConverter.ToUInt32(bytes, i) == 0x04034b50 && BitConverter.ToUInt16(bytes, i + 26) == name.Length && bytes.AsSpan(i + 30, name.Length).SequenceEqual(name))
            {
                bytes[i + 2] = 0xFF;
                File.WriteAllBytes(path, bytes);
                return;
            }
        }
        throw new InvalidOperationException($"no local header for {member}");
    }

    [Fact]
    public void A_corrupt_zip_member_is_refused_as_a_corrupt_archive_whenever_it_is_read()
    {
        using var dir = new TempDir();
        // The pickle's member: found while opening.
        var pickle = dir.Path("pickle.bin");
        Write(pickle, [Whole("w", "0", "FloatStorage", 2)], ("0", PickleBuilder.Floats(1, 2)));
        BreakLocalHeader(pickle, "archive/data.pkl");
        var e = TensorAssert.Throws(pickle, () => StateDict.OpenFile(pickle), "corrupt zip archive (");
        Assert.IsType<InvalidDataException>(e.InnerException);

        // A storage's member: opening succeeds (only sizes are checked), reading it fails, by every way of reading.
        var storage = dir.Path("storage.bin");
        Write(storage, [Whole("w", "0", "FloatStorage", 2), new("part", "1", "FloatStorage", 2, 1, [1], [1])],
            ("0", PickleBuilder.Floats(1, 2)), ("1", PickleBuilder.Floats(3, 4)));
        BreakLocalHeader(storage, "archive/data/0");
        BreakLocalHeader(storage, "archive/data/1");
        using var checkpoint = StateDict.OpenFile(storage);
        TensorAssert.Throws(storage, () => checkpoint.ReadAll(null), "corrupt zip archive (");
        using var whole = torch.empty(2);
        TensorAssert.Throws(storage, () => { checkpoint.ReadInto("w", whole); return 0; }, "corrupt zip archive (");
        using var part = torch.empty(1);
        TensorAssert.Throws(storage, () => { checkpoint.ReadInto("part", part); return 0; }, "corrupt zip archive (");
    }

    [Fact]
    public void A_member_claiming_more_compressed_bytes_than_the_archive_holds_is_refused()
    {
        using var dir = new TempDir();
        var path = dir.Path("compressed-claim.bin");
        TorchArchive.Write(path, TorchArchive.Pickle([Whole("w", "0", "FloatStorage", 4096)]), new Dictionary<string, byte[]> { ["0"] = new byte[4 * 4096] });
        var length = new FileInfo(path).Length;
        // Central directory: compressed size at +20. Claim one byte more than the whole file (the ratio stays plausible).
        var bytes = File.ReadAllBytes(path);
        var name = "archive/data/0"u8.ToArray();
        for (var i = 0; i + 46 + name.Length <= bytes.Length; i++)
            if (BitConverter.ToUInt32(bytes, i) == 0x02014b50 && BitConverter.ToUInt16(bytes, i + 28) == name.Length && bytes.AsSpan(i + 46, name.Length).SequenceEqual(name))
                BitConverter.TryWriteBytes(bytes.AsSpan(i + 20, 4), (uint)(length + 1));
        File.WriteAllBytes(path, bytes);
        Assert.Equal($"storage entry 'archive/data/0' claims 16384 bytes from {length + 1} compressed bytes in a {length}-byte archive (corrupt zip)",
            TensorAssert.Throws(path, () => StateDict.OpenFile(path)).Problem);
    }

    [Fact]
    public void A_tensor_with_no_elements_and_an_empty_storage_member_loads()
    {
        using var dir = new TempDir();
        var path = dir.Path("empty.bin");
        Write(path, [new("e", "0", "FloatStorage", 0, 0, [0, 4], [4, 1])], ("0", []));
        using var t = new Loaded(PyTorchBin.Load(path));
        Assert.Equal([0L, 4], t["e"].shape);
        using var checkpoint = StateDict.OpenFile(path);
        using var into = torch.empty(0, 4);
        checkpoint.ReadInto("e", into);
    }

    public static TheoryData<View, string> BadViews() => new()
    {
        { new("w", "0", "FloatStorage", 4, 0, [2, 2], [1]), "tensor 'w': size [2, 2] and stride [1] have different lengths" },
        { new("w", "0", "FloatStorage", 4, -1, [2], [1]), "tensor 'w': negative storage offset -1" },
        { new("w", "0", "FloatStorage", 4, 0, [2, -2], [1, 1]), "tensor 'w': negative dimension in size [2, -2]" },
        { new("w", "0", "FloatStorage", 4, 0, [2, 2], [-1, 1]), "tensor 'w': negative stride in [-1, 1]" },
        { new("w", "0", "FloatStorage", 4, 0, [1L << 31, 1L << 31], [0, 0]), "tensor 'w': size [2147483648, 2147483648] overflows" },
        { new("w", "0", "FloatStorage", 4, 0, [3, 3], [1L << 62, 1]), "tensor 'w': size and stride overflow" },
        { new("w", "0", "FloatStorage", 4, long.MaxValue, [1], [1]), "tensor 'w': view (offset 9223372036854775807, size [1], stride [1]) needs 9223372036854775808 elements but storage '0' has 4" },
        { new("w", "0", "FloatStorage", 4, 1, [2, 2], [2, 1]), "tensor 'w': view (offset 1, size [2, 2], stride [2, 1]) needs 5 elements but storage '0' has 4" },
        { new("w", "0", "FloatStorage", 4, 4, [1], [1]), "tensor 'w': view (offset 4, size [1], stride [1]) needs 5 elements but storage '0' has 4" },
    };

    [Theory]
    [MemberData(nameof(BadViews))]
    public void Views_outside_their_storage_or_with_impossible_numbers_are_refused(View view, string problem)
    {
        using var dir = new TempDir();
        var path = dir.Path("adapter_model.bin");
        Write(path, [view], ("0", new byte[16]));
        Assert.Equal(problem, TensorAssert.Throws(path, () => StateDict.OpenFile(path)).Problem);
    }

    /// <summary>
    /// Writes one float storage "0" of one element and views of it that repeat it (stride 0) so that the bytes they claim
    /// are exactly the budget for the archive's own size plus <paramref name="over"/> elements. The pickle writes every
    /// integer in 8 bytes, so the archive's size does not depend on the numbers in it.
    /// </summary>
    private static string AtBudget(TempDir dir, string name, long over, bool secondView, bool smallFirst = false)
    {
        var path = dir.Path(name);
        // "m" is the whole of its own storage, its only user: it claims nothing beyond its member's 24 bytes.
        List<View> Views(long n) =>
        [
            .. smallFirst ? [new View("s", "0", "FloatStorage", 1, 0, [2], [0])] : Array.Empty<View>(),
            new("a", "0", "FloatStorage", 1, 0, [n], [0]),
            new("m", "1", "FloatStorage", 6, 0, [2, 3], [3, 1]),
            .. secondView ? [Whole("b", "0", "FloatStorage", 1)] : Array.Empty<View>(),
        ];
        (string, byte[])[] storages = [("0", new byte[4]), ("1", new byte[24])];
        Write(path, Views(1), storages);
        var length = new FileInfo(path).Length;
        // claimed = 4 + 24 (the storage members) + 4 n (the repeated view) [+ 4 (view b: storage 0 has two users)]
        var n = (PyTorchBin.ClaimBudget(length) - 28) / 4 + over;
        Write(path, Views(n), storages);
        Assert.Equal(length, new FileInfo(path).Length);
        return path;
    }

    [Fact]
    public void The_bytes_an_archive_may_claim_are_eight_times_its_size_plus_64_MiB_exactly()
    {
        Assert.Equal((64L << 20) + 8 * 1000, PyTorchBin.ClaimBudget(1000));
        using var dir = new TempDir();

        var exact = AtBudget(dir, "exact.bin", over: 0, secondView: false);
        using (var checkpoint = StateDict.OpenFile(exact)) Assert.Equal(PyTorchBin.ClaimBudget(new FileInfo(exact).Length) / 4 - 7, checkpoint.Find("a")!.Shape[0]);

        var over = AtBudget(dir, "over.bin", over: 1, secondView: false);
        var length = new FileInfo(over).Length;
        Assert.Equal($"its tensors claim more than {PyTorchBin.ClaimBudget(length)} bytes, the budget for a {length}-byte archive (8 x its size + 64 MiB); refused before reading",
            TensorAssert.Throws(over, () => StateDict.OpenFile(over)).Problem);

        // At the budget after the first view, over it with the second: every view counts, not only those before the limit.
        var second = AtBudget(dir, "second.bin", over: 0, secondView: true);
        TensorAssert.Throws(second, () => StateDict.OpenFile(second), "its tensors claim more than");
        // Over it only with a view that comes after a small one.
        var later = AtBudget(dir, "later.bin", over: 1, secondView: false, smallFirst: true);
        TensorAssert.Throws(later, () => StateDict.OpenFile(later), "its tensors claim more than");
    }

    [Fact]
    public void Tensors_sharing_one_storage_each_load_whole_and_independent()
    {
        using var dir = new TempDir();
        var path = dir.Path("shared.bin");
        Write(path, [Whole("a", "0", "FloatStorage", 3), Whole("b", "0", "FloatStorage", 3)], ("0", PickleBuilder.Floats(1, 2, 3)));
        using var t = new Loaded(PyTorchBin.Load(path));
        t["a"].add_(10f);
        TensorAssert.Values([11, 12, 13], t["a"]);
        TensorAssert.Values([1, 2, 3], t["b"]);
        using var checkpoint = StateDict.OpenFile(path);
        using var into = torch.zeros(3);
        checkpoint.ReadInto("b", into);
        TensorAssert.Values([1, 2, 3], into);
    }
}
