using LoraHub.Core.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>
/// One tokenized few-shot example for a decoder-only model, as the model reads it: PromptIds are everything before the
/// first predicted token (bos + tokens(input)), CompletionIds are the predicted tokens (tokens(output) + eos). The
/// model reads PromptIds ++ CompletionIds; the loss covers CompletionIds only.
/// </summary>
public sealed record CausalExample(int[] PromptIds, int[] CompletionIds)
{
    /// <summary>
    /// The few-shot convention: input and output tokenized separately (each without special tokens) and the ids
    /// joined: prompt = [bos] + inputIds (no bos when the model has none), completion = outputIds + [eos].
    /// </summary>
    public static CausalExample Join(int? bos, IReadOnlyList<int> inputIds, IReadOnlyList<int> outputIds, int eos) =>
        new(bos is int b ? [b, .. inputIds] : [.. inputIds], [.. outputIds, eos]);

    /// <summary>Tokenizes input and output separately with the tokenizer's bos and eos (see <see cref="Join"/>).</summary>
    public static CausalExample FromText(ITextTokenizer tokenizer, string input, string output) =>
        Of(FewShotFormat.DecoderOnly.Tokenize(tokenizer, input, output));

    /// <summary>The generation prompt for an input: [bos] + tokens(input).</summary>
    public static int[] Prompt(ITextTokenizer tokenizer, string input)
    {
        var ids = tokenizer.Encode(input, addSpecialTokens: false).Ids;
        return tokenizer.BosId is int b ? [b, .. ids] : [.. ids];
    }

    /// <summary>A family-neutral tokenized example read the decoder-only way: prompt = InputIds, completion = Labels.</summary>
    public static CausalExample Of(TokenizedExample example) => new(example.InputIds, example.Labels);

    /// <summary>PromptIds ++ CompletionIds.</summary>
    public int[] InputIds => [.. PromptIds, .. CompletionIds];
}

/// <summary>Teacher-forced loss and greedy generation for any decoder-only model.</summary>
public static class CausalLm
{
    /// <summary>
    /// Each example's mean token cross-entropy over its completion (eos included), from one right-padded batch
    /// (no gradients). logits[t] predicts ids[t + 1]; prompt positions and padding are not scored.
    /// Rows in <paramref name="groups"/> equal blocks are a grouped evaluation (one block per candidate adapter); the
    /// examples are split into parts computed at the same time (Sequences.Losses).
    /// </summary>
    public static double[] ExampleLosses(ICausalLanguageModel model, IReadOnlyList<CausalExample> batch, int groups = 1) =>
        Sequences.Losses(batch, groups, Sequences.DeviceOf(model.Module), part => PerExampleLoss(model, part));

    /// <summary>
    /// The per-example losses [batch] as a tensor, differentiable when gradients are enabled (training uses its
    /// mean). Scoring and training share this one definition of the loss.
    /// </summary>
    public static Tensor PerExampleLoss(ICausalLanguageModel model, IReadOnlyList<CausalExample> batch) => PerExampleLoss(model, batch, null);

    /// <summary>
    /// <see cref="PerExampleLoss(ICausalLanguageModel, IReadOnlyList{CausalExample})"/> where the model reads
    /// <paramref name="read"/> (one sequence per example, as long as its InputIds) instead of the examples' own ids,
    /// while the scored targets stay the examples' ids: noisy teacher forcing corrupts what is read, not what is scored.
    /// </summary>
    internal static Tensor PerExampleLoss(ICausalLanguageModel model, IReadOnlyList<CausalExample> batch, IReadOnlyList<int[]>? read)
    {
        if (batch.Count == 0) throw new ArgumentException("the batch is empty");
        foreach (var e in batch) Check(e);
        using var scope = NewDisposeScope();
        var device = Sequences.DeviceOf(model.Module);
        var sequences = batch.Select(e => e.InputIds).ToList();
        if (read is not null && (read.Count != batch.Count || read.Where((r, i) => r.Length != sequences[i].Length).Any()))
            throw new ArgumentException("the read sequences must match the examples one to one in length", nameof(read));
        var (ids, mask) = Sequences.Pad(read ?? sequences, model.PadTokenId, device);
        var truth = read is null ? ids : Sequences.Pad(sequences, model.PadTokenId, device).Ids;

        // Target j (ids[:, j + 1]) is scored when it is a completion token: prompt.Length - 1 <= j < length - 1.
        var width = ids.shape[1] - 1;
        var weight = new float[batch.Count * width];
        for (var i = 0; i < batch.Count; i++)
            for (var j = batch[i].PromptIds.Length - 1; j < sequences[i].Length - 1; j++) weight[i * width + j] = 1f;
        var scored = tensor(weight, [batch.Count, width], device: device);

        var logits = model.Forward(ids, mask);
        var targets = truth[.., 1..];
        return Sequences.MaskedMean(Sequences.TokenNll(logits[.., ..(int)width], targets), scored).MoveToOuterDisposeScope();
    }

