using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>
/// What LoRA composition, training and evaluation need from any model family: its module tree, whose names are the
/// checkpoint's keys (the LoRA injector wraps Linear layers by those names), and the family's few-shot convention.
/// Encoder-decoder (<see cref="ISeq2SeqModel"/>) and decoder-only (<see cref="ICausalLanguageModel"/>) models both
/// are; they implement the convention once, so the composer, trainer and predictor never ask which family they have.
/// </summary>
public interface IAdaptableModel : IDisposable
{
    nn.Module Module { get; }

    /// <summary>The first end-of-sequence id.</summary>
    int EosTokenId { get; }

    /// <summary>Id written into padded positions (they are masked, so its value never matters).</summary>
    int PadTokenId { get; }

    int VocabSize { get; }

    /// <summary>The Linear layers a new LoRA module adapts by default (PEFT's per-family default: q and v attention).</summary>
    IReadOnlyList<string> DefaultLoraTargets { get; }

    /// <summary>"SEQ_2_SEQ_LM" or "CAUSAL_LM": the PEFT task_type of adapters for this model.</summary>
    string PeftTaskType { get; }

    /// <summary>How examples become ids for this family (prompt and target conventions).</summary>
    FewShotFormat Format { get; }

    /// <summary>
    /// Each example's mean token cross-entropy over its targets (no gradients). Rows in <paramref name="groups"/> equal
    /// blocks are a grouped evaluation, one block per candidate adapter (ComposedModel.SetCandidates).
    /// </summary>
    double[] ExampleLosses(IReadOnlyList<TokenizedExample> batch, int groups = 1);

    /// <summary>The per-example losses [batch] as a tensor, differentiable when gradients are enabled (training).</summary>
    Tensor PerExampleLoss(IReadOnlyList<TokenizedExample> batch);

    /// <summary>Greedy continuation of one prompt (see <see cref="FewShotFormat.PromptIds"/>); returns the new ids only.</summary>
    int[] Greedy(int[] promptIds, int maxNewTokens, bool stopAtEos = true);

    /// <summary>Greedy continuation of several prompts in one batch; each stops after its eos.</summary>
    int[][] GreedyBatch(IReadOnlyList<int[]> prompts, int maxNewTokens);
}
