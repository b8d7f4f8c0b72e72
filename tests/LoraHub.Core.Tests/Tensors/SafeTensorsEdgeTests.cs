using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

/// <summary>
/// The safetensors header checks the malformed-header theory does not reach, the writer's refusals, and the reader's
/// valid edge cases (empty tensors, no metadata). Errors are asserted by type, file and the field they name, not by
/// their full wording.
/// </summary>
public class SafeTensorsEdgeTests
{
    [Theory]
    [InlineData("{\"w\": [1]}", 0, "tensor 'w'", "not an object")]
    [InlineData("{\"w\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "tensor 'w'", "'dtype'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "tensor 'w'", "'shape'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 4]}}", 4, "tensor 'w'", "'shape'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, "tensor 'w'", "1.5")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", 4, "tensor 'w'", "\"1\"")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "tensor 'w'", "'data_offsets'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {\"0\": 4}}}", 4, "tensor 'w'", "'data_offsets'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4, "tensor 'w'", "'data_offsets'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, \"4\"]}}", 4, "tensor 'w'", "'data_offsets'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 8]}}", 8, "tensor 'w'", "needs 8 bytes", "[4, 8] hold 4")]
    [InlineData("{\"__metadata__\": [1]}", 0, "__metadata__", "not an object")]
    [InlineData("{\"__metadata__\": {\"a\": \"1\"}, \"__metadata__\": {\"a\": \"2\"}}", 0, "__metadata__", "twice")]
    [InlineData("{\"__metadata__\": {\"a\": \"1\", \"a\": \"2\"}}", 0, "__metadata__", "'a'", "twice")]
    public void Rejects_more_malformed_headers_naming_the_file_and_the_field(string header, int dataBytes, params string[] expected)
    {
        using var dir = new TempDir();
        var path = dir.Path("bad.safetensors");
        RawSafetensors.Write(path, header, dataBytes);
        TensorAssert.Throws(path, () => SafeTensors.Load(path), expected);
        TensorAssert.Throws(path, () => SafeTensors.ReadMetadata(path), expected);
    }

    [Fact]
    public void The_content_sniff_wants_the_whole_header_inside_the_file()
    {
        // 8-byte length 2, then "{}": exactly 10 bytes is a (tensorless) safetensors file; 9 bytes cannot hold it.
        byte[] head = [2, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}'];
        Assert.True(SafeTensors.LooksLikeSafetensors(head, fileLength: 10));
        Assert.False(SafeTensors.LooksLikeSafetensors(head, fileLength: 9));
        Assert.False(SafeTensors.LooksLikeSafetensors(head[..8], fileLength: 10));
        head[8] = (byte)'[';
        Assert.False(SafeTensors.LooksLikeSafetensors(head, fileLength: 10));
    }

    [Fact]
    public void Empty_tensors_share_an_offset_without_overlapping_and_load_with_their_shape()
    {
        using var dir = new TempDir();
        var path = dir.Path("empty.safetensors");
        RawSafetensors.Write(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [4, 4]}, " +
            "\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, " +
            "\"z\": {\"dtype\": \"I64\", \"shape\": [0], \"data_offsets\": [4, 4]}}", 8);
        using var loaded = new Loaded(SafeTensors.Load(path));
        Assert.Equal(["a", "w", "z"], loaded.Tensors.Keys); // the header's order
        Assert.Equal(new long[] { 0, 3 }, loaded.Tensors["a"].shape);
        Assert.Equal(torch.ScalarType.Int64, loaded.Tensors["z"].dtype);
        TensorAssert.Values([0f, 0f], loaded.Tensors["w"]);
        Assert.Empty(SafeTensors.ReadMetadata(path));
        // Touching (one ends where the next begins) is not overlapping.
        var touching = dir.Path("touching.safetensors");
        RawSafetensors.Write(touching, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, " +
            "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
        Assert.Equal(2, SafeTensors.ReadHeader(touching).Count);
    }

    [Fact]
    public void The_writer_refuses_names_and_dtypes_safetensors_cannot_hold_and_writes_nothing()
    {
        using var dir = new TempDir();
        var path = dir.Path("out.safetensors");
        using var ok = torch.ones(2);
        using var complex = torch.zeros(2, dtype: torch.ScalarType.ComplexFloat32);
        foreach (var (name, tensor, fragment) in new[] { ("", ok, "''"), ("__metadata__", ok, "__metadata__"), ("c", complex, "tensor 'c'") })
        {
            var e = Assert.Throws<ArgumentException>(() => SafeTensors.Save(path, new Dictionary<string, torch.Tensor> { ["fine"] = ok, [name] = tensor }));
            Assert.Contains(fragment, e.Message);
        }
        Assert.Empty(Directory.GetFileSystemEntries(dir.Root));
    }

    [Fact]
    public void Save_creates_the_folder_orders_metadata_and_omits_empty_metadata()
    {
        using var dir = new TempDir();
        var path = System.IO.Path.Combine(dir.Root, "new", "folder", "w.safetensors");
        using var t = torch.arange(6, dtype: torch.ScalarType.Int32).reshape(2, 3);
        SafeTensors.Save(path, new Dictionary<string, torch.Tensor> { ["t"] = t }, new Dictionary<string, string> { ["z"] = "1", ["a"] = "2" });
        Assert.Equal(["a", "z"], SafeTensors.ReadMetadata(path).Keys);
        var header = SafeTensors.ReadHeader(path);
        Assert.Equal("I32", header["t"].Dtype);
        Assert.Equal(new long[] { 2, 3 }, header["t"].Shape);

        var bare = dir.Path("bare.safetensors");
        SafeTensors.Save(bare, new Dictionary<string, torch.Tensor> { ["t"] = t }, new Dictionary<string, string>());
        Assert.DoesNotContain("__metadata__", System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(bare)));
        Assert.Empty(SafeTensors.ReadMetadata(bare));
    }
}