    /// <summary>Token-level negative log-likelihoods of one example's completion tokens, in order.</summary>
    public static double[] TokenLosses(ICausalLanguageModel model, CausalExample example)
    {
        Check(example);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = Sequences.DeviceOf(model.Module);
        var all = example.InputIds;
        var ids = tensor(all.Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        var logits = model.Forward(ids);
        var from = example.PromptIds.Length - 1;
        var predicting = logits[0, from..(all.Length - 1)];
        var targets = ids[0, (from + 1)..];
        return Sequences.TokenNll(predicting, targets).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>
    /// Greedy continuation of promptIds (bos + tokens(input)) with a key/value cache: one forward for the prompt,
    /// then one step per token, stopping after an eos (when stopAtEos) or after maxNewTokens. Returns the new ids.
    /// </summary>
    public static int[] Greedy(ICausalLanguageModel model, int[] promptIds, int maxNewTokens, bool stopAtEos = true)
    {
        if (promptIds.Length == 0) throw new ArgumentException("the prompt is empty (it needs at least the bos token)", nameof(promptIds));
        if (maxNewTokens <= 0) return [];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = Sequences.DeviceOf(model.Module);
        using var cache = model.NewCache();
        var generated = new List<int>();
        var ids = tensor(promptIds.Select(x => (long)x).ToArray(), device: device).unsqueeze(0);
        for (var step = 0; step < maxNewTokens; step++)
        {
            int next;
            using (NewDisposeScope())
            {
                using var logits = model.Forward(ids, null, cache);
                next = (int)logits[0, -1].argmax().item<long>();
            }
            generated.Add(next);
            if (stopAtEos && model.EosTokenIds.Contains(next)) break;
            ids = tensor(new long[] { next }, device: device).unsqueeze(0);
        }
        return generated.ToArray();
    }

    /// <summary>
    /// Greedy continuation of several prompts at once: left-padded into one batch (positions counted from the mask,
    /// so each row computes as it would alone), one cached step for all. Each output stops after its eos; the loop
    /// stops when all have, or after maxNewTokens. Gives the same tokens as <see cref="Greedy"/> one by one.
    /// </summary>
    public static int[][] GreedyBatch(ICausalLanguageModel model, IReadOnlyList<int[]> prompts, int maxNewTokens)
    {
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Length == 0)) throw new ArgumentException("a prompt is empty (it needs at least the bos token)", nameof(prompts));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = Sequences.DeviceOf(model.Module);
        var (ids, mask) = Sequences.Pad(prompts, model.PadTokenId, device, left: true);
        using var cache = model.NewCache();
        var newColumn = ones(prompts.Count, 1, dtype: ScalarType.Int64, device: device);
        return Sequences.GreedyRows(prompts.Count, maxNewTokens, model.PadTokenId, id => model.EosTokenIds.Contains(id), (_, previous) =>
        {
            if (previous is not null)
            {
                ids = tensor(previous, [prompts.Count, 1], device: device);
                mask = cat([mask, newColumn], 1);
            }
            using (NewDisposeScope())
            {
                using var logits = model.Forward(ids, mask, cache);
                return logits[.., -1].argmax(-1).cpu().data<long>().ToArray();
            }
        });
    }

    private static void Check(CausalExample e)
    {
        if (e.PromptIds.Length == 0)
            throw new ArgumentException("an example's prompt is empty: the first completion token needs at least a bos before it");
        if (e.CompletionIds.Length == 0)
            throw new ArgumentException("an example's completion is empty (it should at least end with eos)");
    }
}
