using ScottPlot;
using SkiaSharp;

namespace LoraHub.Core.Composition;

/// <summary>report.png: the objective per evaluation (and the best so far) above a bar chart of the module weights.</summary>
public static class Report
{
    public static byte[] RenderPng(IReadOnlyList<double> objectives, IReadOnlyList<string> moduleNames, IReadOnlyList<double> weights, string title)
    {
        const int width = 900, height = 380;
        var curve = new Plot();
        var finite = objectives.Select((v, i) => (X: i + 1.0, Y: v)).Where(p => double.IsFinite(p.Y)).ToList();
        if (finite.Count > 0)
        {
            var evaluated = curve.Add.ScatterPoints(finite.Select(p => p.X).ToArray(), finite.Select(p => p.Y).ToArray());
            evaluated.LegendText = "objective";
            var best = new List<double>();
            var running = double.PositiveInfinity;
            foreach (var p in finite) best.Add(running = Math.Min(running, p.Y));
            var line = curve.Add.ScatterLine(finite.Select(p => p.X).ToArray(), best.ToArray());
            line.LegendText = "best so far";
            line.LineWidth = 2;
            curve.ShowLegend(Alignment.UpperRight);
        }
        curve.Title($"{title}: objective per evaluation");
        curve.XLabel("evaluation");
        curve.YLabel("loss + L1");

        var bars = new Plot();
        var barList = weights.Select((w, i) => new Bar { Position = i, Value = w, FillColor = w >= 0 ? Colors.SteelBlue : Colors.IndianRed }).ToList();
        bars.Add.Bars(barList);
        bars.Axes.Bottom.SetTicks(Enumerable.Range(0, weights.Count).Select(i => (double)i).ToArray(), moduleNames.Select(Short).ToArray());
        bars.Axes.Bottom.TickLabelStyle.Rotation = weights.Count > 6 ? 45 : 0;
        bars.Axes.Bottom.TickLabelStyle.Alignment = weights.Count > 6 ? Alignment.MiddleLeft : Alignment.UpperCenter;
        bars.Title("module weights");
        bars.YLabel("weight");
        bars.Add.HorizontalLine(0, color: Colors.Black);

        using var top = SKBitmap.Decode(curve.GetImageBytes(width, height, ImageFormat.Png));
        using var bottom = SKBitmap.Decode(bars.GetImageBytes(width, height + 60, ImageFormat.Png));
        using var surface = SKSurface.Create(new SKImageInfo(width, top.Height + bottom.Height));
        surface.Canvas.Clear(SKColors.White);
        surface.Canvas.DrawBitmap(top, 0, 0);
        surface.Canvas.DrawBitmap(bottom, 0, top.Height);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 90);
        return data.ToArray();
    }

    private static string Short(string name) => name.Length <= 24 ? name : name[..10] + "…" + name[^12..];
}
