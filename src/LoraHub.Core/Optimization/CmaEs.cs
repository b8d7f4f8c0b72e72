namespace LoraHub.Core.Optimization;

/// <summary>
/// (mu/mu_w, lambda)-CMA-ES as in Hansen's tutorial ("The CMA Evolution Strategy: A Tutorial",
/// arXiv:1604.00772): positive log weights, cumulative step-size adaptation, rank-one plus rank-mu
/// covariance update, C = B D^2 B^T by Jacobi. One generation is one Ask batch of lambda points.
///
/// Bounds: pycma's default, BoundTransform (cma.transformations.BoxConstraintsLinQuadTransformation).
/// CMA-ES runs unconstrained on g(x) = f(T(x)), where T maps every real coordinate into [Lower, Upper]:
/// identity inside, quadratic within a margin a = min((Upper - Lower) / 2, (1 + |bound|) / 20) of each bound
/// (0.125 for the default box), mirrored and periodic beyond. The evaluated, recorded point is T(x); the
/// update uses the sampled x. Because T is flat at the bound, an optimum on the bound becomes a smooth
/// minimum of g and CMA-ES converges to it as fast as to an interior one (plain mirroring or clipping
/// leave a kink there, and converged only to about 1e-3 in our tests). No penalty scale to tune, and
/// every asked point is inside the box.
///
/// Stops early when sigma times the largest axis of C falls below 1e-12 times sigma0 or the condition
/// number of C exceeds 1e14 (pycma's tolx and tolconditioncov).
/// </summary>
internal sealed class CmaEs : OptimizerBase
{
    private readonly int lambda, mu;
    private readonly double[] weights;
    private readonly double mueff, cc, cs, c1, cmu, damps, chiN, sigma0;
    private readonly SeededRandom rng;

    private readonly double[] mean;
    private double sigma;
    private readonly double[,] c;        // covariance matrix C
    private double[,] b;                 // eigenvectors of C (columns)
    private double[] d;                  // sqrt of the eigenvalues of C
    private readonly double[] pc, ps;    // evolution paths
    private double psDecay = 1;          // (1 - cs)^(2 g) after g generations
    private bool converged;
    private readonly double marginLow, marginHigh; // the a of the bound transform at each bound
    private double[][]? samples;         // the current generation as sampled (before the bound transform)

    public CmaEs(OptimizerSettings settings) : base(settings)
    {
        lambda = settings.Population ?? 4 + (int)Math.Floor(3 * ExactMath.Log(N));
        if (lambda < 2) throw new ArgumentException($"CMA-ES needs a population of at least 2 (got {lambda}).", nameof(settings));
        mu = lambda / 2;

        // w_i proportional to ln((lambda + 1) / 2) - ln i, i = 1..mu, summing to 1.
        weights = new double[mu];
        double sum = 0;
        for (int i = 0; i < mu; i++) sum += weights[i] = ExactMath.Log((lambda + 1) / 2.0) - ExactMath.Log(i + 1);
        double sumSq = 0;
        for (int i = 0; i < mu; i++) { weights[i] /= sum; sumSq += weights[i] * weights[i]; }
        mueff = 1 / sumSq;

        // Default strategy parameters (tutorial, table 1).
        cc = (4 + mueff / N) / (N + 4 + 2 * mueff / N);
        cs = (mueff + 2) / (N + mueff + 5);
        c1 = 2 / ((N + 1.3) * (N + 1.3) + mueff);
        cmu = Math.Min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((N + 2) * (N + 2) + mueff));
        damps = 1 + 2 * Math.Max(0, Math.Sqrt((mueff - 1) / (N + 1)) - 1) + cs;
        chiN = Math.Sqrt(N) * (1 - 1.0 / (4 * N) + 1.0 / (21.0 * N * N));

