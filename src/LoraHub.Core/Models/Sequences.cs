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
