namespace LoraHub.Core.Optimization;

/// <summary>
/// Baseline: uniform samples in the box, seeded, in batches of Population (default 8). The first point
/// is the start, so the result is never worse than the start.
/// </summary>
internal sealed class RandomSearch : OptimizerBase
{
    public const int DefaultBatch = 8;

    private readonly SeededRandom rng;
    private readonly int batchSize;
    private bool started;

    public RandomSearch(OptimizerSettings settings) : base(settings)
    {
        rng = new SeededRandom(settings.Seed);
        batchSize = settings.Population ?? DefaultBatch;
    }

    protected override bool Converged => false;

    protected override IReadOnlyList<double[]> Propose()
    {
        // Only the points that fit the budget are drawn, so the stream does not depend on truncation.
        int count = Math.Min(batchSize, Settings.Budget - Evaluations);
        var batch = new double[count][];
        for (int k = 0; k < count; k++)
        {
            if (!started)
            {
                batch[k] = Settings.StartPoint();
                started = true;
                continue;
            }
            var x = new double[N];
            for (int i = 0; i < N; i++) x[i] = Clip(Lower + (Upper - Lower) * rng.NextDouble());
            batch[k] = x;
        }
        return batch;
    }

    protected override void Observe(IReadOnlyList<double[]> batch, IReadOnlyList<double> values) { }
}
