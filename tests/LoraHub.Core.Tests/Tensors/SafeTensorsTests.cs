using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

public class SafeTensorsTests
{
    [Fact]
    public void Loads_the_real_tiny_t5_model()
    {
        using var model = new Loaded(SafeTensors.Load(TensorFixtures.TinyT5Model));

        Assert.Equal(52, model.Tensors.Count);
        Assert.Equal([32128L, 64], model["shared.weight"].shape);
        Assert.Equal([64L, 64], model["encoder.block.0.layer.0.SelfAttention.q.weight"].shape);
        Assert.Equal([32L, 4], model["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape);
        foreach (var (name, t) in model.Tensors)
        {
            Assert.Equal(torch.ScalarType.Float32, t.dtype);
            AssertFiniteAndNotAllZero(name, t);
        }
    }

    [Fact]
    public void Loads_the_real_lora_adapter_and_its_metadata()
    {
        var path = TensorFixtures.Lora0Safetensors;
        using var adapter = new Loaded(SafeTensors.Load(path));

        Assert.Equal(24, adapter.Tensors.Count);
        Assert.Equal([4L, 64], adapter["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"].shape);
        Assert.Equal([64L, 4], adapter["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight"].shape);
        foreach (var (name, t) in adapter.Tensors) AssertFiniteAndNotAllZero(name, t);
        Assert.Equal("pt", SafeTensors.ReadMetadata(path)["format"]);
    }

    [Fact]
    public void ReadHeader_matches_what_Load_returns()
    {
        var header = SafeTensors.ReadHeader(TensorFixtures.TinyT5Model);
        using var model = new Loaded(SafeTensors.Load(TensorFixtures.TinyT5Model, castTo: null));

        Assert.Equal(model.Tensors.Keys.Order(), header.Keys.Order());
        foreach (var (name, (dtype, shape)) in header)
        {
            Assert.Equal("F32", dtype);
            Assert.Equal(shape, model[name].shape);
        }
    }

    [Fact]
    public void Float32_round_trip_is_exact_and_keeps_metadata()
    {
        using var dir = new TempDir();
        var path = dir.Path("f32.safetensors");
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, torch.Tensor>
        {
            ["w"] = torch.randn(3, 5),
            ["b"] = torch.tensor(new[] { 1.5f, -0.0f, float.MaxValue, float.Epsilon }),
            ["scalar"] = torch.tensor(2.25f),
            ["empty"] = torch.zeros(0, 3),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode ✓" };

        SafeTensors.Save(path, tensors, metadata);

        using var loaded = new Loaded(SafeTensors.Load(path));
        Assert.Equal(tensors.Keys.Order(), loaded.Tensors.Keys.Order());
        foreach (var (name, t) in tensors) TensorAssert.Equal(t, loaded[name]);
        Assert.Equal(metadata, SafeTensors.ReadMetadata(path));
    }

    [Theory]
    [InlineData(torch.ScalarType.Float16, "F16", new[] { 0.0999755859375f, 0.333251953125f, 1000.5f, -2.5f, 3.140625f, 65504f })]
    [InlineData(torch.ScalarType.BFloat16, "BF16", new[] { 0.10009765625f, 0.333984375f, 1000f, -2.5f, 3.140625f, 65536f })]
    public void Half_precision_round_trip_gives_the_rounded_values(torch.ScalarType type, string dtypeName, float[] expected)
    {
        using var dir = new TempDir();
        var path = dir.Path("half.safetensors");
        using var source = torch.tensor(new[] { 0.1f, 1f / 3, 1000.7f, -2.5f, 3.14159f, 65519f });
        using var half = source.to_type(type).reshape(2, 3);

        SafeTensors.Save(path, new Dictionary<string, torch.Tensor> { ["h"] = half });

        var (storedDtype, storedShape) = SafeTensors.ReadHeader(path)["h"];
        Assert.Equal(dtypeName, storedDtype);
        Assert.Equal([2L, 3], storedShape);
        using (var asStored = new Loaded(SafeTensors.Load(path, castTo: null)))
        {
            Assert.Equal(type, asStored["h"].dtype);
            TensorAssert.Equal(half, asStored["h"]);
        }
        using var asFloat = new Loaded(SafeTensors.Load(path));
        Assert.Equal(torch.ScalarType.Float32, asFloat["h"].dtype);
        TensorAssert.Values(expected, asFloat["h"]);
    }

    [Fact]
    public void Integer_and_bool_tensors_round_trip_and_are_never_cast()
    {
        using var dir = new TempDir();
        var path = dir.Path("ints.safetensors");
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, torch.Tensor>
        {
            ["i64"] = torch.tensor(new[] { long.MinValue, -1L, 1L << 40 }),
            ["i32"] = torch.tensor(new[] { int.MinValue, 7 }),
            ["i16"] = torch.tensor(new short[] { -300, 300 }),
            ["i8"] = torch.tensor(new sbyte[] { -128, 127 }),
            ["u8"] = torch.tensor(new byte[] { 0, 255 }),
            ["bool"] = torch.tensor(new[] { true, false, true }),
            ["f64"] = torch.tensor(new[] { Math.PI }),
        };

        SafeTensors.Save(path, tensors);

        Assert.Equal(["BOOL", "F64", "I16", "I32", "I64", "I8", "U8"], SafeTensors.ReadHeader(path).Values.Select(v => v.Dtype).Order());
        using var loaded = new Loaded(SafeTensors.Load(path)); // default castTo Float32
        foreach (var name in tensors.Keys.Where(n => n != "f64")) TensorAssert.Equal(tensors[name], loaded[name]);
        Assert.Equal(torch.ScalarType.Float32, loaded["f64"].dtype);
    }

    [Fact]
    public void Save_writes_the_reference_layout_and_leaves_no_temp_file()
    {
        using var dir = new TempDir();
        var path = dir.Path("layout.safetensors");
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, torch.Tensor>
        {
            ["zeta"] = torch.ones(3, dtype: torch.ScalarType.Float16),
            ["alpha"] = torch.ones(2),
            ["beta"] = torch.ones(1, dtype: torch.ScalarType.Int64),
            // A transposed (non-contiguous) view must be written in logical order.
            ["transposed"] = torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3).t(),
        };

        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        SafeTensors.Save(path, tensors); // overwriting an existing file works too

        var bytes = File.ReadAllBytes(path);
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8);
        var headerText = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.StartsWith("{\"", headerText);
        Assert.Matches("^[^ ]*} *$", headerText); // compact JSON, padded with spaces only

        // Largest element size first, then by name; data packed back to back.
        using var header = JsonDocument.Parse(headerText);
        var entries = header.RootElement.EnumerateObject()
            .Select(p => (p.Name, Begin: p.Value.GetProperty("data_offsets")[0].GetInt64(), End: p.Value.GetProperty("data_offsets")[1].GetInt64()))
            .ToList();
        Assert.Equal(["beta", "alpha", "transposed", "zeta"], entries.Select(e => e.Name));
        Assert.Equal([(0L, 8L), (8L, 16L), (16L, 40L), (40L, 46L)], entries.Select(e => (e.Begin, e.End)));
        Assert.Equal(8 + headerLength + 46, bytes.Length);
        Assert.Single(Directory.GetFiles(dir.Root));

        using var loaded = new Loaded(SafeTensors.Load(path, castTo: null));
        TensorAssert.Values([0, 3, 1, 4, 2, 5], loaded["transposed"]);
        Assert.Equal([3L, 2], loaded["transposed"].shape);
    }

    [Fact]
    public void Returned_tensors_survive_the_callers_dispose_scope()
    {
        Dictionary<string, torch.Tensor> tensors;
        using (torch.NewDisposeScope())
        {
            tensors = SafeTensors.Load(TensorFixtures.Lora0Safetensors);
        }
        using var loaded = new Loaded(tensors);
        Assert.All(loaded.Tensors.Values, t => Assert.False(t.IsInvalid));
        AssertFiniteAndNotAllZero("any", loaded.Tensors.Values.First());
    }

    // ----- malformed files ---------------------------------------------------------------------

    [Fact]
    public void Rejects_a_file_shorter_than_the_length_prefix()
    {
        using var dir = new TempDir();
        var path = dir.Path("adapter_model.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
        TensorAssert.Throws(path, () => SafeTensors.Load(path), "5 bytes", "too short");
    }

    [Fact]
    public void Rejects_a_header_length_past_the_end_of_the_file()
    {
        using var dir = new TempDir();
        var path = dir.Path("adapter_model.safetensors");
        RawSafetensors.Write(path, "{}", 0, headerLengthOverride: 999999);
        TensorAssert.Throws(path, () => SafeTensors.Load(path), "header length 999999 runs past the end of the file (10 bytes)");
    }

    [Fact]
    public void Rejects_an_absurd_header_length()
    {
        using var dir = new TempDir();
        var path = dir.Path("huge.safetensors");
        RawSafetensors.Write(path, "{}", 0, headerLengthOverride: 1L << 40);
        TensorAssert.Throws(path, () => SafeTensors.ReadHeader(path), "header length 1099511627776", "limit");
    }

    [Fact]
    public void Rejects_a_real_file_cut_short()
    {
        using var dir = new TempDir();
        var path = dir.Path("cut.safetensors");
        var bytes = File.ReadAllBytes(TensorFixtures.Lora0Safetensors);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        TensorAssert.Throws(path, () => SafeTensors.Load(path), "run past the end of the data section");
    }

    [Theory]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], ", 8, "not valid JSON")]
    [InlineData("[1, 2]", 0, "header is a JSON Array, not an object")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "tensor 'w'", "missing 'data_offsets'")]
    [InlineData("{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "tensor 'w'", "missing 'dtype'")]
    [InlineData("{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 2, "tensor 'w'", "unknown dtype 'F8_E4M3'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -3], \"data_offsets\": [0, 8]}}", 8, "tensor 'w'", "negative dimension -3")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", 12, "tensor 'w'", "shape [2, 2] of F32 needs 16 bytes", "hold 12")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8, "tensor 'w'", "data_offsets [0, 16] run past the end of the data section (8 bytes)")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 8, "tensor 'w'", "begin after they end")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", 24, "'a' [0, 16]", "'b' [8, 24]", "overlapping")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "tensor 'w' appears twice")]
    [InlineData("{\"__metadata__\": {\"format\": 1}}", 0, "__metadata__", "not a string")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [99999999999, 99999999999, 99999999999], \"data_offsets\": [0, 8]}}", 8, "tensor 'w'", "more than 2^63")]
    public void Rejects_a_malformed_header(string header, int dataBytes, params string[] expected)
    {
        using var dir = new TempDir();
        var path = dir.Path("bad.safetensors");
        RawSafetensors.Write(path, header, dataBytes);
        TensorAssert.Throws(path, () => SafeTensors.Load(path), expected);
        TensorAssert.Throws(path, () => SafeTensors.ReadHeader(path), expected); // the cheap path validates too
    }

    [Fact]
    public void Missing_file_names_the_file()
    {
        var path = Path.Combine(Path.GetTempPath(), "no-such-" + Guid.NewGuid().ToString("N") + ".safetensors");
        TensorAssert.Throws(path, () => SafeTensors.Load(path), "file not found");
    }

    private static void AssertFiniteAndNotAllZero(string name, torch.Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        Assert.True(t.isfinite().all().item<bool>(), $"{name} has non-finite values");
        Assert.True(t.ne(0).any().item<bool>(), $"{name} is all zeros");
    }
}
