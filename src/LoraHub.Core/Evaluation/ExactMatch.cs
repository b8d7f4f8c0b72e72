namespace LoraHub.Core.Evaluation;

/// <summary>The LoraHub paper's accuracy: exact match after strip(), lower() and removing "." from both strings.</summary>
public static class ExactMatch
{
    public static string Normalize(string s) => s.Trim().ToLowerInvariant().Replace(".", "", StringComparison.Ordinal);

    public static bool IsMatch(string prediction, string truth) => Normalize(prediction) == Normalize(truth);

    public static double Score(IReadOnlyList<string> predictions, IReadOnlyList<string> truths)
    {
        if (predictions.Count != truths.Count) throw new ArgumentException($"{predictions.Count} predictions for {truths.Count} truths");
        if (predictions.Count == 0) return 0;
        return predictions.Zip(truths).Count(p => IsMatch(p.First, p.Second)) / (double)predictions.Count;
    }
}
