using LoraHub.Core.Lora;
using LoraHub.Core.Models;

namespace LoraHub.Core.Composition;

/// <summary>One objective evaluation: mean few-shot loss, the L1 term and their sum.</summary>
public sealed record ObjectiveValue(double Loss, double L1, double Value, double[] ExampleLosses);

/// <summary>
/// LoraHub's objective: the mean over examples of each example's mean token cross-entropy (exactly what
/// `lorahub score` prints) plus l1 * mean |w|. With one padded batch the reference divides a token mean by the
/// number of examples instead, which weighs its L1 term about 5 times more: compare with care.
/// </summary>
public sealed class FewShotObjective(ComposedModel composed, IReadOnlyList<TokenizedExample> examples, double l1Coefficient = 0.05, int maxRowsPerForward = 64)
{
    public ComposedModel Composed { get; } = composed;
    public IReadOnlyList<TokenizedExample> Examples { get; } = examples;
    public double L1Coefficient { get; } = l1Coefficient;

    private IAdaptableModel Model => Composed.Model;

    public double L1(IReadOnlyList<double> w) => L1Coefficient * w.Average(Math.Abs);

    public ObjectiveValue Evaluate(IReadOnlyList<double> w)
    {
        Composed.SetWeights(w);
        var losses = Examples.Chunk(maxRowsPerForward).SelectMany(c => Model.ExampleLosses(c)).ToArray();
        return Value(losses, w);
    }

    /// <summary>
    /// Several candidates in as few forward passes as fit maxRowsPerForward rows: the examples are repeated once
    /// per candidate and each repetition runs with its own adapter (LoraLinear's grouped mode).
    /// </summary>
    public IReadOnlyList<ObjectiveValue> EvaluateMany(IReadOnlyList<IReadOnlyList<double>> candidates)
    {
        var perForward = Math.Max(1, maxRowsPerForward / Math.Max(1, Examples.Count));
        if (perForward == 1 || candidates.Count == 1) return candidates.Select(Evaluate).ToList();
        var results = new List<ObjectiveValue>(candidates.Count);
        foreach (var group in candidates.Chunk(perForward))
        {
            Composed.SetCandidates(group);
            var rows = group.SelectMany(_ => Examples).ToList();
            var losses = Model.ExampleLosses(rows, group.Length);
            for (var c = 0; c < group.Length; c++)
                results.Add(Value(losses.Skip(c * Examples.Count).Take(Examples.Count).ToArray(), group[c]));
        }
        Composed.Clear();
        return results;
    }

    private ObjectiveValue Value(double[] losses, IReadOnlyList<double> w)
    {
        var loss = losses.Average();
        var l1 = L1(w);
        // A diverged composition scores worst instead of poisoning the optimizer with NaN.
        var value = double.IsFinite(loss) ? loss + l1 : double.PositiveInfinity;
        return new ObjectiveValue(loss, l1, value, losses);
    }
}
