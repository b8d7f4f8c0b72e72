namespace LoraHub.Core.Optimization;

/// <summary>
/// Powell's COBYLA (Constrained Optimization BY Linear Approximations; M. J. D. Powell, "A direct search
/// optimization method that models the objective and constraint functions by linear interpolation", 1994),
/// ported from his Fortran 77 code (cobyla2.f: subroutines COBYLB and TRSTLP), which is what
/// scipy.optimize.minimize(method="COBYLA") ran before scipy moved to PRIMA's rewrite, and so what the
/// LoraHub reference ran through nevergrad. The port keeps Powell's 1-based indexing and statement labels (L140 is his
/// label 140) so that it can be read side by side with the original; its quirks are kept on purpose.
///
/// The box is handed to COBYLA as 2n linear inequality constraints, x_i - Lower &gt;= 0 for all i and then
/// Upper - x_i &gt;= 0 for all i (scipy's order for bounds). COBYLA may still ask a point slightly outside
/// the box (a "geometry" step ignores the constraints), so the point handed out by Ask is x clipped
/// into the box, and that clipped point is what is evaluated and recorded. COBYLA itself is told
/// f(clip(x)) and the constraint values of the unclipped x, so its linear constraint models stay exact.
///
/// Two starts:
///  - "cobyla-parallel" (parallelStart): the start and start + rhobeg e_i are asked as one batch of n + 1 points
///    so they can be evaluated in parallel; the best of them becomes the pole through Powell's own
///    vertex switch (label 140). This differs from Powell only when some start + rhobeg e_i is better than
///    the start: Powell then moves on from that better point (start + rhobeg e_i + rhobeg e_j ...).
///  - "cobyla": Powell's sequential start, bit-identical to scipy's COBYLA for the same problem.
///  - "cobyla-greedy" (startBlock &gt; 0): Powell's greedy accumulation in a few parallel rounds. The coordinates are
///    split into blocks of startBlock; round 1 asks the start and start + rhobeg e_i for the first block, and every
///    later round probes its block one step from the best point so far (the best probe of a round, if it beats the
///    best so far, becomes the base of the next round, as Powell's pole moves to an improving vertex). The n + 1
///    points form the initial simplex (displacements rhobeg (e_j + the accepted steps before j's round): triangular,
///    so never singular), the best of them becomes the pole through label 140, and Powell's iterations follow.
/// After the start, one point at a time.
///
/// rhoend is 1e-4 (scipy's default tol), or rhobeg if that is smaller. Objective values above 2^100
/// (including the failures recorded as <see cref="Optimizers.WorstValue"/>) are passed on as 2^100,
/// as PRIMA does, so the linear models stay finite. No random numbers: the seed is unused.
/// </summary>
internal sealed class Cobyla : OptimizerBase
{
    public const double DefaultRhoEnd = 1e-4;
    private const double HugeFun = 1.2676506002282294e30; // 2^100

    private readonly bool parallelStart;
    private readonly int startBlock;
    private readonly IEnumerator<double[][]> run;
    private double[] told = [];
    private double[][]? next;

    public Cobyla(OptimizerSettings settings, bool parallelStart, int startBlock = 0) : base(settings)
    {
        this.parallelStart = parallelStart;
        this.startBlock = startBlock;
        RhoBeg = settings.InitialStep;
        RhoEnd = Math.Min(DefaultRhoEnd, RhoBeg);
        run = Run();
        next = run.MoveNext() ? run.Current : null;
    }

    public double RhoBeg { get; }
    public double RhoEnd { get; }

    protected override bool Converged => next is null;

    protected override IReadOnlyList<double[]> Propose() => next ?? [];

    protected override void Observe(IReadOnlyList<double[]> batch, IReadOnlyList<double> values)
    {
        told = values.Select(v => Math.Min(v, HugeFun)).ToArray();
        next = run.MoveNext() ? run.Current : null;
    }

    /// <summary>x (1-based) clipped into the box, 0-based: the point that is evaluated.</summary>
    private double[] ToPoint(double[] x)
    {
        var p = new double[N];
        for (int i = 0; i < N; i++) p[i] = Clip(x[i + 1]);
        return p;
    }

    /// <summary>Powell's CALCFC for the bound constraints: con(1..n) = x - Lower, con(n+1..2n) = Upper - x.</summary>
    private void Constraints(double[] x, double[] con)
    {
        for (int i = 1; i <= N; i++)
        {
            con[i] = x[i] - Lower;
            con[N + i] = Upper - x[i];
        }
    }

