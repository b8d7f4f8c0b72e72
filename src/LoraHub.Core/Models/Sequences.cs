using LoraHub.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>
/// What both model families share about sequences: padding, the masked per-example loss and the greedy loop over a
/// batch. Each family file (Seq2Seq, CausalLm) holds only how its model reads an example.
/// </summary>
internal static class Sequences
{
    /// <summary>
    /// Pads sequences into [batch, maxLength] ids and a 1/0 mask: on the right, or on the left (generation keeps the
    /// ends of decoder-only prompts aligned).
    /// </summary>
    public static (Tensor Ids, Tensor Mask) Pad(IReadOnlyList<int[]> sequences, int padId, Device device, bool left = false)
    {
        var length = sequences.Max(s => s.Length);
        var ids = new long[sequences.Count * length];
        var mask = new long[sequences.Count * length];
        for (var i = 0; i < sequences.Count; i++)
        {
            var offset = left ? length - sequences[i].Length : 0;
            for (var j = 0; j < length; j++)
            {
                var inside = j >= offset && j < offset + sequences[i].Length;
                ids[i * length + j] = inside ? sequences[i][j - offset] : padId;
                mask[i * length + j] = inside ? 1 : 0;
            }
        }
        return (tensor(ids, [sequences.Count, length], device: device), tensor(mask, [sequences.Count, length], device: device));
    }

    /// <summary>Each position's negative log-likelihood of its target, computed in F32 whatever the model's type.</summary>
    public static Tensor TokenNll(Tensor logits, Tensor targets) =>
        -nn.functional.log_softmax(logits.to(ScalarType.Float32), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);

    /// <summary>The mean NLL over each row's scored positions (mask 1): one loss per example, as the reference's batch_size=1.</summary>
    public static Tensor MaskedMean(Tensor nll, Tensor mask)
    {
        var weight = mask.to(ScalarType.Float32);
        return (nll * weight).sum(1) / weight.sum(1);
    }

    /// <summary>
    /// Per-example losses without gradients, as doubles, with the examples split into <see cref="ForwardParts"/> run at
    /// the same time. The rows are <paramref name="groups"/> equal blocks of the same examples (one block per candidate
    /// in a grouped evaluation: LoraLinear gives block c adapter c); each part takes the same range of examples from
    /// every block, so a part is again a grouped batch, and the losses come back in the rows' order.
    /// </summary>
    public static double[] Losses<T>(IReadOnlyList<T> rows, int groups, Device device, Func<IReadOnlyList<T>, Tensor> perExampleLoss) =>
        Losses(rows, groups, PartsOn(device), perExampleLoss);

    /// <summary>The device a model computes on (that of its first parameter).</summary>
    public static Device DeviceOf(nn.Module model) => model.parameters().First().device;

    /// <summary>
    /// Parts for a forward pass on this device: <see cref="ForwardParts.Count"/> on the CPU; one on a GPU, where the
    /// kernels of one batch already fill the device and parts would only queue on its stream.
    /// </summary>
    public static int PartsOn(Device device) => device.type == DeviceType.CPU ? ForwardParts.Count : 1;

    /// <summary><see cref="Losses{T}(IReadOnlyList{T}, int, Device, Func{IReadOnlyList{T}, Tensor})"/> in at most maxParts parts.</summary>
    internal static double[] Losses<T>(IReadOnlyList<T> rows, int groups, int maxParts, Func<IReadOnlyList<T>, Tensor> perExampleLoss)
    {
        if (groups < 1 || rows.Count % groups != 0)
            throw new ArgumentException($"{rows.Count} rows are not {groups} equal groups", nameof(groups));
        var n = rows.Count / groups;
        var parts = Math.Min(maxParts, n);
        if (parts <= 1) return ToDoubles(rows.Count, () => perExampleLoss(rows));
        int Start(int p) => p * n / parts;
        var losses = ForwardParts.Run(parts, p =>
        {
            var (from, to) = (Start(p), Start(p + 1));
            var part = Enumerable.Range(0, groups).SelectMany(g => Enumerable.Range(g * n + from, to - from)).Select(i => rows[i]).ToList();
            return ToDoubles(part.Count, () => perExampleLoss(part));
        });
        var all = new double[rows.Count];
        for (var p = 0; p < parts; p++)
        {
            var width = Start(p + 1) - Start(p);
            for (var g = 0; g < groups; g++)
                Array.Copy(losses[p], g * width, all, g * n + Start(p), width);
        }
        return all;
    }

    /// <summary>Evaluates per-example losses without gradients and brings them to the host as doubles.</summary>
    public static double[] ToDoubles(int count, Func<Tensor> perExampleLoss)
    {
        if (count == 0) return [];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return perExampleLoss().to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>
    /// Greedy decoding of rows that move together: step(s, previous) returns each row's next token (previous is null at
    /// the first step). A row stops after its eos; a finished row keeps being fed pad (the batch moves together) but
    /// its tokens are dropped. The loop ends when every row has stopped, or after maxNewTokens.
    /// </summary>
    public static int[][] GreedyRows(int rows, int maxNewTokens, long padId, Func<int, bool> isEos, Func<int, long[]?, long[]> step)
    {
        var outputs = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();
        var done = new bool[rows];
        long[]? next = null;
        for (var s = 0; s < maxNewTokens && !done.All(d => d); s++)
        {
            var chosen = step(s, next);
            next = new long[rows];
            for (var i = 0; i < rows; i++)
            {
                next[i] = done[i] ? padId : chosen[i];
                if (done[i]) continue;
                outputs[i].Add((int)chosen[i]);
                if (isEos((int)chosen[i])) done[i] = true;
            }
        }
        return outputs.Select(o => o.ToArray()).ToArray();
    }
}
