using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>Teacher-forced loss and greedy generation for any encoder-decoder model.</summary>
public static class Seq2Seq
{
    /// <summary>
    /// Each example's mean token cross-entropy over its labels (EOS included), from one padded batch:
    /// decoder input = [start] + labels[:-1], padding masked in the encoder and ignored in the loss.
    /// </summary>
    public static double[] ExampleLosses(ISeq2SeqModel model, IReadOnlyList<TokenizedExample> batch)
    {
        if (batch.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return PerExampleLoss(model, batch).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>
    /// The per-example losses [batch] as a tensor, differentiable when gradients are enabled (training uses
    /// its mean). Scoring and training share this one definition of the loss.
    /// </summary>
    public static Tensor PerExampleLoss(ISeq2SeqModel model, IReadOnlyList<TokenizedExample> batch)
    {
        using var scope = NewDisposeScope();
        var device = model.Module.parameters().First().device;
        var (inputIds, inputMask) = Pad(batch.Select(e => e.InputIds).ToList(), model.PadTokenId, device);
        var decoderIds = batch.Select(e => new[] { model.DecoderStartTokenId }.Concat(e.Labels[..^1]).ToArray()).ToList();
        var (decoderInput, _) = Pad(decoderIds, model.PadTokenId, device);
        var (labels, labelMask) = Pad(batch.Select(e => e.Labels).ToList(), 0, device);

        var encoded = model.Encode(inputIds, inputMask);
        var logits = model.Decode(decoderInput, encoded, inputMask);
        var nll = -nn.functional.log_softmax(logits.to(ScalarType.Float32), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1);
        var mask = labelMask.to(ScalarType.Float32);
        return ((nll * mask).sum(1) / mask.sum(1)).MoveToOuterDisposeScope();
    }

    /// <summary>Token-level negative log-likelihoods of one example (for inspection and tests).</summary>
    public static double[] TokenLosses(ISeq2SeqModel model, TokenizedExample example)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Module.parameters().First().device;
        var input = tensor(example.InputIds.Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        var mask = ones_like(input);
        var decoder = tensor(new[] { (long)model.DecoderStartTokenId }.Concat(example.Labels[..^1].Select(x => (long)x)).ToArray(), device: device).unsqueeze(0);
        var labels = tensor(example.Labels.Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        var logits = model.Decode(decoder, model.Encode(input, mask), mask);
        var nll = -nn.functional.log_softmax(logits.to(ScalarType.Float32), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1);
        return nll.squeeze(0).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>
    /// Greedy decoding with a key/value cache: one decoder step per token, stopping after EOS
    /// (when stopAtEos) or after maxNewTokens. Returns the generated ids without the start token.
    /// </summary>
    public static int[] Greedy(ISeq2SeqModel model, int[] inputIds, int maxNewTokens, bool stopAtEos = true)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Module.parameters().First().device;
        var input = tensor(inputIds.Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        var mask = ones_like(input);
        var encoded = model.Encode(input, mask);
        var cache = model.NewCache();
        try
        {
            var generated = new List<int>();
            var next = model.DecoderStartTokenId;
            for (var step = 0; step < maxNewTokens; step++)
            {
                using var stepScope = NewDisposeScope();
                var ids = tensor(new long[] { next }, device: device).unsqueeze(0);
                var logits = model.Decode(ids, encoded, mask, cache, offset: step);
                next = (int)logits[0, -1].argmax().item<long>();
                generated.Add(next);
                if (stopAtEos && next == model.EosTokenId) break;
            }
            return generated.ToArray();
        }
        finally
        {
            foreach (var c in cache) c.Dispose();
        }
    }

    /// <summary>
    /// Greedy decoding of several inputs at once (padded encoder batch, one cached decoder step for all).
    /// Each output stops after its EOS; the loop stops when all have, or after maxNewTokens.
    /// Gives the same tokens as Greedy one by one (padding is masked).
    /// </summary>
    public static int[][] GreedyBatch(ISeq2SeqModel model, IReadOnlyList<int[]> inputs, int maxNewTokens)
    {
        if (inputs.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Module.parameters().First().device;
        var (input, mask) = Pad(inputs, model.PadTokenId, device);
        var encoded = model.Encode(input, mask);
        var cache = model.NewCache();
        var outputs = inputs.Select(_ => new List<int>()).ToArray();
        var done = new bool[inputs.Count];
        try
        {
            var next = Enumerable.Repeat((long)model.DecoderStartTokenId, inputs.Count).ToArray();
            for (var step = 0; step < maxNewTokens && !done.All(d => d); step++)
            {
                using var stepScope = NewDisposeScope();
                var ids = tensor(next, [inputs.Count, 1], device: device);
                var logits = model.Decode(ids, encoded, mask, cache, offset: step);
                var chosen = logits[.., -1].argmax(-1).cpu().data<long>().ToArray();
                for (var i = 0; i < inputs.Count; i++)
                {
                    // A finished row keeps decoding (the batch moves together) but its tokens are dropped.
                    next[i] = done[i] ? model.PadTokenId : chosen[i];
                    if (done[i]) continue;
                    outputs[i].Add((int)chosen[i]);
                    if (chosen[i] == model.EosTokenId) done[i] = true;
                }
            }
            return outputs.Select(o => o.ToArray()).ToArray();
        }
        finally
        {
            foreach (var c in cache) c.Dispose();
        }
    }

    /// <summary>
    /// Pads sequences into [batch, maxLength] ids and a 1/0 mask: on the right, or on the left (generation keeps the
    /// ends of decoder-only prompts aligned).
    /// </summary>
    internal static (Tensor Ids, Tensor Mask) Pad(IReadOnlyList<int[]> sequences, int padId, Device device, bool left = false)
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
}
