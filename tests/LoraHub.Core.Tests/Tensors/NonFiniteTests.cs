using LoraHub.Core.Tensors;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Tensors;

/// <summary>The load-time finiteness check: exact for every floating type, even at the largest finite values.</summary>
public sealed class NonFiniteTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 3.4028234663852886e38)]
    [InlineData(ScalarType.BFloat16, 3.3895313892515355e38)]
    [InlineData(ScalarType.Float16, 65504.0)]
    [InlineData(ScalarType.Float64, double.MaxValue)]
    public void The_largest_finite_values_in_bulk_are_finite(ScalarType dtype, double max)
    {
        using var t = full(100_000, max, dtype: dtype);
        Assert.Null(NonFinite.Describe(t));
        using var negative = full(100_000, -max, dtype: dtype);
        Assert.Null(NonFinite.Describe(negative));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.Float64)]
    public void NaN_and_infinities_are_counted(ScalarType dtype)
    {
        using var t = ones(1000, dtype: dtype);
        t[3] = tensor(double.NaN);
        Assert.Equal("1 NaN and 0 infinite value(s)", NonFinite.Describe(t));
        t[3] = tensor(1.0);
        // +Inf and -Inf together sum to NaN, not to a finite number.
        t[5] = tensor(double.PositiveInfinity);
        t[7] = tensor(double.NegativeInfinity);
        Assert.Equal("0 NaN and 2 infinite value(s)", NonFinite.Describe(t));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(1L << 20)]
    [InlineData(2_500_000L - 1)]
    public void A_bad_value_in_any_slice_of_a_large_tensor_is_found(long at)
    {
        using var t = zeros(2, 1_250_000); // 2.5 M values: checked in three slices of 1 M
        t.view(-1)[at] = tensor(double.PositiveInfinity);
        Assert.Equal("0 NaN and 1 infinite value(s)", NonFinite.Describe(t));
    }

    [Fact]
    public void Integer_and_empty_tensors_are_not_checked()
    {
        Assert.Null(NonFinite.Describe(ones(4, dtype: ScalarType.Int64)));
        Assert.Null(NonFinite.Describe(empty(0)));
    }
}
