using LoraHub.Core.Evaluation;
using LoraHub.Core.Composition;
using LoraHub.Core.Tokenization;

namespace LoraHub.Experiments.Bbh;

/// <summary>
/// The in-context-learning baseline's prompt: the few-shot examples, each as its input, a new line, "Answer: " and
/// its target, separated by blank lines, then the scored input followed by a new line and "Answer:".
/// <code>
/// {shot 1 input}
/// Answer: {shot 1 target}
///
/// ... (one block per shot)
///
/// {input}
/// Answer:
/// </code>
/// This is the answer-only few-shot layout commonly used to evaluate Flan-T5 on BBH (the task inputs already carry
/// their question and options). Zero-shot and LoraHub see the input alone, as the LoraHub paper's evaluation does.
/// </summary>
public static class BbhPrompt
{
    public const string AnswerCue = "Answer:";
    public const string Description = "ICL prompt: each shot as \"{input}\\nAnswer: {target}\", shots joined by \"\\n\\n\", then \"\\n\\n{input}\\nAnswer:\"; zero-shot and LoraHub see the input alone";

    public static string FewShot(IReadOnlyList<Example> shots, string input)
    {
        var blocks = shots.Select(s => $"{s.Input}\n{AnswerCue} {s.Output}").Append($"{input}\n{AnswerCue}");
        return string.Join("\n\n", blocks);
    }

    /// <summary>The scored examples with their inputs replaced by the ICL prompt (targets unchanged).</summary>
    public static IReadOnlyList<Example> WithShots(IReadOnlyList<Example> shots, IReadOnlyList<Example> scored) =>
        scored.Select(e => e with { Input = FewShot(shots, e.Input) }).ToList();
}

/// <summary>
/// Mean tokens per scored example that the model reads: LoraHub (and zero-shot) read the input alone, ICL reads the
/// few-shot prompt and the input. Counted with the model's tokenizer as the model sees them (T5: with the EOS token),
/// before any truncation, over every scored example of the task (--limit does not change it).
/// </summary>
public sealed record BbhTokenCount(string Task, int Examples, double LoraHub, double Icl)
{
    public double Ratio => LoraHub > 0 ? Icl / LoraHub : double.NaN;
}

public static class BbhTokenCounter
{
    public static BbhTokenCount Count(ITextTokenizer tokenizer, BbhSplit split)
    {
        var shots = split.FewShot;
        var scored = split.Scored();
        long plain = 0, icl = 0;
        foreach (var e in scored)
        {
            plain += tokenizer.Encode(e.Input).Ids.Count;
            icl += tokenizer.Encode(BbhPrompt.FewShot(shots, e.Input)).Ids.Count;
        }
        return new BbhTokenCount(split.Task, scored.Count, plain / (double)scored.Count, icl / (double)scored.Count);
    }

    /// <summary>The average row: the mean over tasks of the per-task means (each task counts once, as in the accuracy table).</summary>
    public static BbhTokenCount Average(IReadOnlyList<BbhTokenCount> counts) =>
        counts.Count == 0
            ? new BbhTokenCount("average", 0, double.NaN, double.NaN)
            : new BbhTokenCount("average", counts.Sum(c => c.Examples), counts.Average(c => c.LoraHub), counts.Average(c => c.Icl));
}
