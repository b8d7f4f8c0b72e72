namespace LoraHub.Core.Optimization;

/// <summary>
/// "quadratic-ranked": rank, then fit a quadratic model of the few weights that matter, in a handful of parallel
/// rounds. With one shared A the LoraHub merge is (Σw)·Σ w_i ΔW_i, so near the good weights the loss is a smooth
/// low-degree function of w; in m dimensions a full quadratic has (m + 1)(m + 2)/2 coefficients.
/// <list type="number">
/// <item>Round 1 (n + 1 points): the start and each weight alone one step (InitialStep) away, as cobyla-ranked.</item>
/// <item>The m best probes (m = Population, default 4) span the model's subspace; the other weights stay at the start.</item>
/// <item>Round 2: the points that complete an interpolating design, the start plus one step along every pair of the m
/// (m(m-1)/2 points) and two steps along each (m points): with round 1 exactly (m + 1)(m + 2)/2 points.</item>
/// <item>Then rounds of <see cref="StepsPerRound"/> points: the model (least squares on every point of the subspace) is
/// minimized in the box intersected with cubes of radius Δ/2, Δ and 2Δ around the best point (projected coordinate
/// descent; exact on each coordinate); Δ becomes the radius that improved, or halves when none did.</item>
/// </list>
/// Rounds at n = 20, m = 4 and budget 40: 1 + 1 + 3 = 5.
///
/// "quadratic-greedy" (the default, docs/search.md) probes in <see cref="GreedyProbeRounds"/> rounds instead, each from
/// the best point so far, so modules that help accumulate as in Powell's serial start (a pair of needed modules in
/// different rounds ends up at +0.5 each, where the merge gives each 0.5); its model covers the weights the best point
/// moved, then the best probes, and its design adds the single steps from the start it lacks. Rounds at n = 20 and
/// budget 40: 4 + 1 + 3 = 8; at budget 20 it stops after its probe rounds (4).
///
/// Deterministic, no random numbers (the seed is unused): every point is a pure function of the told values, so it
/// replays; a smaller budget asks a prefix of a larger one's points.
/// </summary>
internal sealed class RankedQuadratic : OptimizerBase
{
    public const int DefaultSubspace = 4;
    public const int StepsPerRound = 3;
    public const int GreedyProbeRounds = 4;

    private readonly int m;
    private readonly double[] start;
    private readonly List<(double[] Point, double Value)> seen = [];
    private int phase; // 0: probes; 1: design; 2: model steps; 3: done
    private int[] chosen = [];
    private double delta;

    private readonly int probeBlock;
    private int probedUpTo; // coordinates [0, probedUpTo) have been probed
    private readonly double[] probeValue;

    /// <param name="probeRounds">1: every weight probed from the start in one round ("quadratic-ranked"); more: the
    /// weights are probed in that many rounds, each from the best point so far ("quadratic-greedy"), so improving
    /// modules accumulate as in Powell's serial start.</param>
    public RankedQuadratic(OptimizerSettings settings, int probeRounds = 1) : base(settings)
    {
        m = Math.Min(settings.Population ?? DefaultSubspace, N);
        probeBlock = (N + Math.Max(1, probeRounds) - 1) / Math.Max(1, probeRounds);
        probeValue = new double[N];
        start = settings.StartPoint();
        delta = 2 * settings.InitialStep;
    }

    protected override bool Converged => phase == 3;

    protected override IReadOnlyList<double[]> Propose()
    {
        switch (phase)
        {
            case 0:
            {
                // Probe the next block of weights one step from the best point so far (round 1: from the start, with it).
                var batch = new List<double[]>();
                var from = probedUpTo == 0 ? start : seen.MinBy(v => v.Value).Point;
                if (probedUpTo == 0) batch.Add((double[])start.Clone());
                for (int j = probedUpTo; j < Math.Min(N, probedUpTo + probeBlock); j++)
                {
                    var p = (double[])from.Clone();
                    p[j] = Clip(from[j] + Settings.InitialStep);
                    batch.Add(p);
                }
                return batch;
            }
            case 1:
            {
                var batch = new List<double[]>();
                for (int a = 0; a < m; a++) batch.Add(Step(chosen[a], 1));
                for (int a = 0; a < m; a++)
                for (int b = a + 1; b < m; b++)
                {
                    var p = Step(chosen[a], 1);
                    p[chosen[b]] = Clip(start[chosen[b]] + Settings.InitialStep);
                    batch.Add(p);
                }
                for (int a = 0; a < m; a++) batch.Add(Step(chosen[a], 2));
                var design = Distinct(batch);
                if (design.Count > 0) return design;
                phase = 2; // everything was evaluated already (a start on the bound)
                goto default;
            }
            default:
                // When the model's minimizers were all evaluated already, shrink the radius; give up at a tiny one.
                for (int attempt = 0; attempt < 40; attempt++, delta /= 2)
                {
                    var steps = ModelSteps();
                    if (steps.Count > 0) return steps;
                }
                phase = 3;
                return [];
        }
    }

