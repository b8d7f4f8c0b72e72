using LoraHub.Core.Lora;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Lora;

/// <summary>
/// PEFT's LoRA layer on hand-sized matrices: y = x Wᵀ + b + x Aᵀ Bᵀ, checked against sums written out here, for one
/// adapter and for C candidates in one batch; and the injector that puts the layer in a model's place.
/// </summary>
public sealed class LoraLayerTests
{
    // W [out 2, in 3], b [2], A [r 2, in 3], B [out 2, r 2] (scale already in B, as ComposedModel hands them over).
    private static readonly double[,] W = { { 1, 2, 3 }, { -1, 0.5, 0 } };
    private static readonly double[] Bias = [0.25, -0.5];
    private static readonly double[,] A1 = { { 1, 0, -1 }, { 0.5, 2, 0 } };
    private static readonly double[,] B1 = { { 1, -2 }, { 0, 3 } };
    private static readonly double[,] A2 = { { 0, 1, 0 }, { -1, 0, 2 } };
    private static readonly double[,] B2 = { { 0.5, 0 }, { 1, 1 } };

    private static Linear BaseLinear()
    {
        var linear = nn.Linear(3, 2);
        using (no_grad())
        {
            linear.weight!.copy_(Tensor(W));
            linear.bias!.copy_(tensor(Bias.Select(v => (float)v).ToArray()));
        }
        return linear;
    }

    private static Tensor Tensor(double[,] m) =>
        tensor(Enumerable.Range(0, m.GetLength(0)).SelectMany(i => Enumerable.Range(0, m.GetLength(1)).Select(j => (float)m[i, j])).ToArray(),
            [m.GetLength(0), m.GetLength(1)]);

    /// <summary>x Wᵀ + b (+ x Aᵀ Bᵀ) for one row, by hand.</summary>
    private static double[] Expected(double[] x, double[,]? a = null, double[,]? b = null)
    {
        var y = new double[2];
        for (var o = 0; o < 2; o++)
        {
            y[o] = Bias[o];
            for (var i = 0; i < 3; i++) y[o] += x[i] * W[o, i];
        }
        if (a is null || b is null) return y;
        var down = new double[2];
        for (var r = 0; r < 2; r++)
            for (var i = 0; i < 3; i++) down[r] += x[i] * a[r, i];
        for (var o = 0; o < 2; o++)
            for (var r = 0; r < 2; r++) y[o] += down[r] * b[o, r];
        return y;
    }

    private static readonly double[][] Rows = [[1, 2, 3], [-1, 0.5, 2], [0, 0, 1], [2, -1, 0.5]];

    private static void AssertRows(Tensor y, IReadOnlyList<double[]> expected)
    {
        var flat = y.reshape(-1, 2).data<float>().ToArray();
        Assert.Equal(expected.Count * 2, flat.Length);
        for (var r = 0; r < expected.Count; r++)
            for (var o = 0; o < 2; o++)
                Assert.True(Math.Abs(flat[2 * r + o] - expected[r][o]) < 1e-4, $"row {r} out {o}: {flat[2 * r + o]} vs {expected[r][o]}");
    }

    private static Tensor Input(IEnumerable<double[]> rows, params long[] shape) =>
        tensor(rows.SelectMany(r => r.Select(v => (float)v)).ToArray(), shape);

    [Fact]
    public void Without_an_adapter_the_layer_is_its_base_linear()
    {
        using var layer = new LoraLinear(BaseLinear());
        Assert.False(layer.HasAdapter);
        Assert.Equal((3L, 2L), (layer.InFeatures, layer.OutFeatures));
        using var y = layer.forward(Input(Rows, 4, 3));
        AssertRows(y, Rows.Select(x => Expected(x)).ToList());
    }

