using LoraHub.Core.Composition;
using LoraHub.Core.Tokenization;
using LoraHub.Core.Training;

namespace LoraHub.Core.Toy;

/// <summary>
/// A deterministic random stream (SplitMix64): the toy world's data must not depend on the runtime's
/// System.Random implementation.
/// </summary>
public sealed class ToyRandom(ulong seed)
{
    private ulong state = seed;

    public ToyRandom(long seed, string stream) : this(TrainingSupport.MixSeed(seed, stream)) { }

    public ulong NextUInt64() => TrainingSupport.SplitMix64(ref state);

    /// <summary>Uniform integer in [0, n).</summary>
    public int Next(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        return (int)((NextUInt64() >> 11) * (1.0 / (1UL << 53)) * n);
    }

    /// <summary>Uniform integer in [min, max] (both included).</summary>
    public int Next(int min, int max) => min + Next(max - min + 1);
}

/// <summary>
/// One toy task: a per-token map over the vocabulary's letters a–j and digits 0–9. A pool task touches one token
/// type and leaves the other alone; a combination task applies a letter map and a digit map together.
/// Every map used here has no fixed point on the type it touches, so on inputs that hold that type the output
/// always differs from the input: a model that only copies fails every task by construction.
/// </summary>
public sealed record ToyTask(string Name, string Description, IReadOnlyList<string> Parts, Func<char, char> Map)
{
    public string Apply(string input) => string.Concat(input.Select(Map));
}

/// <summary>The toy world's vocabulary, task definitions and example generators.</summary>
public static class ToyTasks
{
    /// <summary>
    /// Length range of task strings in the demo's world. Short enough that the LoraHub merge of two modules can
    /// combine them: a relative-position T5 aligns output with input less robustly as strings grow (the hand-set
    /// merge of two modules falls from about 0.7 exact match at length 4 to about 0.1 at length 10).
    /// </summary>
    public const int DefaultMinLength = 3;
    public const int DefaultMaxLength = 8;

    public const string Letters = "abcdefghij";
    public const string Digits = "0123456789";

    /// <summary>pad, eos, unk, then a–j and 0–9: 23 tokens (the T5 world's vocabulary).</summary>
    public static CharTokenizer Tokenizer { get; } = new((Letters + Digits).Select(c => c.ToString()));

    /// <summary>
    /// Ends every input of the decoder-only world. Its model reads input and output joined into one sequence, so
    /// without a marker it could not tell where the input stops (real decoder-only few-shot data has one too, such
    /// as "\nA:"): the input "a3bj" is written "a3bj=" and the output stays "b3ck".
    /// </summary>
    public const string InputEnd = "=";

    /// <summary>pad, eos, unk, bos, then a–j, 0–9 and <see cref="InputEnd"/>: 25 tokens (the decoder-only world's vocabulary).</summary>
    public static CharTokenizer DecoderOnlyTokenizer { get; } = new((Letters + Digits + InputEnd).Select(c => c.ToString()), withBos: true);

    private static char Letter(int i) => Letters[((i % 10) + 10) % 10];
    private static char Digit(int i) => Digits[((i % 10) + 10) % 10];
    private static bool IsLetter(char c) => c is >= 'a' and <= 'j';
    private static bool IsDigit(char c) => c is >= '0' and <= '9';

    private static ToyTask OnLetters(string name, string description, Func<int, int> f) =>
        new(name, description, [name], c => IsLetter(c) ? Letter(f(c - 'a')) : c);

    private static ToyTask OnDigits(string name, string description, Func<int, int> f) =>
        new(name, description, [name], c => IsDigit(c) ? Digit(f(c - '0')) : c);

    /// <summary>The pool: four letter maps and four digit maps, each trained as one LoRA module.</summary>
    public static IReadOnlyList<ToyTask> Pool { get; } =
    [
        OnLetters("shift_letters", "each letter becomes the next one (a→b, …, j→a); digits stay", i => i + 1),
        OnLetters("unshift_letters", "each letter becomes the previous one (a→j, b→a, …); digits stay", i => i - 1),
        OnLetters("mirror_letters", "each letter is mirrored in a–j (a↔j, b↔i, …, e↔f); digits stay", i => 9 - i),
        OnLetters("swap_letters", "letters swap in pairs (a↔b, c↔d, …, i↔j); digits stay", i => i ^ 1),
        OnDigits("inc_digits", "each digit is incremented (0→1, …, 9→0); letters stay", i => i + 1),
        OnDigits("dec_digits", "each digit is decremented (0→9, 1→0, …); letters stay", i => i - 1),
        OnDigits("mirror_digits", "each digit d becomes 9 − d; letters stay", i => 9 - i),
        OnDigits("swap_digits", "digits swap in pairs (0↔1, 2↔3, …, 8↔9); letters stay", i => i ^ 1),
    ];

    public static ToyTask PoolTask(string name) =>
        Pool.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"no toy pool task '{name}'");

    /// <summary>A task that applies a letter map and a digit map together (needs two modules).</summary>
    public static ToyTask Combine(string name, ToyTask letters, ToyTask digits) =>
        new(name, $"{letters.Description.Split(';')[0]}, and {digits.Description.Split(';')[0]}", [letters.Name, digits.Name],
            c => IsLetter(c) ? letters.Map(c) : digits.Map(c));

    /// <summary>The identity: what the base model is pretrained on.</summary>
    public static ToyTask Copy { get; } = new("copy", "copy the string", [], c => c);

    /// <summary>
    /// A random string of letters and digits (each character a letter or a digit with equal odds), length in
    /// [minLength, maxLength]; with <paramref name="mixed"/> it holds at least one letter and one digit.
    /// </summary>
    public static string RandomString(ToyRandom random, int minLength, int maxLength, bool mixed)
    {
        if (mixed && maxLength < 2) throw new ArgumentException("a mixed string needs a length of at least 2");
        while (true)
        {
            var length = random.Next(minLength, maxLength);
            var chars = new char[length];
            for (var i = 0; i < length; i++) chars[i] = random.Next(2) == 0 ? Letter(random.Next(10)) : Digit(random.Next(10));
            if (!mixed || (chars.Any(IsLetter) && chars.Any(IsDigit))) return new string(chars);
        }
    }

    /// <summary>
    /// <paramref name="count"/> examples of a task on mixed strings, from the stream (seed, stream name). Inputs are
    /// distinct within the list; for every task except copy the output differs from the input.
    /// </summary>
    public static List<Example> Sample(ToyTask task, int count, long seed, string stream, int minLength = DefaultMinLength, int maxLength = DefaultMaxLength,
        ISet<string>? exclude = null)
    {
        var random = new ToyRandom(seed, $"{task.Name}/{stream}");
        var seen = new HashSet<string>(exclude ?? new HashSet<string>());
        var examples = new List<Example>(count);
        var attempts = 0;
        while (examples.Count < count)
        {
            if (++attempts > count * 1000) throw new InvalidOperationException($"cannot draw {count} distinct examples of {task.Name}");
            var input = RandomString(random, minLength, maxLength, mixed: true);
            if (!seen.Add(input)) continue;
            examples.Add(new Example(input, task.Apply(input)));
        }
        return examples;
    }
}
