namespace LoraHub.Core.Optimization;

/// <summary>
/// Eigendecomposition of a small symmetric matrix by cyclic Jacobi rotations: A = V diag(values) V^T,
/// eigenvectors in the columns of V. Only +, -, *, / and sqrt, so it is bit-reproducible. Cost is
/// O(n^3) per sweep with a handful of sweeps, nothing for the n &lt;= 50 that CMA-ES sees here.
/// </summary>
internal static class SymmetricEigen
{
    public static (double[] Values, double[,] Vectors) Decompose(double[,] matrix)
    {
        int n = matrix.GetLength(0);
        if (matrix.GetLength(1) != n) throw new ArgumentException("Matrix must be square.", nameof(matrix));
        var a = (double[,])matrix.Clone();
        var v = new double[n, n];
        for (int i = 0; i < n; i++) v[i, i] = 1;

        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, diag = 0;
            for (int p = 0; p < n; p++)
            {
                diag += a[p, p] * a[p, p];
                for (int q = p + 1; q < n; q++) off += a[p, q] * a[p, q];
            }
            if (off == 0 || off <= 1e-30 * diag) break;

            for (int p = 0; p < n - 1; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    double apq = a[p, q];
                    if (apq == 0) continue;
                    // Rotation angle that zeroes a[p, q] (Rutishauser's formulas, the smaller angle).
                    double theta = (a[q, q] - a[p, p]) / (2 * apq);
                    double t = 1 / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta < 0) t = -t;
                    double c = 1 / Math.Sqrt(t * t + 1);
                    double s = t * c;
                    double tau = s / (1 + c);

                    a[p, p] -= t * apq;
                    a[q, q] += t * apq;
                    a[p, q] = a[q, p] = 0;
                    for (int r = 0; r < n; r++)
                    {
                        if (r != p && r != q)
                        {
                            double arp = a[r, p], arq = a[r, q];
                            a[r, p] = a[p, r] = arp - s * (arq + tau * arp);
                            a[r, q] = a[q, r] = arq + s * (arp - tau * arq);
                        }
                        double vrp = v[r, p], vrq = v[r, q];
                        v[r, p] = vrp - s * (vrq + tau * vrp);
                        v[r, q] = vrq + s * (vrp - tau * vrq);
                    }
                }
            }
        }

        var values = new double[n];
        for (int i = 0; i < n; i++) values[i] = a[i, i];
        return (values, v);
    }
}
