using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;
using LoraHub.Core.Composition;

namespace LoraHub.Core.Training;

/// <summary>One optimisation step as reported to a progress callback.</summary>
/// <param name="Step">1-based step number.</param>
/// <param name="Steps">Total steps of the run.</param>
/// <param name="Loss">Mean per-example loss of this step's batch (before the update).</param>
/// <param name="LearningRate">Learning rate used for this step (of B for LoRA training).</param>
/// <param name="Elapsed">Time since training started.</param>
public readonly record struct TrainingProgress(int Step, int Steps, double Loss, double LearningRate, TimeSpan Elapsed);

/// <summary>Small deterministic pieces shared by the trainers.</summary>
public static class TrainingSupport
{
    /// <summary>
    /// Linear warm-up over <paramref name="warmup"/> steps, then linear decay to zero at the last step (the
    /// schedule of Hugging Face's get_linear_schedule_with_warmup). <paramref name="step"/> is 0-based.
    /// </summary>
    public static double LearningRateFactor(int step, int steps, int warmup)
    {
        if (warmup > 0 && step < warmup) return (step + 1) / (double)warmup;
        var decaySteps = Math.Max(1, steps - warmup);
        return Math.Max(0.0, (steps - step) / (double)decaySteps);
    }

    /// <summary>Tokenizes examples for training or scoring in the model family's convention.</summary>
    public static List<TokenizedExample> Tokenize(IAdaptableModel model, ITextTokenizer tokenizer, IEnumerable<Example> examples) =>
        examples.Select(e => model.Format.Tokenize(tokenizer, e.Input, e.Output)).ToList();

    /// <summary>
    /// A 64-bit seed mixed from a seed and a name (FNV-1a of the UTF-8 name, then SplitMix64), stable across
    /// processes and platforms (string.GetHashCode is randomised per process).
    /// </summary>
    public static ulong MixSeed(long seed, string name)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(name))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        var state = hash ^ (ulong)seed;
        return SplitMix64(ref state);
    }

    internal static ulong SplitMix64(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>
    /// PEFT's initialisation of lora_A: kaiming_uniform_(a = sqrt(5)), i.e. uniform in [-1/sqrt(in), 1/sqrt(in)],
    /// drawn from a generator seeded by (seed, layer path) so every module of a hub that uses the same seed starts
    /// from exactly the same A for the same layer and shape. Row-major [rank, inFeatures].
    /// </summary>
    public static float[] KaimingUniformA(long seed, string layerPath, int rank, int inFeatures)
    {
        var state = MixSeed(seed, $"{layerPath}|{rank}x{inFeatures}");
        var bound = 1.0 / Math.Sqrt(inFeatures);
        var values = new float[rank * inFeatures];
        for (var i = 0; i < values.Length; i++)
        {
            var unit = (SplitMix64(ref state) >> 11) * (1.0 / (1UL << 53)); // [0, 1)
            values[i] = (float)((2 * unit - 1) * bound);
        }
        return values;
    }
}

/// <summary>
/// Draws training batches: the examples in a seeded random order, batch after batch, reshuffled after each pass.
/// With fewer examples than the batch size every batch is the whole (shuffled) set.
/// </summary>
public sealed class BatchSampler<T>
{
    private readonly IReadOnlyList<T> items;
    private readonly int batchSize;
    private readonly Random random;
    private readonly int[] order;
    private int next;

    public BatchSampler(IReadOnlyList<T> items, int batchSize, int seed)
    {
        if (items.Count == 0) throw new ArgumentException("there are no examples to train on", nameof(items));
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        this.items = items;
        this.batchSize = Math.Min(batchSize, items.Count);
        random = new Random(seed);
        order = Enumerable.Range(0, items.Count).ToArray();
        next = order.Length; // shuffle on first use
    }

    public IReadOnlyList<T> Next()
    {
        var batch = new List<T>(batchSize);
        while (batch.Count < batchSize)
        {
            if (next == order.Length)
            {
                random.Shuffle(order);
                next = 0;
            }
            batch.Add(items[order[next++]]);
        }
        return batch;
    }
}
