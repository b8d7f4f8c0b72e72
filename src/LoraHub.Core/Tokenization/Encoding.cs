namespace LoraHub.Core.Tokenization;

/// <summary>
/// The result of encoding one text: token ids and, index for index, the piece each id stands for
/// (SentencePiece pieces use U+2581 "▁" for a space; special tokens appear as their text, e.g. "&lt;/s&gt;").
/// </summary>
public sealed record Encoding(IReadOnlyList<int> Ids, IReadOnlyList<string> Pieces);
