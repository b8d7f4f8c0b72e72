using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>What scoring and generation need from an encoder-decoder model.</summary>
public interface ISeq2SeqModel : IAdaptableModel
{
    int DecoderStartTokenId { get; }
    int EosTokenId { get; }
    int PadTokenId { get; }
    int VocabSize { get; }

    Tensor Encode(Tensor inputIds, Tensor attentionMask);
    Tensor Decode(Tensor decoderIds, Tensor encoderOutput, Tensor encoderMask, IList<BlockCache>? cache = null, long offset = 0);
    IList<BlockCache> NewCache();
}
