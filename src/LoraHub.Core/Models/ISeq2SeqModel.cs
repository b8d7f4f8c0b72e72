using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>What scoring and generation need from an encoder-decoder model.</summary>
public interface ISeq2SeqModel : IAdaptableModel
{
    int DecoderStartTokenId { get; }

    Tensor Encode(Tensor inputIds, Tensor attentionMask);
    Tensor Decode(Tensor decoderIds, Tensor encoderOutput, Tensor encoderMask, IList<BlockCache>? cache = null, long offset = 0);
    IList<BlockCache> NewCache();

    // The decoder reads [start] + labels[:-1] and is scored on the labels (FewShotFormat.EncoderDecoder).
    string IAdaptableModel.PeftTaskType => "SEQ_2_SEQ_LM";
    IReadOnlyList<string> IAdaptableModel.DefaultLoraTargets => ["q", "v"];
    FewShotFormat IAdaptableModel.Format => FewShotFormat.EncoderDecoder;
    double[] IAdaptableModel.ExampleLosses(IReadOnlyList<TokenizedExample> batch, int groups) => Seq2Seq.ExampleLosses(this, batch, groups);
    Tensor IAdaptableModel.PerExampleLoss(IReadOnlyList<TokenizedExample> batch) => Seq2Seq.PerExampleLoss(this, batch);
    int[] IAdaptableModel.Greedy(int[] promptIds, int maxNewTokens, bool stopAtEos) => Seq2Seq.Greedy(this, promptIds, maxNewTokens, stopAtEos);
    int[][] IAdaptableModel.GreedyBatch(IReadOnlyList<int[]> prompts, int maxNewTokens) => Seq2Seq.GreedyBatch(this, prompts, maxNewTokens);
}
