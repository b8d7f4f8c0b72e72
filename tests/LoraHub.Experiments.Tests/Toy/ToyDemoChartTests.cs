using LoraHub.Core.Composition;
using SkiaSharp;
using Xunit;
using LoraHub.Experiments.Toy;

namespace LoraHub.Experiments.Tests.Toy;

public sealed class ToyDemoChartTests
{
    [Fact]
    public void The_demo_chart_groups_methods_by_task()
    {
        var rows = new List<ToyDemoRow>();
        foreach (var task in new[] { "retrieval", "combination" })
        foreach (var (method, score) in new[] { ("base (zero-shot)", 0.0), ("best single module (x, oracle)", 0.9), ("LoraHub lorahub / cobyla", 0.7) })
            rows.Add(new ToyDemoRow(task, "k", method, score, score, [score], null, null));
        var png = ToyDemoChart.RenderPng(new ToyDemoReport(rows, new ToyDemoSettings(), 1, true));
        var path = Path.Combine(Path.GetTempPath(), "lorahub-demo-chart-test.png");
        File.WriteAllBytes(path, png);
        using var bitmap = SKBitmap.Decode(png);
        Assert.Equal(1400, bitmap.Width);
        Assert.Equal(560, bitmap.Height);
    }
}
