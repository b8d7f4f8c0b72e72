using LoraHub.Core.Composition;
using LoraHub.Core.Tokenization;
using LoraHub.Core.Training;

namespace LoraHub.Experiments.Toy;

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
    /// <summary>
    /// The characters the map changes (null: every letter and digit it does not leave alone). A task whose map
    /// touches only part of a token type (the half-rotations) draws inputs that hold at least one touched character,
    /// so that its output still always differs from its input.
    /// </summary>
    public Func<char, bool>? Touches { get; init; }

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

    private static ToyTask OnLetters(string name, string description, Func<int, int> f, Func<int, bool>? touches = null) =>
        new(name, description, [name], c => IsLetter(c) ? Letter(f(c - 'a')) : c) { Touches = c => IsLetter(c) && (touches?.Invoke(c - 'a') ?? true) };

    private static ToyTask OnDigits(string name, string description, Func<int, int> f, Func<int, bool>? touches = null) =>
        new(name, description, [name], c => IsDigit(c) ? Digit(f(c - '0')) : c) { Touches = c => IsDigit(c) && (touches?.Invoke(c - '0') ?? true) };

    /// <summary>
    /// The pool: 24 per-token maps, each trained as one LoRA module, so that a composition of K = 20 (the paper's) has
    /// to find the one to three modules a held-out task needs among distractors and keep the rest near 0:
    /// <list type="bullet">
    /// <item>the first 8 (four letter maps, four digit maps) are the original hub's;</item>
    /// <item>more maps on one token type: +2 and +5 on letters and on digits, and the rotations of the low digits
    /// (0→1→2→3→4→0) and of the high digits (5→…→9→5), which the three-module held-out task needs, and of the low and
    /// high letters;</item>
    /// <item>near-duplicates: maps that agree with shift_letters or inc_digits on 9 of 10 characters (j→i, 9→8), and
    /// mirror_letters and inc_digits again, trained from other data (the same map, a slightly different B);</item>
    /// <item>distractors that touch both types or change a token's type (letters↔digits, swap and mirror of both):
    /// any weight on them hurts every held-out task.</item>
    /// </list>
    /// </summary>
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
        OnLetters("shift2_letters", "each letter moves two on (a→c, …, j→b); digits stay", i => i + 2),
        OnLetters("half_letters", "each letter moves five on (a↔f, b↔g, …); digits stay", i => i + 5),
        OnDigits("inc2_digits", "each digit is incremented by two (0→2, …, 9→1); letters stay", i => i + 2),
        OnDigits("half_digits", "each digit d becomes d + 5 mod 10; letters stay", i => i + 5),
        OnDigits("rotate_low_digits", "the digits 0–4 rotate (0→1→2→3→4→0); 5–9 and letters stay", i => i < 5 ? (i + 1) % 5 : i, i => i < 5),
        OnDigits("rotate_high_digits", "the digits 5–9 rotate (5→6→7→8→9→5); 0–4 and letters stay", i => i >= 5 ? 5 + (i - 4) % 5 : i, i => i >= 5),
        OnLetters("rotate_low_letters", "the letters a–e rotate (a→b→c→d→e→a); f–j and digits stay", i => i < 5 ? (i + 1) % 5 : i, i => i < 5),
        OnLetters("rotate_high_letters", "the letters f–j rotate (f→g→h→i→j→f); a–e and digits stay", i => i >= 5 ? 5 + (i - 4) % 5 : i, i => i >= 5),
        OnLetters("shift_letters_near", "like shift_letters but j→i (a→b, …, i→j, j→i); digits stay", i => i < 9 ? i + 1 : 8),
        OnDigits("inc_digits_near", "like inc_digits but 9→8 (0→1, …, 8→9, 9→8); letters stay", i => i < 9 ? i + 1 : 8),
        Duplicate(OnLetters("mirror_letters", "", i => 9 - i), "mirror_letters_dup"),
        Duplicate(OnDigits("inc_digits", "", i => i + 1), "inc_digits_dup"),
        new("letters_to_digits", "each letter becomes the digit of its rank (a→0, …, j→9); digits stay", ["letters_to_digits"],
            c => IsLetter(c) ? Digit(c - 'a') : c) { Touches = IsLetter },
        new("digits_to_letters", "each digit becomes the letter of its rank (0→a, …, 9→j); letters stay", ["digits_to_letters"],
            c => IsDigit(c) ? Letter(c - '0') : c) { Touches = IsDigit },
        new("swap_all", "letters and digits both swap in pairs (a↔b, …, 0↔1, …)", ["swap_all"],
            c => IsLetter(c) ? Letter((c - 'a') ^ 1) : Digit((c - '0') ^ 1)) { Touches = c => IsLetter(c) || IsDigit(c) },
        new("mirror_all", "letters and digits are both mirrored (a↔j, …, 0↔9, …)", ["mirror_all"],
            c => IsLetter(c) ? Letter(9 - (c - 'a')) : Digit(9 - (c - '0'))) { Touches = c => IsLetter(c) || IsDigit(c) },
    ];

    /// <summary>A second module of the same map under another name: trained from its own data stream (the name seeds it).</summary>
    private static ToyTask Duplicate(ToyTask original, string name) =>
        original with { Name = name, Parts = [name], Description = $"the same map as {original.Name}, a second module trained from other examples" };

    public static ToyTask PoolTask(string name) =>
        Pool.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"no toy pool task '{name}'");

    /// <summary>A task that applies a letter map and a digit map together (needs two modules).</summary>
    public static ToyTask Combine(string name, ToyTask letters, ToyTask digits) =>
        new(name, $"{letters.Description.Split(';')[0]}, and {digits.Description.Split(';')[0]}", [letters.Name, digits.Name],
            c => IsLetter(c) ? letters.Map(c) : digits.Map(c));

    /// <summary>
    /// A task that applies maps on disjoint sets of characters together (one module each): every character goes
    /// through the part that touches it, or stays. With two parts, a letter map and a digit map, this is <see cref="Combine"/>.
    /// </summary>
    public static ToyTask CombineAll(string name, IReadOnlyList<ToyTask> parts)
    {
        foreach (var c in Letters + Digits)
            if (parts.Count(p => p.Touches?.Invoke(c) ?? p.Map(c) != c) > 1)
                throw new ArgumentException($"{name}: the parts {string.Join(", ", parts.Select(p => p.Name))} overlap on '{c}'");
        return new(name, string.Join(", and ", parts.Select(p => p.Description.Split(';')[0])), parts.Select(p => p.Name).ToList(),
            c => parts.FirstOrDefault(p => p.Touches?.Invoke(c) ?? p.Map(c) != c) is { } part ? part.Map(c) : c);
    }

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
            // Every mixed string holds a letter and a digit, so this only rejects inputs of the half-rotations.
            if (task.Touches is { } touches && !input.Any(touches)) continue;
            if (!seen.Add(input)) continue;
            examples.Add(new Example(input, task.Apply(input)));
        }
        return examples;
    }
}