        rng = new SeededRandom(settings.Seed);
        marginLow = Math.Min((Upper - Lower) / 2, (1 + Math.Abs(Lower)) / 20);
        marginHigh = Math.Min((Upper - Lower) / 2, (1 + Math.Abs(Upper)) / 20);
        mean = settings.StartPoint().Select(InverseTransform).ToArray(); // so that T(mean) = Start
        sigma = sigma0 = settings.InitialStep;
        c = Identity(N);
        b = Identity(N);
        d = Enumerable.Repeat(1.0, N).ToArray();
        pc = new double[N];
        ps = new double[N];
    }

    protected override bool Converged => converged;

    protected override IReadOnlyList<double[]> Propose()
    {
        samples = new double[lambda][];
        var evaluate = new double[lambda][];
        var z = new double[N];
        for (int k = 0; k < lambda; k++)
        {
            for (int i = 0; i < N; i++) z[i] = d[i] * rng.NextGaussian();
            var x = new double[N];
            for (int i = 0; i < N; i++)
            {
                double y = 0;
                for (int j = 0; j < N; j++) y += b[i, j] * z[j];
                x[i] = mean[i] + sigma * y;
            }
            samples[k] = x;
            evaluate[k] = x.Select(Transform).ToArray();
        }
        return evaluate;
    }

    protected override void Observe(IReadOnlyList<double[]> batch, IReadOnlyList<double> values)
    {
        var points = samples!;
        samples = null;
        if (batch.Count < lambda) return; // final generation cut by the budget: nothing left to learn for

        // Rank: best first, ties by sampling order (deterministic).
        var order = Enumerable.Range(0, lambda).ToArray();
        Array.Sort(order, (i, j) => values[i] != values[j] ? values[i].CompareTo(values[j]) : i.CompareTo(j));

        var oldMean = (double[])mean.Clone();
        for (int i = 0; i < N; i++)
        {
            double m = 0;
            for (int k = 0; k < mu; k++) m += weights[k] * points[order[k]][i];
            mean[i] = m;
        }
        var yw = new double[N];
        for (int i = 0; i < N; i++) yw[i] = (mean[i] - oldMean[i]) / sigma;

        // Step-size path: ps = (1 - cs) ps + sqrt(cs (2 - cs) mueff) C^{-1/2} yw, C^{-1/2} = B D^-1 B^T.
        var bty = new double[N];
        for (int j = 0; j < N; j++)
        {
            double s = 0;
            for (int i = 0; i < N; i++) s += b[i, j] * yw[i];
            bty[j] = s / d[j];
        }
        double csn = Math.Sqrt(cs * (2 - cs) * mueff);
        for (int i = 0; i < N; i++)
        {
            double s = 0;
            for (int j = 0; j < N; j++) s += b[i, j] * bty[j];
            ps[i] = (1 - cs) * ps[i] + csn * s;
        }
        double psNorm = Norm(ps);

        psDecay *= (1 - cs) * (1 - cs);
        bool hsig = psNorm / Math.Sqrt(1 - psDecay) / chiN < 1.4 + 2.0 / (N + 1);

        double ccn = Math.Sqrt(cc * (2 - cc) * mueff);
        for (int i = 0; i < N; i++) pc[i] = (1 - cc) * pc[i] + (hsig ? ccn * yw[i] : 0);

        // C = (1 - c1 - cmu) C + c1 (pc pc^T + (1 - hsig) cc (2 - cc) C) + cmu sum_k w_k y_k y_k^T.
        double rankOneCorrection = hsig ? 0 : c1 * cc * (2 - cc);
        var ys = new double[mu][];
        for (int k = 0; k < mu; k++)
        {
            ys[k] = new double[N];
            for (int i = 0; i < N; i++) ys[k][i] = (points[order[k]][i] - oldMean[i]) / sigma;
        }
        for (int i = 0; i < N; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double rankMu = 0;
                for (int k = 0; k < mu; k++) rankMu += weights[k] * ys[k][i] * ys[k][j];
                double v = (1 - c1 - cmu + rankOneCorrection) * c[i, j] + c1 * pc[i] * pc[j] + cmu * rankMu;
                c[i, j] = c[j, i] = v;
            }
        }

        // Cumulative step-size adaptation; the exponent is capped at 1 as in pycma.
        sigma *= ExactMath.Exp(Math.Min(1, cs / damps * (psNorm / chiN - 1)));

        var (eigenvalues, vectors) = SymmetricEigen.Decompose(c);
        double maxEig = 0, minEig = double.PositiveInfinity;
        foreach (var e in eigenvalues) { maxEig = Math.Max(maxEig, e); minEig = Math.Min(minEig, e); }
        if (!(minEig > 0) || !double.IsFinite(maxEig) || !double.IsFinite(sigma))
        {
            converged = true; // numerically broken: stop with the best point so far
            return;
        }
        b = vectors;
        d = eigenvalues.Select(Math.Sqrt).ToArray();
        if (sigma * Math.Sqrt(maxEig) < 1e-12 * sigma0 || maxEig / minEig > 1e14) converged = true;
    }

    /// <summary>The bound transform T of one coordinate (pycma's BoxConstraintsLinQuadTransformation).</summary>
    private double Transform(double x)
    {
        double lb = Lower, ub = Upper, al = marginLow, au = marginHigh;
        if (x >= lb + al && x <= ub - au) return x;
        if (x < lb - 2 * al - (ub - lb) / 2 || x > ub + 2 * au + (ub - lb) / 2)
        {
            double period = 2 * (ub - lb + al + au);
            double origin = lb - 2 * al - (ub - lb) / 2;
            x -= period * Math.Floor((x - origin) / period); // shift by whole periods
        }
        if (x > ub + au) x -= 2 * (x - ub - au);             // mirror at ub + au
        if (x < lb - al) x += 2 * (lb - al - x);             // mirror at lb - al
        double y;
        if (x < lb + al) y = lb + (x - (lb - al)) * (x - (lb - al)) / 4 / al;
        else if (x < ub - au) y = x;
        else y = ub - (x - (ub + au)) * (x - (ub + au)) / 4 / au;
        return Clip(y); // rounding guard; also maps NaN into the box
    }

    /// <summary>The inverse of <see cref="Transform"/> on [Lower, Upper].</summary>
    private double InverseTransform(double y)
    {
        if (y < Lower + marginLow) return Lower - marginLow + 2 * Math.Sqrt(marginLow * (y - Lower));
        if (y < Upper - marginHigh) return y;
        return Upper + marginHigh - 2 * Math.Sqrt(marginHigh * (Upper - y));
    }

    private static double Norm(double[] v)
    {
        double s = 0;
        foreach (var x in v) s += x * x;
        return Math.Sqrt(s);
    }

    private static double[,] Identity(int n)
    {
        var m = new double[n, n];
        for (int i = 0; i < n; i++) m[i, i] = 1;
        return m;
    }
}
