using System.IO.Compression;
using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

public class PyTorchBinTests
{
    // The files the hostile fixtures' pickles would create if anything ran them (see make_bin_fixtures.py).
    private const string OsSystemMarker = "/tmp/lorahub-pwned-c8408258-baee-4f37-ad96-05ce4f74c06f";
    private const string EvalMarker = "/tmp/lorahub-pwned-f84da11b-70fb-413e-80fb-578b75304ea7";

    [Fact]
    public void Bin_version_of_lora_0_loads_to_exactly_the_safetensors_tensors()
    {
        using var fromBin = new Loaded(PyTorchBin.Load(TensorFixtures.Lora0Bin, castTo: null));
        using var fromSafetensors = new Loaded(SafeTensors.Load(TensorFixtures.Lora0Safetensors, castTo: null));

        Assert.Equal(fromSafetensors.Tensors.Keys, fromBin.Tensors.Keys); // pickle order = header order
        foreach (var (name, expected) in fromSafetensors.Tensors) TensorAssert.Equal(expected, fromBin[name]);
    }

    [Fact]
    public void Strided_views_offsets_and_shared_storages_are_rebuilt()
    {
        using var t = new Loaded(PyTorchBin.Load(TensorFixtures.Path("bin", "strided_and_shared.bin"), castTo: null));

        // matrix storage 0..11 seen as 3x4; "transposed" is its 4x3 transpose (strides 1, 4).
        Assert.Equal([4L, 3], t["transposed"].shape);
        Assert.True(t["transposed"].is_contiguous());
        TensorAssert.Values([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11], t["transposed"]);
        TensorAssert.Values([4, 5, 6, 7], t["row_1"]);                              // same storage, offset 4
        TensorAssert.Values([102, 103, 104, 105, 106, 107], t["offset_block"]);    // offset 2, 2x3
        Assert.Equal([2L, 3], t["offset_block"].shape);
        TensorAssert.Values([101, 104, 107], t["every_third"]);                    // stride 3
        Assert.Empty(t["scalar"].shape);
        Assert.Equal(42f, t["scalar"].item<float>());
        TensorAssert.Values([0.5f, -0.25f], t["param"]);                           // _rebuild_parameter

        Assert.Equal(torch.ScalarType.Float16, t["half"].dtype);
        TensorAssert.Values([1.5f, -2f, 0.0999755859375f, 65504f], t["half"]);
        Assert.Equal(torch.ScalarType.BFloat16, t["bf16"].dtype);
        TensorAssert.Values([1f, -0.15625f, 3.140625f], t["bf16"]);
        Assert.Equal(torch.ScalarType.Int64, t["long"].dtype);
        Assert.Equal([-1L, 0, 1L << 40], t["long"].data<long>().ToArray());
        Assert.Equal([true, false, true], t["mask"].data<bool>().ToArray());
    }

    [Fact]
    public void Tensors_that_shared_a_storage_no_longer_share_memory()
    {
        using var t = new Loaded(PyTorchBin.Load(TensorFixtures.Path("bin", "strided_and_shared.bin")));
        t["row_1"].fill_(-1f);
        TensorAssert.Values([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11], t["transposed"]);
    }

    [Fact]
    public void Default_cast_makes_floating_tensors_float32_and_leaves_integers()
    {
        using var t = new Loaded(PyTorchBin.Load(TensorFixtures.Path("bin", "strided_and_shared.bin")));
        Assert.Equal(torch.ScalarType.Float32, t["half"].dtype);
        Assert.Equal(torch.ScalarType.Float32, t["bf16"].dtype);
        TensorAssert.Values([1.5f, -2f, 0.0999755859375f, 65504f], t["half"]);
        Assert.Equal(torch.ScalarType.Int64, t["long"].dtype);
        Assert.Equal(torch.ScalarType.Bool, t["mask"].dtype);
    }

    [Theory]
    [InlineData("evil_os_system.bin", "refusing pickle global 'os.system' (only tensor rebuild globals are allowed)", OsSystemMarker)]
    [InlineData("evil_builtins_eval.bin", "refusing pickle global 'builtins.eval' (only tensor rebuild globals are allowed)", EvalMarker)]
    public void Hostile_pickles_are_refused_without_side_effects(string file, string expected, string marker)
    {
        Assert.False(File.Exists(marker), $"{marker} exists before the test; delete it");
        var path = TensorFixtures.Path("bin", file);

        TensorAssert.Throws(path, () => PyTorchBin.Load(path), expected);
        TensorAssert.Throws(path, () => StateDict.LoadFile(path), expected);

        Assert.False(File.Exists(marker));
    }