    [Fact]
    public void One_adapter_adds_x_At_Bt_to_every_row_and_clearing_removes_it()
    {
        using var layer = new LoraLinear(BaseLinear());
        layer.SetAdapter(Tensor(A1), Tensor(B1));
        Assert.True(layer.HasAdapter);
        // A batch of 2 sequences of 2 tokens: the adapter applies to every row, whatever the leading shape.
        using var y = layer.forward(Input(Rows, 2, 2, 3));
        Assert.Equal(new long[] { 2, 2, 2 }, y.shape);
        AssertRows(y, Rows.Select(x => Expected(x, A1, B1)).ToList());

        layer.ClearAdapter();
        Assert.False(layer.HasAdapter);
        using var plain = layer.forward(Input(Rows, 4, 3));
        AssertRows(plain, Rows.Select(x => Expected(x)).ToList());
    }

    [Fact]
    public void Grouped_adapters_apply_candidate_c_to_the_c_th_group_of_rows()
    {
        using var layer = new LoraLinear(BaseLinear());
        using var a = stack([Tensor(A1), Tensor(A2)]);
        using var b = stack([Tensor(B1), Tensor(B2)]);
        layer.SetAdapter(a, b);
        // Batch [C*G = 4, L = 1, in]: rows 0-1 are candidate 0's group, rows 2-3 candidate 1's.
        using var y = layer.forward(Input(Rows, 4, 1, 3));
        Assert.Equal(new long[] { 4, 1, 2 }, y.shape);
        AssertRows(y, [Expected(Rows[0], A1, B1), Expected(Rows[1], A1, B1), Expected(Rows[2], A2, B2), Expected(Rows[3], A2, B2)]);
    }

    [Fact]
    public void Adapters_that_do_not_fit_the_layer_are_refused_with_their_shapes()
    {
        using var layer = new LoraLinear(BaseLinear());
        void Refused(Tensor a, Tensor b)
        {
            var e = Assert.Throws<ArgumentException>(() => layer.SetAdapter(a, b));
            Assert.Contains($"A [{string.Join(", ", a.shape)}], B [{string.Join(", ", b.shape)}]", e.Message);
            Assert.Contains("3->2 layer", e.Message);
            Assert.False(layer.HasAdapter);
        }
        Refused(zeros(2, 4), zeros(2, 2));          // A's input width is not the layer's
        Refused(zeros(2, 3), zeros(3, 2));          // B's output is not the layer's
        Refused(zeros(2, 3), zeros(2, 3));          // ranks differ
        Refused(zeros(2, 3), zeros(1, 2, 2));       // one 2-D, one 3-D
        Refused(zeros(2, 2, 3), zeros(3, 2, 2));    // 2 candidates' A, 3 candidates' B
        Refused(zeros(1, 1, 2, 3), zeros(1, 1, 2, 2)); // 4-D
        Refused(zeros(3), zeros(2));                // vectors
        // Each boundary alone is fine.
        layer.SetAdapter(zeros(5, 3), zeros(2, 5));
        layer.SetAdapter(zeros(4, 1, 3), zeros(4, 2, 1));
        Assert.True(layer.HasAdapter);
    }

    [Fact]
    public void Wrapping_puts_a_lora_layer_in_place_and_keeps_the_parameter_names()
    {
        using var model = new TinyBlock();
        var before = model.named_parameters().Select(p => p.name).ToList();
        var lora = LoraInjector.Wrap(model, "attn.v");
        Assert.Same(lora, LoraInjector.Wrap(model, "attn.v")); // wrapping twice returns the same layer
        Assert.Same(lora, model.Attention.VField);
        Assert.Equal(before, model.named_parameters().Select(p => p.name).ToList());
        var top = LoraInjector.Wrap(model, "out");
        Assert.Same(top, model.OutField);

        // The wrapped model computes through the adapter.
        lora.SetAdapter(Tensor(A1), Tensor(B1));
        using var x = Input(Rows, 4, 3);
        using var y = model.Attention.VField.forward(x);
        AssertRows(y, Rows.Select(r => Expected(r, A1, B1)).ToList());
    }

