using System.Text;
using Xunit;
using Xunit.Abstractions;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// The inputs that used to exhaust memory or time (a 20 KB pickle building gigabytes, a zip member claiming 2 GiB, a
/// config that builds a model of 10^9 layers or a 16M-token vocabulary, a 100 MB example line, a million examples, a
/// backtracking split pattern), each run by the real CLI in a child process: refused with one clear line in under 5 s,
/// with a peak resident set under 300 MB plus the size of the hostile file.
/// </summary>
public sealed class HostileMemoryTests(ITestOutputHelper output)
{
    private sealed record MemoryCase(string Name, Func<HostileWorkspace, string> Arrange, Func<HostileWorkspace, string[]> Args, string Names, string Cause);

    private static readonly MemoryCase[] Cases =
    [
        new("a 20 KB pickle whose 100 views copy one 16 MB storage", w => Bin(w, p => HostileCases.ManyViews(p, views: 100, numel: 1 << 22)),
            w => w.ComposeT5(), "adapter_model.bin", "its tensors claim more than"),
        new("a zip member claiming 2 GiB", w => Bin(w, HostileCases.ClaimsTwoGiB), w => w.ComposeT5(), "adapter_model.bin", "its tensors claim more than"),
        new("a pickle pushing 1.1M values", w => Bin(w, p => TorchArchive.Write(p, [0x80, 2, .. Enumerable.Repeat((byte)'N', 1_100_000), (byte)'.'], new Dictionary<string, byte[]>())),
            w => w.ComposeT5(), "adapter_model.bin", "values on the pickle stack (budget)"),
        new("t5 config num_layers 4096", w => Config(w.SetJson, Path.Combine(w.T5, "config.json"), "num_layers", "4096"), w => w.ComposeT5(), "config.json", "the checkpoint is missing 'encoder.block.4095"),
        new("t5 config num_layers 10^9", w => Config(w.SetJson, Path.Combine(w.T5, "config.json"), "num_layers", "1000000000"), w => w.ComposeT5(), "config.json", "'num_layers' is 1000000000, outside"),
        new("llama config vocab_size 2^24", w => Config(w.SetJson, Path.Combine(w.Llama, "config.json"), "vocab_size", "16777216"), w => w.ComposeLlama(), "config.json", "of shape [16777216, 64]"),
        new("a 100 MB example line", w =>
        {
            using (var f = File.Create(w.Examples))
            {
                f.Write("{\"input\": \""u8);
                var chunk = Encoding.ASCII.GetBytes(new string('a', 1 << 20));
                for (var i = 0; i < 100; i++) f.Write(chunk);
                f.Write("\", \"output\": \"b\"}\n"u8);
            }
            return w.Examples;
        }, w => ["score", "--base", w.T5, "--examples", w.Examples], "examples.jsonl", "line 1 is longer than 1048576 bytes"),
        new("a million example lines", w =>
        {
            File.WriteAllLines(w.Examples, Enumerable.Repeat("""{"input": "a", "output": "b"}""", 1_000_000));
            return w.Examples;
        }, w => w.ComposeT5(), "examples.jsonl", "more than 100000 examples"),
        new("a tokenizer.json with vocab id 2^24 - 1", w =>
        {
            var path = Path.Combine(w.BpeTokenizerFolder(), "tokenizer.json");
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
            json["model"]!["vocab"]!["zzz"] = 16777215;
            HostileWorkspace.Replace(path, json.ToJsonString());
            return path;
        }, w => ["tokenize", "--model", w["bpe"], "--text", "hello"], "tokenizer.json", "is far beyond its"),
        new("a backtracking split pattern", w =>
        {
            var path = Path.Combine(w.BpeTokenizerFolder(), "tokenizer.json");
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
            json["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse(
                """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(a|aa)+$"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}""");
            HostileWorkspace.Replace(path, json.ToJsonString());
            return path;
        }, w => ["tokenize", "--model", w["bpe"], "--text", new string('a', 60) + "!"], "tokenizer.json", "took longer than 1 s"),
    ];

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases) data.Add(c.Name);
        return data;
    }

    private const long Ceiling = 300L << 20;

    [Theory]
    [MemberData(nameof(Names))]
    public void Refused_in_a_child_under_300_MB_plus_the_file_and_5_seconds(string name)
    {
        var c = Cases.Single(x => x.Name == name);
        using var w = new HostileWorkspace();
        var file = c.Arrange(w);
        var size = new FileInfo(file).Length;
        var before = w.Snapshot();
        var outcome = HostileCli.Child(c.Args(w), TimeSpan.FromSeconds(60));
        output.WriteLine($"{name}: {outcome}; hostile file {size} bytes");
        HostileCli.AssertClearError(outcome, 1, c.Names, c.Cause);
        Assert.True(outcome.PeakRssBytes > 0, "no memory sample was taken");
        Assert.True(outcome.PeakRssBytes < Ceiling + size, $"peak RSS {outcome.PeakRssBytes >> 20} MiB over 300 MiB + {size >> 20} MiB");
        Assert.False(Directory.Exists(w.Out));
        Assert.Equal(before, w.Snapshot());
    }

    private static string Bin(HostileWorkspace w, Action<string> make)
    {
        File.Delete(Path.Combine(w.T5Module0, "adapter_model.safetensors"));
        var path = Path.Combine(w.T5Module0, "adapter_model.bin");
        make(path);
        return path;
    }

    private static string Config(Action<string, string, string?> set, string path, string key, string raw)
    {
        set(path, key, raw);
        return path;
    }
}
