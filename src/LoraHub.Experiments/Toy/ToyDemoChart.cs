using ScottPlot;

namespace LoraHub.Experiments.Toy;

/// <summary>demo.png: mean exact match of every method, grouped by held-out task.</summary>
public static class ToyDemoChart
{
    public static byte[] RenderPng(ToyDemoReport report)
    {
        var plot = new Plot();
        var tasks = report.Rows.Select(r => r.Task).Distinct().ToList();
        var methods = report.Rows.Select(r => ShortMethod(r.Method)).Distinct().ToList();
        var palette = new ScottPlot.Palettes.Category20();
        var width = 0.8 / methods.Count;
        for (var m = 0; m < methods.Count; m++)
        {
            var bars = new List<Bar>();
            for (var t = 0; t < tasks.Count; t++)
            {
                var row = report.Rows.FirstOrDefault(r => r.Task == tasks[t] && ShortMethod(r.Method) == methods[m]);
                if (row is null) continue;
                bars.Add(new Bar { Position = t + (m - (methods.Count - 1) / 2.0) * width, Value = row.MeanExactMatch, Size = width * 0.9, FillColor = palette.GetColor(m) });
            }
            var series = plot.Add.Bars(bars);
            series.LegendText = methods[m];
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, tasks.Count).Select(i => (double)i).ToArray(), tasks.ToArray());
        plot.Axes.SetLimitsY(0, 1.05);
        plot.YLabel("exact match (mean over seeds)");
        plot.Title("LoraHub on the toy world's held-out tasks" + (report.Family == ToyWorld.Llama ? " (decoder-only Llama base)" : ""));
        plot.ShowLegend(Edge.Right); // outside the data area: 13 methods would cover the bars
        return plot.GetImageBytes(1400, 560, ImageFormat.Png);
    }

    // "best single module (mirror_letters, oracle)" names a different module per task: group them as one method.
    private static string ShortMethod(string method) => method.StartsWith("best single", StringComparison.Ordinal) ? "best single (oracle)"
        : method.StartsWith("hand-set", StringComparison.Ordinal) ? string.Join(' ', method.Split(' ').Take(2)) + " (ceiling)"
        : method.StartsWith("uniform", StringComparison.Ordinal) ? "uniform 1/K" : method;
}
