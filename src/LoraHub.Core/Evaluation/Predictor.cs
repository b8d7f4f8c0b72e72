using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;

namespace LoraHub.Core.Evaluation;

/// <summary>One prediction next to its truth.</summary>
public sealed record Prediction(string Input, string Truth, string Output, bool Correct);

/// <summary>Greedy predictions of a model (with whatever adapter is attached) on examples, in batches.</summary>
public static class Predictor
{
    public static IReadOnlyList<Prediction> Predict(IAdaptableModel model, ITextTokenizer tokenizer, IReadOnlyList<Example> examples,
        int maxNewTokens = 64, int batchSize = 32, int maxInputTokens = ExampleTokenizer.DefaultMaxTokens, IProgress<int>? progress = null)
    {
        var predictions = new List<Prediction>(examples.Count);
        foreach (var chunk in examples.Chunk(batchSize))
        {
            var inputs = chunk.Select(e => ExampleTokenizer.Truncate(model.Format.PromptIds(tokenizer, e.Input), maxInputTokens, tokenizer.EosId, out _)).ToList();
            var outputs = model.GreedyBatch(inputs, maxNewTokens);
            for (var i = 0; i < chunk.Length; i++)
            {
                var text = tokenizer.Decode(outputs[i].Where(id => id < tokenizer.VocabSize));
                predictions.Add(new Prediction(chunk[i].Input, chunk[i].Output, text, ExactMatch.IsMatch(text, chunk[i].Output)));
            }
            progress?.Report(predictions.Count);
        }
        return predictions;
    }
}
