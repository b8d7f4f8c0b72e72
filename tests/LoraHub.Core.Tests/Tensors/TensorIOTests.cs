using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

/// <summary>Large tensors move in slices; small slice sizes exercise that path on small data.</summary>
public class TensorIOTests
{
    [Theory]
    [InlineData(1)]   // smaller than one element: one element per slice
    [InlineData(12)]  // three floats per slice, last slice partial
    [InlineData(1 << 20)]
    public void Sliced_write_then_read_round_trips(long chunkBytes)
    {
        using var source = torch.arange(0, 11, dtype: torch.ScalarType.Float32).reshape(11);
        using var buffer = new MemoryStream();
        TensorIO.WriteRaw(buffer, source, chunkBytes);
        Assert.Equal(44, buffer.Length);

        buffer.Position = 0;
        using var read = TensorIO.ReadFlat(buffer, torch.ScalarType.Float32, 11, chunkBytes);
        TensorAssert.Equal(source, read);
    }

    [Fact]
    public void Reading_past_the_end_of_the_stream_throws_and_frees_the_tensor()
    {
        using var buffer = new MemoryStream(new byte[10]);
        Assert.Throws<EndOfStreamException>(() => TensorIO.ReadFlat(buffer, torch.ScalarType.Float32, 3, chunkBytes: 4));
    }
}