    [Theory]
    [InlineData("nothing.v", "has no layer 'nothing.v'")]
    [InlineData("attn.missing", "has no layer 'attn.missing'")]
    [InlineData("attn.q", "declared as Linear and cannot hold a LoRA layer")]
    [InlineData("attn.act", "is a ReLU, not a Linear")]
    [InlineData("attn.empty", "is a null, not a Linear")]
    public void Layers_that_cannot_take_an_adapter_are_refused_by_path(string path, string problem)
    {
        using var model = new TinyBlock();
        var e = Assert.Throws<KeyNotFoundException>(() => LoraInjector.Wrap(model, path));
        Assert.Contains(problem, e.Message);
        Assert.Contains(path, e.Message);
    }

    private sealed class TinyAttention : nn.Module<Tensor, Tensor>
    {
#pragma warning disable IDE0044 // the injector replaces these fields
        private Linear q = BaseLinear();
        private nn.Module<Tensor, Tensor> v = BaseLinear();
        private nn.Module<Tensor, Tensor> act = nn.ReLU();
        private nn.Module<Tensor, Tensor>? empty = null;
#pragma warning restore IDE0044
        public TinyAttention() : base("attn") => RegisterComponents();
        public nn.Module<Tensor, Tensor> VField => v;
        public override Tensor forward(Tensor x) => act.forward(v.forward(q.forward(x)));
        internal bool HasEmpty => empty is not null;
    }

    private sealed class TinyBlock : nn.Module<Tensor, Tensor>
    {
#pragma warning disable IDE0044
        private TinyAttention attn = new();
        private nn.Module<Tensor, Tensor> @out = BaseLinear();
#pragma warning restore IDE0044
        public TinyBlock() : base("block") => RegisterComponents();
        public TinyAttention Attention => attn;
        public nn.Module<Tensor, Tensor> OutField => @out;
        public override Tensor forward(Tensor x) => @out.forward(attn.forward(x));
    }
}

/// <summary>LoraLinear.FoldFactor is process-wide: these tests change it, so they run alone.</summary>
[CollectionDefinition(nameof(FoldFactorCollection), DisableParallelization = true)]
public sealed class FoldFactorCollection;

/// <summary>
/// The folded path (W + B A formed once when the rows outnumber what the side path saves) computes the same layer: with
/// FoldFactor 1 a batch of many rows folds, a batch of one row does not, and both equal the hand-written sums.
/// </summary>
[Collection(nameof(FoldFactorCollection))]
public sealed class LoraLayerFoldTests
{
    [Fact]
    public void Folding_many_rows_gives_the_side_paths_numbers()
    {
        var old = LoraLinear.FoldFactor;
        try
        {
            var linear = nn.Linear(3, 2);
            var rng = new Random(7);
            float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            using (no_grad())
            {
                linear.weight!.copy_(tensor(R(6), [2, 3]));
                linear.bias!.copy_(tensor(R(2)));
            }
            using var layer = new LoraLinear(linear);
            using var a = tensor(R(6), [2, 3]);
            using var b = tensor(R(4), [2, 2]);
            layer.SetAdapter(a, b);
            using var many = tensor(R(3 * 40), [40, 3]);
            using var one = tensor(R(3), [1, 3]);
            // The exact layer: x (W + B A)ᵀ + bias, in double precision.
            Tensor Exact(Tensor x) => x.to(float64).matmul((linear.weight!.to(float64) + b.to(float64).matmul(a.to(float64))).t()) + linear.bias!.to(float64);

            LoraLinear.FoldFactor = double.PositiveInfinity;
            using var sideMany = layer.forward(many);
            LoraLinear.FoldFactor = 1.0;
            Tensor foldMany, foldOne;
            using (no_grad())
            {
                foldMany = layer.forward(many);
                foldOne = layer.forward(one);
            }
            // With autograd on the layer never folds (a folded weight would not carry gradients to A and B).
            using var grad = enable_grad();
            using var gradMany = layer.forward(many);

            foreach (var (y, x) in new[] { (sideMany, many), (foldMany, many), (foldOne, one), (gradMany, many) })
            {
                using var exact = Exact(x);
                Assert.True((y.to(float64) - exact).abs().max().item<double>() < 1e-5);
            }
        }
        finally
        {
            LoraLinear.FoldFactor = old;
        }
    }
}
