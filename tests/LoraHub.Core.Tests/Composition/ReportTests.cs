using LoraHub.Core.Composition;
using SkiaSharp;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

public sealed class ReportTests
{
    [Fact]
    public void The_report_is_a_png_with_the_curve_above_the_weight_bars()
    {
        var objectives = new[] { 3.0, 2.5, double.PositiveInfinity, 2.7, 1.9, 2.0 };
        var png = Report.RenderPng(objectives, ["a", "b", "a-rather-long-module-name-from-the-hub"], [0.5, -0.3, 1.2], "task");
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        using var bitmap = SKBitmap.Decode(png);
        Assert.Equal(900, bitmap.Width);
        Assert.True(bitmap.Height > 700);
        // Not blank: the plots drew something other than the background.
        var colours = new HashSet<uint>();
        for (var y = 0; y < bitmap.Height; y += 7)
        for (var x = 0; x < bitmap.Width; x += 7) colours.Add((uint)bitmap.GetPixel(x, y));
        Assert.True(colours.Count > 5);
    }
}