    /// <summary>
    /// COBYLB as an iterator: each yield hands out the points to evaluate (clipped) and resumes with their
    /// values in <see cref="told"/>. Ending the iteration is Powell's return.
    /// </summary>
    private IEnumerator<double[][]> Run()
    {
        int n = N, m = 2 * N, np = n + 1, mp = m + 1, mpp = m + 2;
        int maxfun = Settings.Budget;
        double rhoend = RhoEnd;
        const double alpha = 0.25, beta = 2.1, gamma = 0.5, delta = 1.1;

        var x = new double[n + 1];
        var start = Settings.StartPoint();
        for (int i = 1; i <= n; i++) x[i] = start[i - 1];
        var con = new double[mpp + 1];
        var sim = new double[n + 1, np + 1];
        var simi = new double[n + 1, n + 1];
        var datmat = new double[mpp + 1, np + 1];
        var a = new double[n + 1, mp + 1];
        var vsig = new double[n + 1];
        var veta = new double[n + 1];
        var sigbar = new double[n + 1];
        var dx = new double[n + 1];
        var w = new double[n + 1];
        var work = new TrstlpWork(n, m);

        double rho = RhoBeg, parmu = 0, f = 0, resmax, temp, tempa, phimin, error, parsig = 0, pareta = 0;
        double wsig, weta, cvmaxp, cvmaxm, sum, dxsign, resnew, barmu, prerec = 0, prerem = 0, phi;
        double vmold, vmnew, trured, ratio, edgmax, denom, cmin, cmax;
        int nfvals = 0, jdrop, ibrnch, nbest, iflag = 0, ifull, l;

        // Initial simplex: SIM(:, NP) is the start, SIM(:, J) = rho e_J the displacements, SIMI the inverse.
        temp = 1.0 / rho;
        for (int i = 1; i <= n; i++)
        {
            sim[i, np] = x[i];
            sim[i, i] = rho;
            simi[i, i] = temp;
        }
        jdrop = np;
        ibrnch = 0;

        if (startBlock > 0)
        {
            // Greedy start in rounds of startBlock probes, each from the best point so far.
            var vertex = new double[np + 1][]; // 0: the start; j: the probe of coordinate j (1-based, unclipped)
            var fx = new double[np + 1];
            var based = (double[])x.Clone();
            double fbase = double.PositiveInfinity;
            for (int j0 = 1; j0 <= n; j0 += startBlock)
            {
                int j1 = Math.Min(n, j0 + startBlock - 1);
                var round = new List<(int Column, double[] X)>();
                if (j0 == 1) round.Add((0, (double[])x.Clone()));
                for (int j = j0; j <= j1; j++)
                {
                    var xj = (double[])based.Clone();
                    xj[j] += rho;
                    round.Add((j, xj));
                }
                int count = Math.Min(round.Count, maxfun - nfvals);
                yield return round.Take(count).Select(r => ToPoint(r.X)).ToArray();
                nfvals += count;
                for (int i = 0; i < count; i++)
                {
                    vertex[round[i].Column] = round[i].X;
                    fx[round[i].Column] = told[i];
                }
                if (count < round.Count) goto L600; // the budget ended inside the initial simplex
                for (int i = 0; i < count; i++)
                {
                    if (told[i] < fbase)
                    {
                        fbase = told[i];
                        based = round[i].X;
                    }
                }
            }
            // The simplex: the start in the pole column, every probe's displacement from it in its own column.
            var displacement = new double[n, n];
            for (int j = 1; j <= n; j++)
            for (int i = 1; i <= n; i++)
            {
                sim[i, j] = vertex[j][i] - x[i];
                displacement[i - 1, j - 1] = sim[i, j];
            }
            var inverse = Invert(displacement);
            for (int i = 1; i <= n; i++)
            for (int j = 1; j <= n; j++)
                simi[i, j] = inverse[i - 1, j - 1];
            for (int j = 0; j <= n; j++)
            {
                Constraints(vertex[j], con);
                resmax = 0;
                for (int k = 1; k <= m; k++) resmax = Math.Max(resmax, -con[k]);
                int column = j == 0 ? np : j;
                for (int k = 1; k <= m; k++) datmat[k, column] = con[k];
                datmat[mp, column] = fx[j];
                datmat[mpp, column] = resmax;
            }
            ibrnch = 1;
            goto L140; // label 140 switches the best vertex into the pole position
        }

        if (parallelStart)
        {
            int count = Math.Min(np, maxfun);
            var batch = new double[count][];
            var xj = new double[n + 1];
            for (int j = 0; j < count; j++)
            {
                Array.Copy(x, xj, n + 1);
                if (j > 0) xj[j] += rho;
                batch[j] = ToPoint(xj);
            }
            yield return batch;
            nfvals = count;
            for (int j = 0; j < count; j++)
            {
                Array.Copy(x, xj, n + 1);
                if (j > 0) xj[j] += rho;
                Constraints(xj, con);
                resmax = 0;
                for (int k = 1; k <= m; k++) resmax = Math.Max(resmax, -con[k]);
                int column = j == 0 ? np : j;
                for (int k = 1; k <= m; k++) datmat[k, column] = con[k];
                datmat[mp, column] = told[j];
                datmat[mpp, column] = resmax;
            }
            if (count < np) goto L600; // the budget ended inside the initial simplex
            ibrnch = 1;
            goto L140; // label 140 switches the best vertex into the pole position
        }

    // Evaluate F and the constraints at X (Powell's label 40).
    L40:
        if (nfvals >= maxfun && nfvals > 0) goto L600;
        nfvals++;
        yield return [ToPoint(x)];
        f = told[0];
        Constraints(x, con);
        resmax = 0;
        for (int k = 1; k <= m; k++) resmax = Math.Max(resmax, -con[k]);
        con[mp] = f;
        con[mpp] = resmax;
        if (ibrnch == 1) goto L440;

        // Store the values of the new vertex of the initial simplex in a column of DATMAT.
        for (int k = 1; k <= mpp; k++) datmat[k, jdrop] = con[k];
        if (nfvals > np) goto L130;

        // Exchange the new vertex of the initial simplex with the optimal vertex if necessary. Then, if
        // the initial simplex is not complete, pick its next vertex.
        if (jdrop <= n)
        {
            if (datmat[mp, np] <= f)
            {
                x[jdrop] = sim[jdrop, np];
            }
            else
            {
                sim[jdrop, np] = x[jdrop];
                for (int k = 1; k <= mpp; k++)
                {
                    datmat[k, jdrop] = datmat[k, np];
                    datmat[k, np] = con[k];
                }
                for (int k = 1; k <= jdrop; k++)
                {
                    sim[jdrop, k] = -rho;
                    temp = 0;
                    for (int i = k; i <= jdrop; i++) temp -= simi[i, k];
                    simi[jdrop, k] = temp;
                }
            }
        }
        if (nfvals <= n)
        {
            jdrop = nfvals;
            x[jdrop] += rho;
            goto L40;
        }
    L130:
        ibrnch = 1;

    // Identify the optimal vertex of the current simplex.
    L140:
        phimin = datmat[mp, np] + parmu * datmat[mpp, np];
        nbest = np;
        for (int j = 1; j <= n; j++)
        {
            temp = datmat[mp, j] + parmu * datmat[mpp, j];
            if (temp < phimin)
            {
                nbest = j;
                phimin = temp;
            }
            else if (temp == phimin && parmu == 0)
            {
                if (datmat[mpp, j] < datmat[mpp, nbest]) nbest = j;
            }
        }

        // Switch the best vertex into pole position if it is not there already, updating SIM, SIMI, DATMAT.
        if (nbest <= n)
        {
            for (int i = 1; i <= mpp; i++)
            {
                temp = datmat[i, np];
                datmat[i, np] = datmat[i, nbest];
                datmat[i, nbest] = temp;
            }
            for (int i = 1; i <= n; i++)
            {
                temp = sim[i, nbest];
                sim[i, nbest] = 0;
                sim[i, np] += temp;
                tempa = 0;
                for (int k = 1; k <= n; k++)
                {
                    sim[i, k] -= temp;
                    tempa -= simi[k, i];
                }
                simi[nbest, i] = tempa;
            }
        }

        // Return if SIMI is a poor approximation to the inverse of SIM(:, 1:N) (rounding errors).
        error = 0;
        for (int i = 1; i <= n; i++)
        {
            for (int j = 1; j <= n; j++)
            {
                temp = i == j ? -1.0 : 0.0;
                for (int k = 1; k <= n; k++) temp += simi[i, k] * sim[k, j];
                error = Math.Max(error, Math.Abs(temp));
            }
        }
        if (!(error <= 0.1)) goto L600;

        // Linear approximations of the constraints and (minus) the objective: gradients in the columns of A.
        for (int k = 1; k <= mp; k++)
        {
            con[k] = -datmat[k, np];
            for (int j = 1; j <= n; j++) w[j] = datmat[k, j] + con[k];
            for (int i = 1; i <= n; i++)
            {
                temp = 0;
                for (int j = 1; j <= n; j++) temp += w[j] * simi[j, i];
                if (k == mp) temp = -temp;
                a[i, k] = temp;
            }
        }

        // Sigma and eta measure the simplex; IFLAG = 0 if it is not acceptable.
        iflag = 1;
        parsig = alpha * rho;
        pareta = beta * rho;
        for (int j = 1; j <= n; j++)
        {
            wsig = 0;
            weta = 0;
            for (int i = 1; i <= n; i++)
            {
                wsig += simi[j, i] * simi[j, i];
                weta += sim[i, j] * sim[i, j];
            }
            vsig[j] = 1.0 / Math.Sqrt(wsig);
            veta[j] = Math.Sqrt(weta);
            if (vsig[j] < parsig || veta[j] > pareta) iflag = 0;
        }

        // If a new vertex is needed to improve acceptability, decide which vertex to drop.
        if (ibrnch == 1 || iflag == 1) goto L370;
        jdrop = 0;
        temp = pareta;
        for (int j = 1; j <= n; j++)
        {
            if (veta[j] > temp)
            {
                jdrop = j;
                temp = veta[j];
            }
        }
        if (jdrop == 0)
        {
            for (int j = 1; j <= n; j++)
            {
                if (vsig[j] < temp)
                {
                    jdrop = j;
                    temp = vsig[j];
                }
            }
        }
        if (jdrop == 0) goto L600; // only reachable through NaN (a guard PRIMA added)

        // The geometry step to the new vertex and its sign.
        temp = gamma * rho * vsig[jdrop];
        for (int i = 1; i <= n; i++) dx[i] = temp * simi[jdrop, i];
        cvmaxp = 0;
        cvmaxm = 0;
        sum = 0;
        for (int k = 1; k <= mp; k++)
        {
            sum = 0;
            for (int i = 1; i <= n; i++) sum += a[i, k] * dx[i];
            if (k < mp)
            {
                temp = datmat[k, np];
                cvmaxp = Math.Max(cvmaxp, -sum - temp);
                cvmaxm = Math.Max(cvmaxm, sum - temp);
            }
        }
        dxsign = 1;
        if (parmu * (cvmaxp - cvmaxm) > sum + sum) dxsign = -1;

        // Update SIM and SIMI, and set the next X.
        temp = 0;
        for (int i = 1; i <= n; i++)
        {
            dx[i] = dxsign * dx[i];
            sim[i, jdrop] = dx[i];
            temp += simi[jdrop, i] * dx[i];
        }
        for (int i = 1; i <= n; i++) simi[jdrop, i] /= temp;
        for (int j = 1; j <= n; j++)
        {
            if (j != jdrop)
            {
                temp = 0;
                for (int i = 1; i <= n; i++) temp += simi[j, i] * dx[i];
                for (int i = 1; i <= n; i++) simi[j, i] -= temp * simi[jdrop, i];
            }
            x[j] = sim[j, np] + dx[j];
        }
        goto L40;

    // The trust region step DX = x(*) - x(0); branch if its length is less than 0.5 * RHO.
    L370:
        ifull = Trstlp(n, m, a, con, rho, dx, work);
        if (ifull == 0)
        {
            temp = 0;
            for (int i = 1; i <= n; i++) temp += dx[i] * dx[i];
            if (temp < 0.25 * rho * rho)
            {
                ibrnch = 1;
                goto L550;
            }
        }

        // Predicted change of F and new maximum constraint violation at x(0) + DX.
        resnew = 0;
        con[mp] = 0;
        sum = 0;
        for (int k = 1; k <= mp; k++)
        {
            sum = con[k];
            for (int i = 1; i <= n; i++) sum -= a[i, k] * dx[i];
            if (k < mp) resnew = Math.Max(resnew, sum);
        }

        // Increase PARMU if necessary and branch back if this changes the optimal vertex. Otherwise PREREM
        // and PREREC are the predicted reductions of the merit function and the constraint violation.
        barmu = 0;
        prerec = datmat[mpp, np] - resnew;
        if (prerec > 0) barmu = sum / prerec;
        if (parmu < 1.5 * barmu)
        {
            parmu = 2 * barmu;
            phi = datmat[mp, np] + parmu * datmat[mpp, np];
            for (int j = 1; j <= n; j++)
            {
                temp = datmat[mp, j] + parmu * datmat[mpp, j];
                if (temp < phi) goto L140;
                if (temp == phi && parmu == 0)
                {
                    if (datmat[mpp, j] < datmat[mpp, np]) goto L140;
                }
            }
        }
        prerem = parmu * prerec - sum;

        // Evaluate at x(*) = x(0) + DX, then compare the actual reduction of the merit function.
        for (int i = 1; i <= n; i++) x[i] = sim[i, np] + dx[i];
        ibrnch = 1;
        goto L40;

    L440:
        vmold = datmat[mp, np] + parmu * datmat[mpp, np];
        vmnew = f + parmu * resmax;
        trured = vmold - vmnew;
        if (parmu == 0 && f == datmat[mp, np])
        {
            prerem = prerec;
            trured = datmat[mpp, np] - resmax;
        }

        // Decide whether x(*) replaces a vertex (mandatory if TRURED > 0); JDROP is the vertex to replace.
        ratio = 0;
        if (trured <= 0) ratio = 1;
        jdrop = 0;
        for (int j = 1; j <= n; j++)
        {
            temp = 0;
            for (int i = 1; i <= n; i++) temp += simi[j, i] * dx[i];
            temp = Math.Abs(temp);
            if (temp > ratio)
            {
                jdrop = j;
                ratio = temp;
            }
            sigbar[j] = temp * vsig[j];
        }

        // Powell's ell: prefer dropping a far vertex.
        edgmax = delta * rho;
        l = 0;
        for (int j = 1; j <= n; j++)
        {
            if (sigbar[j] >= parsig || sigbar[j] >= vsig[j])
            {
                temp = veta[j];
                if (trured > 0)
                {
                    temp = 0;
                    for (int i = 1; i <= n; i++) temp += (dx[i] - sim[i, j]) * (dx[i] - sim[i, j]);
                    temp = Math.Sqrt(temp);
                }
                if (temp > edgmax)
                {
                    l = j;
                    edgmax = temp;
                }
            }
        }
        if (l > 0) jdrop = l;
        if (jdrop == 0) goto L550;

        // Revise the simplex: SIM, SIMI and DATMAT.
        temp = 0;
        for (int i = 1; i <= n; i++)
        {
            sim[i, jdrop] = dx[i];
            temp += simi[jdrop, i] * dx[i];
        }
        for (int i = 1; i <= n; i++) simi[jdrop, i] /= temp;
        for (int j = 1; j <= n; j++)
        {
            if (j != jdrop)
            {
                temp = 0;
                for (int i = 1; i <= n; i++) temp += simi[j, i] * dx[i];
                for (int i = 1; i <= n; i++) simi[j, i] -= temp * simi[jdrop, i];
            }
        }
        for (int k = 1; k <= mpp; k++) datmat[k, jdrop] = con[k];

        // Further iterations with the current RHO if the step was good.
        if (trured > 0 && trured >= 0.1 * prerem) goto L140;
    L550:
        if (iflag == 0)
        {
            ibrnch = 0;
            goto L140;
        }

        // Otherwise reduce RHO if it is not at its least value, and reset PARMU.
        if (rho > rhoend)
        {
            rho = 0.5 * rho;
            if (rho <= 1.5 * rhoend) rho = rhoend;
            if (parmu > 0)
            {
                denom = 0;
                cmin = cmax = 0;
                for (int k = 1; k <= mp; k++)
                {
                    cmin = datmat[k, np];
                    cmax = cmin;
                    for (int i = 1; i <= n; i++)
                    {
                        cmin = Math.Min(cmin, datmat[k, i]);
                        cmax = Math.Max(cmax, datmat[k, i]);
                    }
                    if (k <= m && cmin < 0.5 * cmax)
                    {
                        temp = Math.Max(cmax, 0) - cmin;
                        denom = denom <= 0 ? temp : Math.Min(denom, temp);
                    }
                }
                // As in Powell's code, CMAX and CMIN here are those of the last row (the objective).
                if (denom == 0) parmu = 0;
                else if (cmax - cmin < parmu * denom) parmu = (cmax - cmin) / denom;
            }
            goto L140;
        }

    // Normal return (RHO reached RHOEND), the MAXFUN limit, or a rounding-error return.
    L600:
        yield break;
    }