    protected override void Observe(IReadOnlyList<double[]> batch, IReadOnlyList<double> values)
    {
        double bestBefore = seen.Count == 0 ? double.PositiveInfinity : seen.Min(s => s.Value);
        for (int i = 0; i < batch.Count; i++) seen.Add((batch[i], values[i]));
        if (phase == 0)
        {
            int first = probedUpTo == 0 ? 1 : 0; // round 1 starts with the start itself
            int expected = Math.Min(N, probedUpTo + probeBlock) - probedUpTo + first;
            if (batch.Count < expected)
            {
                phase = 3; // the budget ended inside a probe round
                return;
            }
            for (int i = first; i < batch.Count; i++) probeValue[probedUpTo + i - first] = values[i];
            probedUpTo = Math.Min(N, probedUpTo + probeBlock);
            if (probedUpTo < N) return;
            // The model covers the weights the best point moved (they made it best), then the best probes.
            var best = seen.MinBy(v => v.Value).Point;
            var moved = Enumerable.Range(0, N).Where(j => best[j] != start[j]);
            var ranked = Enumerable.Range(0, N).OrderBy(j => probeValue[j]).ThenBy(j => j);
            chosen = moved.Concat(ranked).Distinct().Take(m).Order().ToArray();
            phase = 1;
        }
        else if (phase == 1)
        {
            phase = 2;
        }
        else
        {
            // The radius that found the round's best point, if it improved; otherwise shrink.
            int best = Enumerable.Range(0, values.Count).MinBy(i => values[i]);
            delta = values[best] < bestBefore ? lastRadii[best] : delta / 2;
        }
    }

    private double[] lastRadii = [];

    private double[] Step(int j, int steps)
    {
        var p = (double[])start.Clone();
        p[j] = Clip(start[j] + steps * Settings.InitialStep);
        return p;
    }

    private List<double[]> Distinct(List<double[]> points)
    {
        var keys = new HashSet<PointKey>(seen.Select(s => new PointKey(s.Point)));
        return points.Where(p => keys.Add(new PointKey(p))).ToList();
    }

    /// <summary>Minimizers of the fitted model within three trust radii, new points only (may be empty: then done).</summary>
    private List<double[]> ModelSteps()
    {
        var sub = seen.Where(s => InSubspace(s.Point)).ToList();
        var coefficients = Fit(sub);
        var best = sub.MinBy(s => s.Value).Point;
        var center = chosen.Select(j => best[j]).ToArray();
        var radii = new[] { delta / 2, delta, 2 * delta };
        var steps = new List<double[]>();
        var used = new List<double>();
        var keys = new HashSet<PointKey>(seen.Select(s => new PointKey(s.Point)));
        double[]? first = null;
        foreach (var r in radii)
        {
            var y = MinimizeModel(coefficients, center, r);
            first ??= y;
            var p = (double[])start.Clone();
            for (int k = 0; k < m; k++) p[chosen[k]] = y[k];
            if (!keys.Add(new PointKey(p))) continue;
            steps.Add(p);
            used.Add(r);
        }
        // When radii give the same minimizer (it lies inside them all), spend the round's other points on the model:
        // the minimizer moved half a radius along each weight in turn, which sharpens the fit where it matters.
        for (int k = 0; k < 2 * m && steps.Count < StepsPerRound; k++)
        {
            var p = (double[])start.Clone();
            for (int l = 0; l < m; l++) p[chosen[l]] = first![l];
            p[chosen[k / 2]] = Clip(first![k / 2] + (k % 2 == 0 ? 0.5 : -0.5) * delta);
            if (!keys.Add(new PointKey(p))) continue;
            steps.Add(p);
            used.Add(delta);
        }
        lastRadii = [.. used];
        return steps;
    }

