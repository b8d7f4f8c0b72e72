namespace LoraHub.Core.Models;

/// <summary>
/// One tokenized few-shot example in its model family's convention (<see cref="FewShotFormat"/>): the model reads InputIds and is scored on Labels. Encoder-decoder:
/// encoder input and labels, both ending with eos. Decoder-only: the prompt (bos + input) and the completion
/// (output + eos), read joined.
/// </summary>
public sealed record TokenizedExample(int[] InputIds, int[] Labels);
