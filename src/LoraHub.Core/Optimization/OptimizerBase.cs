namespace LoraHub.Core.Optimization;

/// <summary>
/// The ask/tell bookkeeping every optimizer shares: the pending batch, the budget cap, the history
/// (which is the state), the best point and the sanitizing of bad values. Subclasses only propose
/// batches and learn from their values.
/// </summary>
internal abstract class OptimizerBase : IOptimizer
{
    private readonly List<double[]> points = [];
    private readonly List<double> values = [];
    private double[][]? pending;
    private int bestIndex = -1;

    protected OptimizerBase(OptimizerSettings settings)
    {
        Settings = settings;
        N = settings.Dimension;
        Lower = settings.Lower;
        Upper = settings.Upper;
    }

    public OptimizerSettings Settings { get; }
    protected int N { get; }
    protected double Lower { get; }
    protected double Upper { get; }

    public int Evaluations => values.Count;

    public bool IsDone => pending is null && (values.Count >= Settings.Budget || Converged);

    /// <summary>True when the method has nothing more to ask, whatever the budget.</summary>
    protected abstract bool Converged { get; }

    /// <summary>
    /// The next batch (inside the bounds). Called only when no batch is pending and the optimizer is not
    /// done. The base truncates it to the remaining budget, so <see cref="Observe"/> may see fewer points.
    /// </summary>
    protected abstract IReadOnlyList<double[]> Propose();

    /// <summary>The values of the (possibly truncated) proposed batch; values are finite or <see cref="Optimizers.WorstValue"/>.</summary>
    protected abstract void Observe(IReadOnlyList<double[]> batch, IReadOnlyList<double> batchValues);

    public IReadOnlyList<double[]> Ask()
    {
        if (pending is null)
        {
            if (IsDone) return [];
            var proposed = Propose();
            int remaining = Settings.Budget - values.Count;
            int count = Math.Min(proposed.Count, remaining);
            if (count == 0) return [];
            pending = new double[count][];
            for (int i = 0; i < count; i++)
            {
                var p = proposed[i];
                if (p.Length != N)
                    throw new InvalidOperationException($"Internal error: proposed point has {p.Length} coordinates, expected {N}.");
                for (int j = 0; j < N; j++)
                    if (!(p[j] >= Lower && p[j] <= Upper))
                        throw new InvalidOperationException($"Internal error: proposed coordinate {p[j]} is outside [{Lower}, {Upper}].");
                pending[i] = (double[])p.Clone();
            }
        }
        return Copy(pending);
    }

    public void Tell(IReadOnlyList<double> told)
    {
        ArgumentNullException.ThrowIfNull(told);
        if (pending is null)
            throw new InvalidOperationException("Tell called without a pending batch: call Ask first.");
        if (told.Count != pending.Length)
            throw new ArgumentException($"Expected {pending.Length} values (one per asked point), got {told.Count}.", nameof(told));
        var batch = pending;
        var clean = new double[batch.Length];
        for (int i = 0; i < batch.Length; i++)
        {
            clean[i] = double.IsFinite(told[i]) ? told[i] : Optimizers.WorstValue;
            points.Add(batch[i]);
            values.Add(clean[i]);
            if (bestIndex < 0 || clean[i] < values[bestIndex]) bestIndex = values.Count - 1;
        }
        pending = null;
        Observe(Copy(batch), clean);
    }

    public Candidate? Best => bestIndex < 0 ? null : new Candidate((double[])points[bestIndex].Clone(), values[bestIndex]);

    public OptimizerState State => new(Settings, Copy(points).ToList(), [.. values]);

    /// <summary>Clamps a coordinate into the bounds (also maps NaN to the lower bound, defensively).</summary>
    protected double Clip(double v) => v >= Upper ? Upper : v >= Lower ? v : Lower;

    private static double[][] Copy(IReadOnlyList<double[]> batch)
    {
        var copy = new double[batch.Count][];
        for (int i = 0; i < batch.Count; i++) copy[i] = (double[])batch[i].Clone();
        return copy;
    }
}
