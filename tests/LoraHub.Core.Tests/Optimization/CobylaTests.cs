using LoraHub.Core.Optimization;
using Xunit;
using static LoraHub.Core.Tests.Optimization.OptimizerHarness;

namespace LoraHub.Core.Tests.Optimization;

public sealed class CobylaTests
{
    private static readonly double[] C5 = [0.3, -0.7, 1.1, -0.2, 0.9];
    private static readonly double[] C8 = [0.3, -0.7, 1.1, -0.2, 0.9, 0.5, -1.2, 0.05];

    [Fact]
    public void Quadratic_in_5_dimensions_converges_to_the_minimum()
    {
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 5, 200));
        var trace = Run(optimizer, Quadratic(C5));
        Assert.True(MaxAbsDiff(optimizer.Best!.Point, C5) < 1e-3, $"best {string.Join(", ", optimizer.Best.Point)}");
        Assert.True(optimizer.Best.Value < 1e-7, $"value {optimizer.Best.Value}");
        Assert.True(optimizer.IsDone);
        Assert.True(trace.Points.Count < 200, "converges (rho reaches rhoend) before the budget"); // 87 here
    }

    [Fact]
    public void Forty_evaluations_in_8_dimensions_improve_the_start_by_a_large_factor()
    {
        var f = Quadratic(C8);
        double start = f(new double[8]); // 4.3325
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 8, 40));
        var trace = Run(optimizer, f);
        Assert.Equal(40, trace.Points.Count);
        Assert.True(start / optimizer.Best!.Value > 100, $"start {start}, best {optimizer.Best.Value}"); // 0.0184: x235
        var serial = Optimizers.Create(new OptimizerSettings("cobyla", 8, 40));
        Run(serial, f);
        Assert.True(start / serial.Best!.Value > 100, $"serial best {serial.Best.Value}"); // 0.0103: x420, as scipy
    }

    [Fact]
    public void The_first_ask_is_the_start_and_one_step_along_each_axis()
    {
        double[] start = [0.2, -0.4, 1.0, 0];
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 4, 40, Start: start));
        var batch = optimizer.Ask();
        Assert.Equal(5, batch.Count);
        Assert.Equal(start, batch[0]);
        for (int i = 0; i < 4; i++)
        {
            var expected = (double[])start.Clone();
            expected[i] += 0.5;
            Assert.Equal(expected, batch[i + 1]);
        }
        optimizer.Tell([5, 4, 3, 2, 1]);
        Assert.Single(optimizer.Ask()); // then one point at a time

        var zero = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 8, 40)).Ask();
        Assert.Equal(9, zero.Count);
        Assert.All(zero[0], v => Assert.Equal(0, v));
        for (int i = 0; i < 8; i++) Assert.Equal(0.5, zero[i + 1][i]);
    }

    [Fact]
    public void A_start_step_that_would_leave_the_box_is_clipped()
    {
        var batch = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 2, 40, Start: [1.2, 0])).Ask();
        Assert.Equal([1.5, 0], batch[1]); // 1.2 + 0.5 clipped to the bound
    }

    [Fact]
    public void An_optimum_outside_the_box_ends_on_the_bound()
    {
        double[] c = [3.0, -0.4, 0.8];
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 3, 300));
        var trace = Run(optimizer, Quadratic(c));
        var best = optimizer.Best!.Point;
        Assert.Equal(1.5, best[0], 1e-9);
        Assert.Equal(-0.4, best[1], 1e-3);
        Assert.Equal(0.8, best[2], 1e-3);
        Assert.Equal(2.25, optimizer.Best.Value, 1e-6);
        Assert.All(trace.Points, p => Assert.All(p, v => Assert.InRange(v, -1.5, 1.5)));
    }

    [Fact]
    public void Rosenbrock_creeps_along_the_valley_toward_1_1()
    {
        // Linear models are slow on Rosenbrock's curved valley: after 500 evaluations COBYLA (ours and
        // scipy's alike, see the trace test below) is at (0.700, 0.488), f = 0.0903, from f(0, 0) = 1.
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 2, 500, Lower: -2, Upper: 2));
        var trace = Run(optimizer, Rosenbrock);
        var best = optimizer.Best!.Point;
        Assert.Equal(500, trace.Points.Count);
        Assert.True(optimizer.Best.Value < 0.1, $"f = {optimizer.Best.Value}");
        Assert.InRange(best[0], 0.65, 1.0);
        Assert.True(Math.Abs(best[1] - best[0] * best[0]) < 0.05, "stays in the valley");
        // With more evaluations it gets closer: rho reaches 1e-4 after 2925 evaluations at (0.929, 0.862).
        var longer = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 2, 5000, Lower: -2, Upper: 2));
        Run(longer, Rosenbrock);
        Assert.True(longer.Best!.Value < 0.01, $"f = {longer.Best.Value}");
        Assert.True(MaxAbsDiff(longer.Best.Point, [1, 1]) < 0.15);
    }

    [Fact]
    public void Hand_derived_trace_of_a_linear_function_in_one_dimension()
    {
        // f(x) = x on [-1.5, 1.5] from 0 with rhobeg 0.5: the simplex {0, 0.5}, then trust region steps of
        // length rho = 0.5 down the exact linear model, -0.5, -1, -1.5, where the bound stops it. The remaining
        // asks are COBYLA's steps beyond the bound, clipped back onto it.
        var trace = Run(new OptimizerSettings("cobyla-parallel", 1, 50), x => x[0]);
        Assert.Equal([0, 0.5, -0.5, -1, -1.5], trace.Points.Take(5).Select(p => p[0]));
        Assert.All(trace.Points.Skip(5), p => Assert.Equal(-1.5, p[0]));
        Assert.True(trace.Points.Count < 50);
    }

    [Fact]
    public void Parallel_and_serial_starts_coincide_when_no_start_step_improves()
    {
        // f(start + 0.5 e_i) >= f(start) for every i when c_i <= 0.25: then Powell's sequential start and the
        // parallel batch build the same simplex, and everything after it is the same.
        var f = Quadratic([0.2, -0.4, 0.1, -1.0, 0.25]);
        var parallel = Run(new OptimizerSettings("cobyla-parallel", 5, 150), f);
        var serial = Run(new OptimizerSettings("cobyla", 5, 150), f);
        AssertSamePoints(serial.Points, parallel.Points);
        Assert.Equal(6, parallel.BatchSizes[0]);
        Assert.Equal(1, serial.BatchSizes[0]);
    }

    [Fact]
    public void Cobyla_serial_reproduces_scipy_cobyla_bit_for_bit()
    {
        // Recorded with scipy 1.10.1 (Debian 12's python3-scipy, Powell's cobyla2.f):
        //   minimize(lambda x: sum((clip(x) - c)**2), zeros(3), method="COBYLA",
        //            constraints=[{"type": "ineq", "fun": lambda x: concatenate([x + 1.5, 1.5 - x])}],
        //            options={"rhobeg": 0.5, "maxiter": 300, "catol": 0}, tol=1e-4)
        // with c = (3, -0.4, 0.8), recording clip(x, -1.5, 1.5) at every call.
        var trace = Run(new OptimizerSettings("cobyla", 3, 300), Quadratic([3.0, -0.4, 0.8]));
        AssertSamePoints(ScipyBound3Trace, trace.Points);

        // Same recording for sum((x - C5)^2), budget 200: 104 evaluations, the best at call 103.
        var quad = Optimizers.Create(new OptimizerSettings("cobyla", 5, 200));
        var q = Run(quad, Quadratic(C5));
        Assert.Equal(104, q.Points.Count);
        Assert.Equal(8.232098182546791e-10, quad.Best!.Value, 1e-20);
        AssertSamePoints([[0.29998596750049544, -0.6999950309304858, 1.0999982766913254, -0.20001990351749324, 0.9000142298040282]], [quad.Best.Point]);

        // And Rosenbrock on [-2, 2]^2, budget 500: the best is the 500th call.
        var rosen = Optimizers.Create(new OptimizerSettings("cobyla", 2, 500, Lower: -2, Upper: 2));
        Run(rosen, Rosenbrock);
        Assert.Equal(0.09034493962396417, rosen.Best!.Value, 1e-16);
        AssertSamePoints([[0.6997654472663847, 0.4882428601046168]], [rosen.Best.Point]);
    }

    [Fact]
    public void Seed_is_unused_and_nothing_is_random()
    {
        var a = Run(new OptimizerSettings("cobyla-parallel", 4, 60, Seed: 1), Mixed);
        var b = Run(new OptimizerSettings("cobyla-parallel", 4, 60, Seed: 12345), Mixed);
        AssertSamePoints(a.Points, b.Points);
    }

    [Fact]
    public void A_failed_evaluation_is_avoided()
    {
        // NaN (a crashed evaluation) is the worst value: COBYLA moves away from it and still converges.
        var f = Quadratic([-0.3, 0.6]);
        var optimizer = Optimizers.Create(new OptimizerSettings("cobyla-parallel", 2, 200));
        var trace = Run(optimizer, x => x[0] > 0.4 ? double.NaN : f(x));
        Assert.True(MaxAbsDiff(optimizer.Best!.Point, [-0.3, 0.6]) < 1e-3);
        Assert.Contains(trace.Values, double.IsNaN);
    }

    private static readonly double[][] ScipyBound3Trace =
    [
        [0.0, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [0.5, 0.5, 0.0],
        [0.5, 0.0, 0.5],
        [0.977629263575664, -0.11289418957242972, 0.5955258527151329],
        [1.4418834427915568, -0.2546212420434727, 0.715448743267554],
        [1.4999999999999998, -0.5017780498695797, 1.146187617904435],
        [1.5, -0.2850828287168061, 1.2657689534772512],
        [1.5, -0.8440634669723525, 0.7817144457246696],
        [1.5, -0.2713861199847778, 1.0491332071651156],
        [1.5, -0.18925748564719905, 0.8130084786383383],
        [1.5, -0.3948033342595462, 0.6707028072185736],
        [1.5, -0.4406357522738031, 0.42493993480093917],
        [1.5, -0.3948033342595462, 0.6707028072185736],
        [1.5, -0.5632940363871034, 0.8553941261714761],
        [1.5, -0.44585195643901354, 0.5566018073387391],
        [1.5, -0.34372054896221865, 0.7067139033733303],
        [1.5, -0.3724375400395208, 0.7622259239046184],
        [1.5, -0.3800687124015864, 0.824258296166047],
        [1.4708330504800915, -0.4351957303656853, 0.8201900107668858],
        [1.5, -0.394283806772931, 0.8198625733141128],
        [1.4999999999999998, -0.34192042110225934, 0.8400901443121774],
        [1.4999999999999998, -0.40799900397789696, 0.8256318586256689],
        [1.5, -0.39109536596905786, 0.8052904688149332],
        [1.5, -0.40786746806716556, 0.7920972476928255],
        [1.5, -0.39109536596905786, 0.8052904688149333],
        [1.5, -0.3821682717225229, 0.7946820275611635],
        [1.5, -0.3928512950172003, 0.8077487775728186],
        [1.5, -0.39411841361925465, 0.8028189063805738],
        [1.5, -0.397381792298894, 0.8028470142899575],
        [1.5, -0.405193342645, 0.8029688233218497],
        [1.4982472828031814, -0.3965729594672683, 0.7952767482359498],
        [1.4999589804303448, -0.39730603664626096, 0.8067523142193482],
        [1.4997665630952814, -0.3972869923900477, 0.8009102082969827],
        [1.4990304665546832, -0.39737996873894127, 0.802963958248534],
        [1.5, -0.39621225066088495, 0.8012827669877102],
        [1.5, -0.3990270294482418, 0.8017944498083077],
        [1.5, -0.40045986696200797, 0.8004671691579668],
        [1.5, -0.4021363693404469, 0.7994651526707204],
        [1.5, -0.40043838794252956, 0.8007974421832645],
        [1.5, -0.4005898859124069, 0.7985183766245856],
        [1.499995853628707, -0.401433932132432, 0.8005368410158307],
        [1.4999461436425943, -0.39948481335540287, 0.8004738229854085],
        [1.4999730718212971, -0.3999723401587054, 0.8004704960716876],
        [1.4999175644573792, -0.40046598785560283, 0.8006968897725181],
        [1.5, -0.4005303409993657, 0.7999840004615884],
        [1.5, -0.40033042174895445, 0.7998438686019332],
        [1.5, -0.40013882420040703, 0.7996925575839405],
        [1.5, -0.4002643862848636, 0.7994831803938689],
        [1.5, -0.40013882420040703, 0.7996925575839405],
        [1.5, -0.39989684081280835, 0.7997249409886668],
        [1.5, -0.3999039442702102, 0.7999689782515352],
        [1.5, -0.399849659756943, 0.8002070073178165],
        [1.5, -0.3998817093335759, 0.800066474957084],
        [1.5, -0.3999039442702102, 0.7999689782515352],
        [1.5, -0.3998093319793221, 0.7999365974792636],
        [1.5, -0.4000038889509747, 0.7999656524754043],
        [1.5, -0.4000845834429166, 0.7999065898055506],
    ];
}
