using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>Teacher-forced loss and greedy generation for any encoder-decoder model.</summary>
public static class Seq2Seq
{
    /// <summary>
    /// Each example's mean token cross-entropy over its labels (EOS included), from one padded batch:
    /// decoder input = [start] + labels[:-1], padding masked in the encoder and ignored in the loss.
    /// Rows in <paramref name="groups"/> equal blocks are a grouped evaluation (one block per candidate adapter); the
    /// examples are split into parts computed at the same time (Sequences.Losses).
    /// </summary>
    public static double[] ExampleLosses(ISeq2SeqModel model, IReadOnlyList<TokenizedExample> batch, int groups = 1) =>
        Sequences.Losses(batch, groups, Sequences.DeviceOf(model.Module), part => PerExampleLoss(model, part));

    /// <summary>
    /// The per-example losses [batch] as a tensor, differentiable when gradients are enabled (training uses
    /// its mean). Scoring and training share this one definition of the loss.
    /// </summary>
    public static Tensor PerExampleLoss(ISeq2SeqModel model, IReadOnlyList<TokenizedExample> batch) => PerExampleLoss(model, batch, null);

    /// <summary>The decoder's teacher-forced input for an example: [start] + labels[:-1].</summary>
    public static int[] DecoderInput(ISeq2SeqModel model, TokenizedExample example) => [model.DecoderStartTokenId, .. example.Labels[..^1]];

    /// <summary>
    /// <see cref="PerExampleLoss(ISeq2SeqModel, IReadOnlyList{TokenizedExample})"/> where the decoder reads
    /// <paramref name="decoderRead"/> (one sequence per example, as long as its labels) instead of its teacher-forced
    /// input: noisy teacher forcing corrupts what is read, not what is scored.
    /// </summary>
    internal static Tensor PerExampleLoss(ISeq2SeqModel model, IReadOnlyList<TokenizedExample> batch, IReadOnlyList<int[]>? decoderRead)
    {
        using var scope = NewDisposeScope();
        var device = Sequences.DeviceOf(model.Module);
        var (inputIds, inputMask) = Sequences.Pad(batch.Select(e => e.InputIds).ToList(), model.PadTokenId, device);
        var (decoderInput, _) = Sequences.Pad(decoderRead ?? batch.Select(e => DecoderInput(model, e)).ToList(), model.PadTokenId, device);
        var (labels, labelMask) = Sequences.Pad(batch.Select(e => e.Labels).ToList(), 0, device);

        var encoded = model.Encode(inputIds, inputMask);
        var logits = model.Decode(decoderInput, encoded, inputMask);
        return Sequences.MaskedMean(Sequences.TokenNll(logits, labels), labelMask).MoveToOuterDisposeScope();
    }

    /// <summary>Token-level negative log-likelihoods of one example (for inspection and tests).</summary>
    public static double[] TokenLosses(ISeq2SeqModel model, TokenizedExample example)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = Sequences.DeviceOf(model.Module);
        var input = tensor(example.InputIds.Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        var mask = ones_like(input);
        var decoder = tensor(DecoderInput(model, example).Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        var labels = tensor(example.Labels.Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        var logits = model.Decode(decoder, model.Encode(input, mask), mask);
        return Sequences.TokenNll(logits, labels).squeeze(0).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>
    /// Greedy decoding with a key/value cache: one decoder step per token, stopping after EOS
    /// (when stopAtEos) or after maxNewTokens. Returns the generated ids without the start token.
    /// </summary>
    public static int[] Greedy(ISeq2SeqModel model, int[] inputIds, int maxNewTokens, bool stopAtEos = true)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = Sequences.DeviceOf(model.Module);
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
        var device = Sequences.DeviceOf(model.Module);
        var (input, mask) = Sequences.Pad(inputs, model.PadTokenId, device);
        var encoded = model.Encode(input, mask);
        var cache = model.NewCache();
        try
        {
            return Sequences.GreedyRows(inputs.Count, maxNewTokens, model.PadTokenId, id => id == model.EosTokenId, (step, previous) =>
            {
                using var stepScope = NewDisposeScope();
                var ids = tensor(previous ?? Enumerable.Repeat((long)model.DecoderStartTokenId, inputs.Count).ToArray(), [inputs.Count, 1], device: device);
                var logits = model.Decode(ids, encoded, mask, cache, offset: step);
                return logits[.., -1].argmax(-1).cpu().data<long>().ToArray();
            });
        }
        finally
        {
            foreach (var c in cache) c.Dispose();
        }
    }
}
