using LoraHub.Core.Evaluation;
using System.Globalization;
using System.Text;
using ScottPlot;

namespace LoraHub.Experiments.Bbh;

/// <summary>results.json, results.md (the paper's table) and results.png (grouped bars) of a BIG-Bench Hard run.</summary>
public static class BbhReport
{
    public static void Write(string outDirectory, BbhResults results)
    {
        Directory.CreateDirectory(outDirectory);
        BbhJson.WriteAtomic(Path.Combine(outDirectory, BbhRunner.ResultsMarkdown), Markdown(results));
        BbhJson.WriteAtomic(Path.Combine(outDirectory, BbhRunner.ResultsChart), RenderPng(results));
        BbhJson.WriteAtomic(Path.Combine(outDirectory, BbhRunner.ResultsJson), BbhJson.Serialize(results)); // last: it names what is complete
    }

    private static string Pct(double? v) => v is { } x ? (100 * x).ToString("F1", CultureInfo.InvariantCulture) : "–";
    private static string Num(double v) => v.ToString("F1", CultureInfo.InvariantCulture);

    /// <summary>
    /// The paper's table: task | zero-shot | ICL | LoraHub avg | LoraHub best (exact match, %), one row per task and
    /// the average over tasks, then the tokens per example (LoraHub: the input; ICL: the few-shot prompt and the input).
    /// </summary>
    public static string Markdown(BbhResults results)
    {
        var p = results.Protocol;
        var md = new StringBuilder();
        md.AppendLine("# BIG-Bench Hard: LoraHub");
        md.AppendLine();
        md.AppendLine($"Base model `{p.BaseModel}`, pool of {p.Pool.Count} modules, K = {p.Select}, {p.Optimizer} with {p.Budget} evaluations, " +
                      $"seeds {string.Join(", ", p.Seeds)}, {p.Shots} shots per task. Exact match (%) after strip, lower and removing \".\".");
        md.AppendLine($"Split: {p.Split}. LoraHub avg and best: the mean and the maximum over the seeds.");
        if (!results.Complete) md.AppendLine($"Incomplete: still to run: {string.Join(", ", results.Pending)}.");
        md.AppendLine();
        md.AppendLine("| Task | Zero-shot | ICL | LoraHub avg | LoraHub best | Scored | Tokens LoraHub | Tokens ICL |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results.Tasks) md.AppendLine(Row(r, r.Task));
        if (results.Average is { } avg) md.AppendLine(Row(avg, "**Average**"));
        md.AppendLine();
        md.AppendLine($"Tokens: mean tokens per scored example with the base model's tokenizer (with EOS). {p.Prompt}.");
        md.AppendLine();
        md.AppendLine("Per seed (exact match %, modules chosen by the seed):");
        md.AppendLine();
        foreach (var r in results.Tasks)
            foreach (var s in r.Seeds ?? [])
                md.AppendLine($"- {r.Task}, seed {s.Seed}: {Pct(s.ExactMatch)} with {string.Join(", ", s.Modules)}");
        return md.ToString();
    }

    private static string Row(BbhRow r, string name) =>
        $"| {name} | {Pct(r.ZeroShot)} | {Pct(r.Icl)} | {Pct(r.LoraHubMean)} | {Pct(r.LoraHubBest)} | {r.Scored} | {Num(r.TokensLoraHub)} | {Num(r.TokensIcl)} |";

    /// <summary>Grouped bars per task (and the average): zero-shot, ICL, LoraHub avg, LoraHub best.</summary>
    public static byte[] RenderPng(BbhResults results)
    {
        var rows = results.Tasks.ToList();
        if (results.Average is { } avg) rows.Add(avg);
        var series = new List<(string Label, Color Color, Func<BbhRow, double?> Value)>
        {
            ("zero-shot", Colors.Gray, r => r.ZeroShot),
            ("ICL", Colors.Orange, r => r.Icl),
            ("LoraHub avg", Colors.SteelBlue, r => r.LoraHubMean),
            ("LoraHub best", Colors.Navy, r => r.LoraHubBest),
        };
        if (rows.All(r => r.Icl is null)) series.RemoveAt(1);
        var plot = new Plot();
        var group = series.Count + 1; // one empty slot between groups
        var bars = new List<Bar>();
        for (var i = 0; i < rows.Count; i++)
        for (var j = 0; j < series.Count; j++)
        {
            if (series[j].Value(rows[i]) is not { } v) continue;
            bars.Add(new Bar { Position = i * group + j, Value = 100 * v, FillColor = series[j].Color, LineWidth = 0 });
        }
        if (bars.Count > 0) plot.Add.Bars(bars);
        foreach (var s in series) plot.Legend.ManualItems.Add(new LegendItem { LabelText = s.Label, FillColor = s.Color });
        plot.ShowLegend(Alignment.UpperRight);
        var centers = Enumerable.Range(0, rows.Count).Select(i => i * group + (series.Count - 1) / 2.0).ToArray();
        plot.Axes.Bottom.SetTicks(centers, rows.Select(r => Short(r.Task)).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 170;
        plot.Axes.SetLimitsY(0, 100);
        plot.Axes.SetLimitsX(-1, Math.Max(1, rows.Count * group - 1));
        plot.YLabel("exact match (%)");
        plot.Title($"BIG-Bench Hard: {results.Protocol.BaseModel}, K = {results.Protocol.Select}, {results.Protocol.Seeds.Count} seed(s)");
        var width = Math.Max(900, 28 * series.Count * Math.Max(rows.Count, 1));
        return plot.GetImageBytes(width, 620, ImageFormat.Png);
    }

    private static string Short(string name) => name.Length <= 28 ? name : name[..12] + "…" + name[^14..];
}