    private bool InSubspace(double[] p)
    {
        for (int j = 0; j < N; j++)
            if (p[j] != start[j] && Array.IndexOf(chosen, j) < 0) return false;
        return true;
    }

    /// <summary>Features of the quadratic in the subspace coordinates (relative to the start): 1, y_a, y_a y_b (a ≤ b).</summary>
    private double[] Features(double[] y)
    {
        var f = new double[(m + 1) * (m + 2) / 2];
        int i = 0;
        f[i++] = 1;
        for (int a = 0; a < m; a++) f[i++] = y[a];
        for (int a = 0; a < m; a++)
        for (int b = a; b < m; b++)
            f[i++] = y[a] * y[b];
        return f;
    }

    private double[] Relative(double[] full) => chosen.Select((j, k) => full[j] - start[j]).ToArray();

    /// <summary>Least squares (normal equations with a tiny ridge, so an under-determined fit stays solvable).</summary>
    private double[] Fit(List<(double[] Point, double Value)> points)
    {
        int p = (m + 1) * (m + 2) / 2;
        var ata = new double[p, p];
        var atb = new double[p];
        // Failed evaluations (recorded as the worst value) would wreck a least-squares fit: leave them out.
        foreach (var (point, value) in points.Where(s => s.Value < Optimizers.WorstValue))
        {
            var f = Features(Relative(point));
            for (int a = 0; a < p; a++)
            {
                atb[a] += f[a] * value;
                for (int b = 0; b < p; b++) ata[a, b] += f[a] * f[b];
            }
        }
        double trace = 0;
        for (int a = 0; a < p; a++) trace += ata[a, a];
        for (int a = 0; a < p; a++) ata[a, a] += 1e-9 * Math.Max(trace, 1e-12);
        var inverse = Cobyla.Invert(ata);
        var c = new double[p];
        for (int a = 0; a < p; a++)
        for (int b = 0; b < p; b++)
            c[a] += inverse[a, b] * atb[b];
        return c;
    }

    /// <summary>Projected coordinate descent on the model within the box and the cube of radius r around center.</summary>
    private double[] MinimizeModel(double[] c, double[] center, double r)
    {
        // Model q(y) = c0 + g·y + Σ_{a≤b} h_ab y_a y_b in relative coordinates y = x - start.
        var g = new double[m];
        var h = new double[m, m]; // symmetric: q = c0 + g·y + ½ yᵀ H y
        int i = 1 + m;
        for (int a = 0; a < m; a++) g[a] = c[1 + a];
        for (int a = 0; a < m; a++)
        for (int b = a; b < m; b++)
        {
            if (a == b) h[a, a] = 2 * c[i];
            else h[a, b] = h[b, a] = c[i];
            i++;
        }
        var lo = new double[m];
        var hi = new double[m];
        var y = new double[m];
        for (int k = 0; k < m; k++)
        {
            int j = chosen[k];
            lo[k] = Math.Max(Lower, center[k] - r) - start[j];
            hi[k] = Math.Min(Upper, center[k] + r) - start[j];
            y[k] = center[k] - start[j];
        }
        for (int sweep = 0; sweep < 200; sweep++)
        {
            for (int k = 0; k < m; k++)
            {
                // q along y_k: ½ h_kk t² + (g_k + Σ_{l≠k} h_kl y_l) t + const.
                double lin = g[k];
                for (int l = 0; l < m; l++) if (l != k) lin += h[k, l] * y[l];
                double quad = h[k, k];
                double t;
                if (quad > 0) t = Math.Clamp(-lin / quad, lo[k], hi[k]);
                else
                {
                    double qLo = 0.5 * quad * lo[k] * lo[k] + lin * lo[k], qHi = 0.5 * quad * hi[k] * hi[k] + lin * hi[k];
                    t = qLo <= qHi ? lo[k] : hi[k];
                }
                y[k] = t;
            }
        }
        var x = new double[m];
        for (int k = 0; k < m; k++) x[k] = Clip(start[chosen[k]] + y[k]);
        return x;
    }
}