    /// <summary>The inverse of a nonsingular square matrix (Gauss-Jordan elimination with partial pivoting).</summary>
    internal static double[,] Invert(double[,] matrix)
    {
        int n = matrix.GetLength(0);
        var a = (double[,])matrix.Clone();
        var inv = new double[n, n];
        for (int i = 0; i < n; i++) inv[i, i] = 1;
        for (int col = 0; col < n; col++)
        {
            int pivot = col;
            for (int r = col + 1; r < n; r++)
                if (Math.Abs(a[r, col]) > Math.Abs(a[pivot, col])) pivot = r;
            if (a[pivot, col] == 0) throw new InvalidOperationException("Internal error: the initial simplex is singular.");
            if (pivot != col)
            {
                for (int c = 0; c < n; c++)
                {
                    (a[col, c], a[pivot, c]) = (a[pivot, c], a[col, c]);
                    (inv[col, c], inv[pivot, c]) = (inv[pivot, c], inv[col, c]);
                }
            }
            double d = a[col, col];
            for (int c = 0; c < n; c++)
            {
                a[col, c] /= d;
                inv[col, c] /= d;
            }
            for (int r = 0; r < n; r++)
            {
                if (r == col || a[r, col] == 0) continue;
                double factor = a[r, col];
                for (int c = 0; c < n; c++)
                {
                    a[r, c] -= factor * a[col, c];
                    inv[r, c] -= factor * inv[col, c];
                }
            }
        }
        return inv;
    }

