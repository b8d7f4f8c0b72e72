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

public sealed class ToyDemoChartTests
{
    [Fact]
    public void The_demo_chart_groups_methods_by_task()
    {
        var rows = new List<LoraHub.Core.Toy.ToyDemoRow>();
        foreach (var task in new[] { "retrieval", "combination" })
        foreach (var (method, score) in new[] { ("base (zero-shot)", 0.0), ("best single module (x, oracle)", 0.9), ("LoraHub lorahub / cobyla", 0.7) })
            rows.Add(new LoraHub.Core.Toy.ToyDemoRow(task, "k", method, score, score, [score], null, null));
        var png = LoraHub.Core.Toy.ToyDemoChart.RenderPng(new LoraHub.Core.Toy.ToyDemoReport(rows, new LoraHub.Core.Toy.ToyDemoSettings(), 1, true));
        var path = Path.Combine(Path.GetTempPath(), "lorahub-demo-chart-test.png");
        File.WriteAllBytes(path, png);
        using var bitmap = SKBitmap.Decode(png);
        Assert.Equal(1400, bitmap.Width);
        Assert.Equal(560, bitmap.Height);
    }
}
