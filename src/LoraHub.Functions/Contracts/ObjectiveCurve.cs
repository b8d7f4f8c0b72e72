namespace LoraHub.Functions.Contracts;

/// <summary>
/// The objective per evaluation as [evaluation, objective] points for the custom status (the watch page draws it
/// while the composition runs). At most <see cref="MaxPoints"/> points, so the status stays a few KB whatever the
/// budget (Durable's custom status is capped at 16 KB): longer histories keep each bucket's lowest objective.
/// </summary>
public static class ObjectiveCurve
{
    public const int MaxPoints = 200;

    public static IReadOnlyList<double[]> Of(IReadOnlyList<Evaluation> history)
    {
        var bucket = Math.Max(1, (history.Count + MaxPoints - 1) / MaxPoints);
        var points = new List<double[]>(Math.Min(history.Count, MaxPoints));
        for (var start = 0; start < history.Count; start += bucket)
        {
            var best = history[start];
            for (var i = start + 1; i < Math.Min(start + bucket, history.Count); i++)
                if (history[i].Objective < best.Objective) best = history[i];
            points.Add([best.Index, Math.Round(best.Objective, 6)]);
        }
        return points;
    }
}
