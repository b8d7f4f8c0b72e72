using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

/// <summary>
/// The readers' shared tables and checks: safetensors dtype names and element sizes (the file format's own table),
/// which dtypes are floating (what a cast touches), shape arithmetic that must not overflow, and the load-time
/// finiteness check's wording.
/// </summary>
public class DtypeTableTests
{
    public static TheoryData<string, torch.ScalarType, int> SafetensorsDtypes() => new()
    {
        { "F64", torch.ScalarType.Float64, 8 }, { "F32", torch.ScalarType.Float32, 4 }, { "F16", torch.ScalarType.Float16, 2 },
        { "BF16", torch.ScalarType.BFloat16, 2 }, { "I64", torch.ScalarType.Int64, 8 }, { "I32", torch.ScalarType.Int32, 4 },
        { "I16", torch.ScalarType.Int16, 2 }, { "I8", torch.ScalarType.Int8, 1 }, { "U8", torch.ScalarType.Byte, 1 },
        { "BOOL", torch.ScalarType.Bool, 1 },
    };

    [Theory]
    [MemberData(nameof(SafetensorsDtypes))]
    public void Safetensors_dtype_names_map_both_ways_with_their_element_size(string name, torch.ScalarType type, int size)
    {
        Assert.True(TensorIO.TryParseSafetensorsDtype(name, out var parsedType, out var parsedSize));
        Assert.Equal((type, size), (parsedType, parsedSize));
        Assert.True(TensorIO.TryGetSafetensorsDtype(type, out var gotName, out var gotSize));
        Assert.Equal((name, size), (gotName, gotSize));
        Assert.Equal(size, TensorIO.ElementSize(type));
        using var t = torch.zeros(1, dtype: type);
        Assert.Equal(size, (int)t.element_size());
        Assert.Equal(t.is_floating_point(), TensorIO.IsFloating(type));
    }

    [Fact]
    public void Dtypes_outside_the_table_are_reported_as_unsupported()
    {
        Assert.Equal("F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL", TensorIO.SupportedSafetensorsDtypes);
        Assert.False(TensorIO.TryParseSafetensorsDtype("f32", out var type, out var size)); // names are case-sensitive
        Assert.Equal((default(torch.ScalarType), 0), (type, size));
        Assert.False(TensorIO.TryParseSafetensorsDtype("F8_E4M3", out _, out _));
        Assert.False(TensorIO.TryGetSafetensorsDtype(torch.ScalarType.ComplexFloat32, out var name, out size));
        Assert.Equal(("", 0), (name, size));
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorIO.ElementSize(torch.ScalarType.ComplexFloat64));
        Assert.False(TensorIO.IsFloating(torch.ScalarType.ComplexFloat32));
    }

    [Fact]
    public void Element_counts_are_products_or_null_on_overflow()
    {
        Assert.Equal(1, TensorIO.CheckedNumel([]));
        Assert.Equal(0, TensorIO.CheckedNumel([5, 0, long.MaxValue]));
        Assert.Equal(24, TensorIO.CheckedNumel([2, 3, 4]));
        Assert.Equal(long.MaxValue, TensorIO.CheckedNumel([long.MaxValue, 1]));
        Assert.Null(TensorIO.CheckedNumel([1L << 32, 1L << 31]));
        Assert.Null(TensorIO.CheckedNumel([-1, long.MinValue]));
        Assert.Equal("[]", TensorIO.FormatShape([]));
        Assert.Equal("[2, -3]", TensorIO.FormatShape([2, -3]));
    }

    [Fact]
    public void Casting_changes_floating_tensors_only_and_keeps_a_tensor_already_of_the_type()
    {
        using var f = torch.ones(2, dtype: torch.ScalarType.Float16);
        using var i = torch.ones(2, dtype: torch.ScalarType.Int32);
        Assert.Same(f, TensorIO.CastIfFloating(f, null));
        Assert.Same(f, TensorIO.CastIfFloating(f, torch.ScalarType.Float16));
        Assert.Same(i, TensorIO.CastIfFloating(i, torch.ScalarType.Float32));
        using var cast = TensorIO.CastIfFloating(f, torch.ScalarType.Float32);
        Assert.Equal(torch.ScalarType.Float32, cast.dtype);
    }

    [Fact]
    public void Raw_bytes_are_read_only_into_contiguous_cpu_tensors_and_written_in_logical_order()
    {
        using var matrix = torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3);
        using var transposed = matrix.t();
        using var stream = new MemoryStream(new byte[24]);
        var e = Assert.Throws<ArgumentException>(() => TensorIO.ReadInto(stream, transposed));
        Assert.Contains("contiguous CPU tensor", e.Message);

        using var written = new MemoryStream();
        TensorIO.WriteRaw(written, transposed, chunkBytes: 8);
        Assert.Equal(PickleBuilder.Floats(0, 3, 1, 4, 2, 5), written.ToArray());
    }

    [Fact]
    public void Non_finite_values_are_counted_by_kind_and_other_tensors_pass()
    {
        using var mixed = torch.tensor(new[] { 1f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 0f });
        Assert.Equal("2 NaN and 2 infinite value(s)", NonFinite.Describe(mixed));
        using var half = torch.tensor(new[] { 1f, float.PositiveInfinity }).to_type(torch.ScalarType.Float16);
        Assert.Equal("0 NaN and 1 infinite value(s)", NonFinite.Describe(half));
        using var finite = torch.tensor(new[] { -3.4e38f, 3.4e38f, 0f });
        Assert.Null(NonFinite.Describe(finite));
        using var empty = torch.empty(0, 4);
        Assert.Null(NonFinite.Describe(empty));
        using var ints = torch.tensor(new[] { 1L, -1L });
        Assert.Null(NonFinite.Describe(ints));
    }
}