    [Theory]
    [InlineData("posix", "system")]
    [InlineData("subprocess", "check_call")]
    [InlineData("builtins", "exec")]
    [InlineData("torch", "load")]
    public void Any_global_outside_the_allow_list_is_refused(string module, string name)
    {
        using var dir = new TempDir();
        var marker = dir.Path("pwned"); // fresh path: nothing can have created it before
        var path = dir.Path("evil.bin");
        var pickle = new PickleBuilder().Global(module, name).Op('(').Str($"touch {marker}").Op('t').Op('R').Build();
        PickleBuilder.WriteArchive(path, pickle);

        TensorAssert.Throws(path, () => PyTorchBin.Load(path), $"refusing pickle global '{module}.{name}'");
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void Allowed_globals_cannot_be_misused_as_arbitrary_callables()
    {
        using var dir = new TempDir();
        var path = dir.Path("storage-call.bin");
        // A storage class is allowed in persistent ids, but calling it is not.
        var pickle = new PickleBuilder().Global("torch", "FloatStorage").Op(')').Op('R').Build();
        PickleBuilder.WriteArchive(path, pickle);
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "'torch.FloatStorage' cannot be called");
    }

    [Fact]
    public void Rejects_a_file_that_is_not_a_zip()
    {
        var path = TensorFixtures.Path("bin", "not_a_zip.bin");
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "not a zip archive");
    }

    [Fact]
    public void Rejects_a_truncated_pickle()
    {
        var path = TensorFixtures.Path("bin", "truncated_pickle.bin");
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "archive/data.pkl", "truncated");
    }

    [Fact]
    public void Rejects_a_zip_without_data_pkl()
    {
        using var dir = new TempDir();
        var path = dir.Path("no-pickle.bin");
        PickleBuilder.WriteArchive(path, pickle: null, ("0", new byte[16]));
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "no '<root>/data.pkl' entry");
    }

    [Fact]
    public void Rejects_an_archive_missing_a_storage_entry()
    {
        using var dir = new TempDir();
        var path = dir.Path("adapter_model.bin");
        File.Copy(TensorFixtures.Lora0Bin, path);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update)) zip.GetEntry("archive/data/3")!.Delete();

        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "storage entry 'archive/data/3' is missing");
    }

    [Fact]
    public void Rejects_a_view_larger_than_its_storage()
    {
        using var dir = new TempDir();
        var path = dir.Path("overrun.bin");
        var pickle = new PickleBuilder().BeginDict()
            .Str("w").Tensor("FloatStorage", "0", numel: 4, offset: 2, size: [2, 2], stride: [2, 1])
            .EndDict().Build();
        PickleBuilder.WriteArchive(path, pickle, ("0", PickleBuilder.Floats(1, 2, 3, 4)));

        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "tensor 'w'", "needs 6 elements but storage '0' has 4");
    }

    [Fact]
    public void Rejects_a_storage_entry_of_the_wrong_size()
    {
        using var dir = new TempDir();
        var path = dir.Path("short-storage.bin");
        var pickle = new PickleBuilder().BeginDict()
            .Str("w").Tensor("FloatStorage", "0", numel: 4, offset: 0, size: [4], stride: [1])
            .EndDict().Build();
        PickleBuilder.WriteArchive(path, pickle, ("0", PickleBuilder.Floats(1, 2, 3)));

        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "tensor 'w'", "holds 12 bytes but 4 x Float32 needs 16");
    }

    [Fact]
    public void A_hand_built_pickle_loads()
    {
        // Guards the builder used by the negative tests: the same shape, well-formed, loads.
        using var dir = new TempDir();
        var path = dir.Path("ok.bin");
        var pickle = new PickleBuilder().BeginDict()
            .Str("w").Tensor("FloatStorage", "0", numel: 4, offset: 1, size: [3], stride: [1])
            .EndDict().Build();
        PickleBuilder.WriteArchive(path, pickle, ("0", PickleBuilder.Floats(1, 2, 3, 4)));

        using var t = new Loaded(PyTorchBin.Load(path));
        TensorAssert.Values([2, 3, 4], t["w"]);
    }

    [Fact]
    public void Rejects_a_state_dict_value_that_is_not_a_tensor()
    {
        using var dir = new TempDir();
        var path = dir.Path("checkpoint.bin");
        var pickle = new PickleBuilder().BeginDict().Str("epoch").Int(3).EndDict().Build();
        PickleBuilder.WriteArchive(path, pickle);
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "entry 'epoch' is int 3, not a tensor");
    }

    [Fact]
    public void Rejects_a_pickle_that_is_not_a_dict()
    {
        using var dir = new TempDir();
        var path = dir.Path("list.bin");
        PickleBuilder.WriteArchive(path, new PickleBuilder().Op(']').Build());
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "holds a list, not a state dict");
    }

    [Fact]
    public void Rejects_an_unknown_opcode_naming_it()
    {
        using var dir = new TempDir();
        var path = dir.Path("inst.bin");
        // INST ('i') is a protocol-0 way of calling a class; torch.save never writes it.
        PickleBuilder.WriteArchive(path, new PickleBuilder().Op('i').Build());
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "unsupported pickle opcode 0x69 ('i')");
    }

    [Fact]
    public void Rejects_a_pickle_without_stop()
    {
        using var dir = new TempDir();
        var path = dir.Path("nostop.bin");
        PickleBuilder.WriteArchive(path, new PickleBuilder().BeginDict().EndDict().Build(stop: false));
        TensorAssert.Throws(path, () => PyTorchBin.Load(path), "without a STOP");
    }
}
