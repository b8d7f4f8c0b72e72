namespace LoraHub.Core.Optimization;

/// <summary>
/// "cobyla-ranked": rank, then search few. Round 1 asks the start and each weight alone one step (InitialStep) away,
/// n + 1 points in one parallel batch (the same points as cobyla-parallel's first batch). The m weights whose probe
/// scored best (m = Population, default <see cref="DefaultSubspace"/>) are then searched by COBYLA in m dimensions,
/// the other n - m weights pinned at their start value (0 by default: those modules stay out of the merge).
///
/// Why: at K = 20 and 40 evaluations, COBYLA in 20 dimensions spends 21 evaluations on its simplex and has 19 left
/// for its linear models in 20 unknowns; a LoraHub task needs a few modules, and their probes rank them first. The
/// subspace COBYLA's own simplex (the start and the m probes) is already evaluated, so it starts searching at once:
/// all remaining evaluations go to trust-region steps in m dimensions. Rounds: 1 + (budget - n - 1), 20 at n = 20
/// and budget 40. When the budget ends inside the probe round this is cobyla-parallel.
///
/// The inner COBYLA runs unchanged (Powell's cobyla-parallel start in m dimensions); the points it asks that were
/// already evaluated (bit-identical after embedding) are answered from the history, so nothing is evaluated twice.
/// No random numbers: the seed is unused, and everything is a pure function of the told values (replay-safe).
/// </summary>
internal sealed class RankedCobyla : OptimizerBase
{
    public const int DefaultSubspace = 5;

    private readonly int subspace;
    private readonly double[] start;
    private readonly Dictionary<PointKey, double> seen = new();
    private IOptimizer? inner;
    private int[] chosen = [];
    private IReadOnlyList<double[]>? innerBatch;
    private bool probed;

    public RankedCobyla(OptimizerSettings settings) : base(settings)
    {
        subspace = Math.Min(settings.Population ?? DefaultSubspace, N);
        start = settings.StartPoint();
    }

    /// <summary>The weights searched after the probe round (0-based, ascending); empty before it.</summary>
    public IReadOnlyList<int> Chosen => chosen;

    protected override bool Converged => probed && (inner is null || (innerBatch is null && inner.IsDone));

    protected override IReadOnlyList<double[]> Propose()
    {
        if (!probed)
        {
            var batch = new double[N + 1][];
            batch[0] = (double[])start.Clone();
            for (int j = 0; j < N; j++)
            {
                batch[j + 1] = (double[])start.Clone();
                batch[j + 1][j] = Clip(start[j] + Settings.InitialStep);
            }
            return batch;
        }
        return Pending() ?? [];
    }

    protected override void Observe(IReadOnlyList<double[]> batch, IReadOnlyList<double> values)
    {
        for (int i = 0; i < batch.Count; i++) seen.TryAdd(new PointKey(batch[i]), values[i]);
        if (!probed)
        {
            probed = true;
            if (batch.Count < N + 1 || Evaluations >= Settings.Budget) return; // the budget ended in the probe round
            // The m best probes (ties: the lower index), searched in index order.
            chosen = Enumerable.Range(0, N).OrderBy(j => values[j + 1]).ThenBy(j => j).Take(subspace).Order().ToArray();
            var innerStart = chosen.Select(j => start[j]).ToArray();
            inner = Optimizers.Create(new OptimizerSettings("cobyla-parallel", subspace, subspace + 1 + Settings.Budget - Evaluations,
                Settings.Lower, Settings.Upper, Settings.InitialStep, Settings.Seed, null, innerStart));
            return;
        }
        if (innerBatch is null) return;
        var told = new double[innerBatch.Count];
        for (int i = 0; i < innerBatch.Count; i++)
        {
            if (!seen.TryGetValue(new PointKey(Embed(innerBatch[i])), out told[i]))
            {
                inner = null; // the outer budget cut the batch short: nothing more to ask
                innerBatch = null;
                return;
            }
        }
        innerBatch = null;
        inner!.Tell(told);
    }

    /// <summary>
    /// The full points of the inner optimizer's next batch that still need evaluating (distinct, in order); batches
    /// whose points are all known are told at once. Null when the inner optimizer is done.
    /// </summary>
    private List<double[]>? Pending()
    {
        if (inner is null) return null;
        while (true)
        {
            innerBatch ??= inner.IsDone ? null : inner.Ask();
            if (innerBatch is null || innerBatch.Count == 0)
            {
                innerBatch = null;
                return null;
            }
            var missing = new List<double[]>();
            var keys = new HashSet<PointKey>();
            foreach (var p in innerBatch)
            {
                var full = Embed(p);
                var key = new PointKey(full);
                if (!seen.ContainsKey(key) && keys.Add(key)) missing.Add(full);
            }
            if (missing.Count > 0) return missing;
            var told = innerBatch.Select(p => seen[new PointKey(Embed(p))]).ToList();
            innerBatch = null;
            inner.Tell(told);
        }
    }

    private double[] Embed(double[] sub)
    {
        var full = (double[])start.Clone();
        for (int k = 0; k < chosen.Length; k++) full[chosen[k]] = sub[k];
        return full;
    }
}

/// <summary>A point as a dictionary key: equal when every coordinate has the same bits.</summary>
internal readonly struct PointKey(double[] point) : IEquatable<PointKey>
{
    private readonly double[] point = point;

    public bool Equals(PointKey other)
    {
        if (point.Length != other.point.Length) return false;
        for (int i = 0; i < point.Length; i++)
            if (BitConverter.DoubleToInt64Bits(point[i]) != BitConverter.DoubleToInt64Bits(other.point[i])) return false;
        return true;
    }

    public override bool Equals(object? obj) => obj is PointKey other && Equals(other);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var v in point) hash.Add(BitConverter.DoubleToInt64Bits(v));
        return hash.ToHashCode();
    }
}