    /// <summary>Working arrays of TRSTLP, allocated once.</summary>
    private sealed class TrstlpWork(int n, int m)
    {
        public readonly int[] Iact = new int[m + 2];
        public readonly double[,] Z = new double[n + 1, n + 1];
        public readonly double[] Zdota = new double[n + 1];
        public readonly double[] Vmultc = new double[m + 2];
        public readonly double[] Sdirn = new double[n + 1];
        public readonly double[] Dxnew = new double[n + 1];
        public readonly double[] Vmultd = new double[m + 2];
    }

    /// <summary>
    /// Powell's TRSTLP. Stage one: DX is the shortest vector minimizing the greatest violation of the
    /// linearized constraints A(:, K)^T DX &gt;= B(K), K = 1..M, subject to |DX| &lt;= RHO. Stage two: if
    /// |DX| &lt; RHO, the freedom left minimizes the linear objective -A(:, M+1)^T DX without increasing
    /// the greatest violation. Returns IFULL: 0 if a degeneracy kept |DX| below RHO, usually 1.
    /// </summary>
    private static int Trstlp(int n, int m, double[,] a, double[] b, double rho, double[] dx, TrstlpWork wk)
    {
        var iact = wk.Iact;
        var z = wk.Z;
        var zdota = wk.Zdota;
        var vmultc = wk.Vmultc;
        var sdirn = wk.Sdirn;
        var dxnew = wk.Dxnew;
        var vmultd = wk.Vmultd;

        int ifull = 1, mcon = m, nact = 0, icon = 0, nactx = 0, icount = 0, iout = 0, kk, k, kp, kw, isave;
        double resmax = 0, optold = 0, optnew, tot, sp, spabs, acca, accb, temp, tempa, alpha, beta, ratio;
        double zdotv, zdvabs, vsave, dd, sd, ss, stpful, step, resold = 0, zdotw, zdwabs, sum, sumabs;

        for (int i = 1; i <= n; i++)
        {
            for (int j = 1; j <= n; j++) z[i, j] = 0;
            z[i, i] = 1;
            dx[i] = 0;
        }
        if (m >= 1)
        {
            for (k = 1; k <= m; k++)
            {
                if (b[k] > resmax)
                {
                    resmax = b[k];
                    icon = k;
                }
            }
            for (k = 1; k <= m; k++)
            {
                iact[k] = k;
                vmultc[k] = resmax - b[k];
            }
        }
        if (resmax == 0) goto L480;
        for (int i = 1; i <= n; i++) sdirn[i] = 0;

    // End the current stage if 3 consecutive iterations have failed to reduce the best value of the
    // objective or to increase the number of active constraints since the best value was found.
    L60:
        optold = 0;
        icount = 0;
    L70:
        if (mcon == m)
        {
            optnew = resmax;
        }
        else
        {
            optnew = 0;
            for (int i = 1; i <= n; i++) optnew -= dx[i] * a[i, mcon];
        }
        if (icount == 0 || optnew < optold)
        {
            optold = optnew;
            nactx = nact;
            icount = 3;
        }
        else if (nact > nactx)
        {
            nactx = nact;
            icount = 3;
        }
        else
        {
            icount--;
            if (icount == 0) goto L490;
        }

        // If ICON exceeds NACT, add the constraint IACT(ICON) to the active set: Givens rotations make the
        // last N-NACT-1 columns of Z orthogonal to its gradient (products that may be rounding noise are zeroed).
        if (icon <= nact) goto L260;
        kk = iact[icon];
        for (int i = 1; i <= n; i++) dxnew[i] = a[i, kk];
        tot = 0;
        k = n;
        while (k > nact)
        {
            sp = 0;
            spabs = 0;
            for (int i = 1; i <= n; i++)
            {
                temp = z[i, k] * dxnew[i];
                sp += temp;
                spabs += Math.Abs(temp);
            }
            acca = spabs + 0.1 * Math.Abs(sp);
            accb = spabs + 0.2 * Math.Abs(sp);
            if (spabs >= acca || acca >= accb) sp = 0;
            if (tot == 0)
            {
                tot = sp;
            }
            else
            {
                kp = k + 1;
                temp = Math.Sqrt(sp * sp + tot * tot);
                alpha = sp / temp;
                beta = tot / temp;
                tot = temp;
                for (int i = 1; i <= n; i++)
                {
                    temp = alpha * z[i, k] + beta * z[i, kp];
                    z[i, kp] = alpha * z[i, kp] - beta * z[i, k];
                    z[i, k] = temp;
                }
            }
            k--;
        }

        // Add the new constraint if this can be done without a deletion from the active set.
        if (tot != 0)
        {
            nact++;
            zdota[nact] = tot;
            vmultc[icon] = vmultc[nact];
            vmultc[nact] = 0;
            goto L210;
        }

        // The new gradient is a combination of the active ones: VMULTD gets the multipliers of that
        // combination and IOUT the constraint to delete; branch if there is none.
        ratio = -1;
        k = nact;
    L130:
        zdotv = 0;
        zdvabs = 0;
        for (int i = 1; i <= n; i++)
        {
            temp = z[i, k] * dxnew[i];
            zdotv += temp;
            zdvabs += Math.Abs(temp);
        }
        acca = zdvabs + 0.1 * Math.Abs(zdotv);
        accb = zdvabs + 0.2 * Math.Abs(zdotv);
        if (zdvabs < acca && acca < accb)
        {
            temp = zdotv / zdota[k];
            if (temp > 0 && iact[k] <= m)
            {
                tempa = vmultc[k] / temp;
                if (ratio < 0 || tempa < ratio)
                {
                    ratio = tempa;
                    iout = k;
                }
            }
            if (k >= 2)
            {
                kw = iact[k];
                for (int i = 1; i <= n; i++) dxnew[i] -= temp * a[i, kw];
            }
            vmultd[k] = temp;
        }
        else
        {
            vmultd[k] = 0;
        }
        k--;
        if (k > 0) goto L130;
        if (ratio < 0) goto L490;

        // Revise the multipliers and move the constraint to be replaced to the end of the list. Powell's
        // code tests ICON < NACT here, which never holds (ICON > NACT on this path), where IOUT was meant
        // (PRIMA fixed it); scipy runs it as written, and so does this port.
        for (k = 1; k <= nact; k++) vmultc[k] = Math.Max(0, vmultc[k] - ratio * vmultd[k]);
        if (icon < nact)
        {
            isave = iact[icon];
            vsave = vmultc[icon];
            k = icon;
            do
            {
                kp = k + 1;
                kw = iact[kp];
                sp = 0;
                for (int i = 1; i <= n; i++) sp += z[i, k] * a[i, kw];
                temp = Math.Sqrt(sp * sp + zdota[kp] * zdota[kp]);
                alpha = zdota[kp] / temp;
                beta = sp / temp;
                zdota[kp] = alpha * zdota[k];
                zdota[k] = temp;
                for (int i = 1; i <= n; i++)
                {
                    temp = alpha * z[i, kp] + beta * z[i, k];
                    z[i, kp] = alpha * z[i, k] - beta * z[i, kp];
                    z[i, k] = temp;
                }
                iact[k] = kw;
                vmultc[k] = vmultc[kp];
                k = kp;
            } while (k < nact);
            iact[k] = isave;
            vmultc[k] = vsave;
        }
        temp = 0;
        for (int i = 1; i <= n; i++) temp += z[i, nact] * a[i, kk];
        if (temp == 0) goto L490;
        zdota[nact] = temp;
        vmultc[icon] = 0;
        vmultc[nact] = ratio;

    // Update IACT, keeping the objective the last active constraint when MCON > M.
    L210:
        iact[icon] = iact[nact];
        iact[nact] = kk;
        if (mcon > m && kk != mcon)
        {
            k = nact - 1;
            sp = 0;
            for (int i = 1; i <= n; i++) sp += z[i, k] * a[i, kk];
            temp = Math.Sqrt(sp * sp + zdota[nact] * zdota[nact]);
            alpha = zdota[nact] / temp;
            beta = sp / temp;
            zdota[nact] = alpha * zdota[k];
            zdota[k] = temp;
            for (int i = 1; i <= n; i++)
            {
                temp = alpha * z[i, nact] + beta * z[i, k];
                z[i, nact] = alpha * z[i, k] - beta * z[i, nact];
                z[i, k] = temp;
            }
            iact[nact] = iact[k];
            iact[k] = kk;
            temp = vmultc[k];
            vmultc[k] = vmultc[nact];
            vmultc[nact] = temp;
        }

        // In stage one, SDIRN is the direction of the next change of the variables.
        if (mcon > m) goto L320;
        kk = iact[nact];
        temp = 0;
        for (int i = 1; i <= n; i++) temp += sdirn[i] * a[i, kk];
        temp -= 1;
        temp /= zdota[nact];
        for (int i = 1; i <= n; i++) sdirn[i] -= temp * z[i, nact];
        goto L340;

    // Delete the constraint IACT(ICON) from the active set.
    L260:
        if (icon < nact)
        {
            isave = iact[icon];
            vsave = vmultc[icon];
            k = icon;
            do
            {
                kp = k + 1;
                kk = iact[kp];
                sp = 0;
                for (int i = 1; i <= n; i++) sp += z[i, k] * a[i, kk];
                temp = Math.Sqrt(sp * sp + zdota[kp] * zdota[kp]);
                alpha = zdota[kp] / temp;
                beta = sp / temp;
                zdota[kp] = alpha * zdota[k];
                zdota[k] = temp;
                for (int i = 1; i <= n; i++)
                {
                    temp = alpha * z[i, kp] + beta * z[i, k];
                    z[i, kp] = alpha * z[i, k] - beta * z[i, kp];
                    z[i, k] = temp;
                }
                iact[k] = kk;
                vmultc[k] = vmultc[kp];
                k = kp;
            } while (k < nact);
            iact[k] = isave;
            vmultc[k] = vsave;
        }
        nact--;
        if (mcon > m) goto L320;
        temp = 0;
        for (int i = 1; i <= n; i++) temp += sdirn[i] * z[i, nact + 1];
        for (int i = 1; i <= n; i++) sdirn[i] -= temp * z[i, nact + 1];
        goto L340;

    // The next search direction of stage two.
    L320:
        temp = 1.0 / zdota[nact];
        for (int i = 1; i <= n; i++) sdirn[i] = temp * z[i, nact];

    // Step to the trust region boundary, or the step that reduces RESMAX to zero. The 1e-6 factors avoid
    // harmless underflows (Powell); the step is skipped if it could be zero within rounding errors.
    L340:
        dd = rho * rho;
        sd = 0;
        ss = 0;
        for (int i = 1; i <= n; i++)
        {
            if (Math.Abs(dx[i]) >= 1.0e-6 * rho) dd -= dx[i] * dx[i];
            sd += dx[i] * sdirn[i];
            ss += sdirn[i] * sdirn[i];
        }
        if (dd <= 0) goto L490;
        temp = Math.Sqrt(ss * dd);
        if (Math.Abs(sd) >= 1.0e-6 * temp) temp = Math.Sqrt(ss * dd + sd * sd);
        stpful = dd / (temp + sd);
        step = stpful;
        if (mcon == m)
        {
            acca = step + 0.1 * resmax;
            accb = step + 0.2 * resmax;
            if (step >= acca || acca >= accb) goto L480;
            step = Math.Min(step, resmax);
        }

        // DXNEW is the point at this step length; in stage one RESMAX becomes its greatest residual.
        for (int i = 1; i <= n; i++) dxnew[i] = dx[i] + step * sdirn[i];
        if (mcon == m)
        {
            resold = resmax;
            resmax = 0;
            for (k = 1; k <= nact; k++)
            {
                kk = iact[k];
                temp = b[kk];
                for (int i = 1; i <= n; i++) temp -= a[i, kk] * dxnew[i];
                resmax = Math.Max(resmax, temp);
            }
        }

        // VMULTD: the multipliers VMULTC would have at DXNEW, zeroed where the difference may be rounding.
        k = nact;
    L390:
        zdotw = 0;
        zdwabs = 0;
        for (int i = 1; i <= n; i++)
        {
            temp = z[i, k] * dxnew[i];
            zdotw += temp;
            zdwabs += Math.Abs(temp);
        }
        acca = zdwabs + 0.1 * Math.Abs(zdotw);
        accb = zdwabs + 0.2 * Math.Abs(zdotw);
        if (zdwabs >= acca || acca >= accb) zdotw = 0;
        vmultd[k] = zdotw / zdota[k];
        if (k >= 2)
        {
            kk = iact[k];
            for (int i = 1; i <= n; i++) dxnew[i] -= vmultd[k] * a[i, kk];
            k--;
            goto L390;
        }
        if (mcon > m) vmultd[nact] = Math.Max(0, vmultd[nact]);

        // Complete VMULTD with the residuals of the inactive constraints.
        for (int i = 1; i <= n; i++) dxnew[i] = dx[i] + step * sdirn[i];
        if (mcon > nact)
        {
            for (k = nact + 1; k <= mcon; k++)
            {
                kk = iact[k];
                sum = resmax - b[kk];
                sumabs = resmax + Math.Abs(b[kk]);
                for (int i = 1; i <= n; i++)
                {
                    temp = a[i, kk] * dxnew[i];
                    sum += temp;
                    sumabs += Math.Abs(temp);
                }
                acca = sumabs + 0.1 * Math.Abs(sum);
                accb = sumabs + 0.2 * Math.Abs(sum);
                if (sumabs >= acca || acca >= accb) sum = 0;
                vmultd[k] = sum;
            }
        }

        // The fraction of the step from DX to DXNEW that is taken.
        ratio = 1;
        icon = 0;
        for (k = 1; k <= mcon; k++)
        {
            if (vmultd[k] < 0)
            {
                temp = vmultc[k] / (vmultc[k] - vmultd[k]);
                if (temp < ratio)
                {
                    ratio = temp;
                    icon = k;
                }
            }
        }

        // Update DX, VMULTC and RESMAX.
        temp = 1 - ratio;
        for (int i = 1; i <= n; i++) dx[i] = temp * dx[i] + ratio * dxnew[i];
        for (k = 1; k <= mcon; k++) vmultc[k] = Math.Max(0, temp * vmultc[k] + ratio * vmultd[k]);
        if (mcon == m) resmax = resold + ratio * (resmax - resold);

        // If the full step is not acceptable, iterate again; otherwise switch to stage two or finish.
        if (icon > 0) goto L70;
        if (step == stpful) return ifull;
    L480:
        mcon = m + 1;
        icon = mcon;
        iact[mcon] = mcon;
        vmultc[mcon] = 0;
        goto L60;

    // Use any freedom left to reduce the objective before returning a DX shorter than RHO.
    L490:
        if (mcon == m) goto L480;
        ifull = 0;
        return ifull;
    }
}
