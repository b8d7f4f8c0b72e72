using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using LoraHub.Fuzz;

// lorahub-fuzz afl TARGET                          one AFL++ run (SharpFuzz; the Core assembly instrumented by scripts/fuzz.sh)
// lorahub-fuzz loop TARGET SECONDS SEEDS OUT [SEED] a plain in-process random-mutation loop (no instrumentation needed)
// lorahub-fuzz replay TARGET FILE...                runs inputs once and says how each ended
// lorahub-fuzz seeds TARGET FIXTURES OUT            writes the seed corpus of a target from tests/fixtures into OUT
if (args.Length < 2 || !Targets.All.TryGetValue(args[1], out var target))
{
    Console.Error.WriteLine($"usage: lorahub-fuzz afl|loop|replay TARGET ...; targets: {string.Join(", ", Targets.All.Keys)}");
    return 2;
}

switch (args[0])
{
    case "afl":
        SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            // A typed error is the right answer to a bad file; anything else escapes and AFL records a crash.
            try { target(buffer.ToArray()); } catch (Exception e) when (Targets.IsTyped(e)) { }
        });
        return 0;

    case "replay":
        var bad = 0;
        foreach (var file in args.Skip(2))
        {
            var error = Targets.Try(target, File.ReadAllBytes(file));
            Console.WriteLine($"{file}: {(error is null ? "ok (result or typed error)" : $"FINDING {error.GetType().Name}: {error.Message.ReplaceLineEndings(" ")}")}");
            if (error is not null) bad++;
        }
        return bad == 0 ? 0 : 1;

    case "seeds":
        Directory.CreateDirectory(args[3]);
        var count = 0;
        foreach (var (name, bytes) in Seeds.For(args[1], args[2]))
        {
            File.WriteAllBytes(Path.Combine(args[3], name), bytes);
            count++;
        }
        Console.WriteLine($"{args[1]}: {count} seeds in {args[3]}");
        return count > 0 ? 0 : 1;

    case "loop":
        return Loop(target, args[1], TimeSpan.FromSeconds(double.Parse(args[2], CultureInfo.InvariantCulture)), args[3], args[4],
            args.Length > 5 ? int.Parse(args[5], CultureInfo.InvariantCulture) : 1);

    default:
        Console.Error.WriteLine($"unknown mode {args[0]}");
        return 2;
}

// Mutates the seeds (bit flips, byte and integer overwrites, inserts, deletes, splices) for a while; every input that
// ends in an untyped exception is saved to OUT as crash-{sha1}, and its type counted.
static int Loop(Action<byte[]> target, string name, TimeSpan duration, string seedsDir, string outDir, int seed)
{
    var seeds = Directory.EnumerateFiles(seedsDir).Order(StringComparer.Ordinal).Select(File.ReadAllBytes).Where(b => b.Length > 0).ToList();
    if (seeds.Count == 0) throw new InvalidOperationException($"no seeds in {seedsDir}");
    Directory.CreateDirectory(outDir);
    var rng = new Random(seed);
    var clock = Stopwatch.StartNew();
    long executions = 0;
    var findings = new Dictionary<string, int>();
    int[] interesting = [0, 1, -1, 127, 128, 255, 256, 32767, 65535, int.MaxValue, int.MinValue];
    while (clock.Elapsed < duration)
    {
        var input = seeds[rng.Next(seeds.Count)].ToArray();
        var mutations = 1 + rng.Next(8);
        for (var m = 0; m < mutations; m++) input = Mutate(input, rng, seeds, interesting);
        executions++;
        if (Targets.Try(target, input) is { } error)
        {
            var key = $"{error.GetType().Name} at {error.StackTrace?.Split('\n').FirstOrDefault()?.Trim()}";
            findings[key] = findings.GetValueOrDefault(key) + 1;
            if (findings[key] <= 3) File.WriteAllBytes(Path.Combine(outDir, $"crash-{Convert.ToHexStringLower(SHA1.HashData(input))}"), input);
        }
    }
    Console.WriteLine($"{name}: {executions} executions in {clock.Elapsed.TotalMinutes:F1} min ({executions / clock.Elapsed.TotalSeconds:F0}/s), {findings.Count} distinct findings");
    foreach (var (key, count) in findings.OrderByDescending(f => f.Value)) Console.WriteLine($"  {count,6} x {key}");
    return 0;
}

static byte[] Mutate(byte[] input, Random rng, List<byte[]> seeds, int[] interesting)
{
    if (input.Length == 0) return [(byte)rng.Next(256)];
    var list = input.ToList();
    var at = rng.Next(list.Count);
    switch (rng.Next(7))
    {
        case 0: list[at] ^= (byte)(1 << rng.Next(8)); break;
        case 1: list[at] = (byte)rng.Next(256); break;
        case 2:
            var value = interesting[rng.Next(interesting.Length)];
            for (var i = 0; i < 4 && at + i < list.Count; i++) list[at + i] = (byte)(value >> (8 * i));
            break;
        case 3: list.InsertRange(at, Enumerable.Range(0, 1 + rng.Next(16)).Select(_ => (byte)rng.Next(256))); break;
        case 4: list.RemoveRange(at, Math.Min(list.Count - at, 1 + rng.Next(16))); break;
        case 5:
            // an ASCII digit run: config and JSON numbers grow or turn huge
            list.InsertRange(at, System.Text.Encoding.ASCII.GetBytes(rng.Next(4) == 0 ? "99999999999" : rng.Next(-2, 100).ToString(CultureInfo.InvariantCulture)));
            break;
        default:
            var other = seeds[rng.Next(seeds.Count)];
            var from = rng.Next(other.Length);
            list.InsertRange(at, other.Skip(from).Take(1 + rng.Next(64)));
            break;
    }
    return list.Count > 1 << 20 ? list.Take(1 << 20).ToArray() : list.ToArray();
}
