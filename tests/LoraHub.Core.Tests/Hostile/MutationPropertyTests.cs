using Encoding = System.Text.Encoding;
using System.Text.RegularExpressions;
using CsCheck;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// Property: a random mutation of a valid file (bytes set, cut, inserted or repeated; in JSON files also a number
/// replaced by a hostile literal) either still loads or fails with the reader's typed exception, never anything else.
/// Seeded and bounded (a few hundred mutations per reader, single-threaded) so the default run stays fast and
/// reproducible; a failure prints the seed and the shrunk mutation.
/// </summary>
public sealed class MutationPropertyTests
{
    private const int Iterations = 150;

    /// <summary>How to damage a file: Kind 0 sets bytes, 1 truncates, 2 inserts, 3 repeats a span, 4 swaps a JSON number.</summary>
    public sealed record Mutation(int Kind, double Where, byte[] Bytes, int Literal)
    {
        private static readonly string[] Literals = ["0", "-1", "1e999", "-1e999", "\"x\"", "null", "[]", "{}", "2147483648", "4.5", "true", "9007199254740993", "\"NaN\"", "[1]"];

        public byte[] Apply(byte[] original, bool json)
        {
            var at = (int)(Where * original.Length);
            switch (Kind)
            {
                case 0:
                    var copy = (byte[])original.Clone();
                    for (var i = 0; i < Bytes.Length && at + i < copy.Length; i++) copy[at + i] = Bytes[i];
                    return copy;
                case 1:
                    return original[..at];
                case 2:
                    return [.. original[..at], .. Bytes, .. original[at..]];
                case 3:
                    var length = Math.Min(Bytes.Length * 37, original.Length - at);
                    return [.. original[..(at + length)], .. original[at..(at + length)], .. original[(at + length)..]];
                default:
                    if (!json) return original;
                    var text = Encoding.UTF8.GetString(original);
                    var numbers = Regex.Matches(text, @"(?<=[:\[,]\s*)-?\d+(\.\d+)?([eE][-+]?\d+)?");
                    if (numbers.Count == 0) return original;
                    var m = numbers[(int)(Where * numbers.Count) % numbers.Count];
                    return Encoding.UTF8.GetBytes(text[..m.Index] + Literals[Literal % Literals.Length] + text[(m.Index + m.Length)..]);
            }
        }
    }

    private static readonly Gen<Mutation> Mutations =
        Gen.Select(Gen.Int[0, 4], Gen.Double[0, 1], Gen.Byte.Array[1, 8], Gen.Int[0, 100], (k, w, b, l) => new Mutation(k, w, b, l));

    private static void Property(string seed, byte[] original, bool json, Action<byte[]> load, params Type[] allowed) =>
        Property(seed, Iterations, original, json, load, allowed);

    private static void Property(string seed, int iterations, byte[] original, bool json, Action<byte[]> load, params Type[] allowed) =>
        Mutations.Sample(m =>
        {
            try
            {
                load(m.Apply(original, json));
            }
            catch (Exception e) when (allowed.Contains(e.GetType()))
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
            }
        }, seed: seed, iter: iterations, threads: 1);

    private static void InModuleFolder(string file, byte[] bytes)
    {
        using var dir = new Fixtures.TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.Adapter(0))) File.Copy(f, dir[Path.GetFileName(f)]);
        if (file.EndsWith(".bin", StringComparison.Ordinal)) File.Delete(dir[LoraModule.SafetensorsFile]);
        File.WriteAllBytes(dir[file], bytes);
        LoraModule.Load(dir.Path).Dispose();
    }

    [Fact]
    public void Mutated_adapter_safetensors_end_in_LoraFormatException_or_load() =>
        Property("0safetensor01", File.ReadAllBytes(Path.Combine(Fixtures.Adapter(0), LoraModule.SafetensorsFile)), json: false,
            b => InModuleFolder(LoraModule.SafetensorsFile, b), typeof(LoraFormatException));

    [Fact]
    public void Mutated_adapter_bin_end_in_LoraFormatException_or_load() =>
        Property("0pytorchbin01", File.ReadAllBytes(Path.Combine(Fixtures.Root, "bin", "lora_0", LoraModule.BinFile)), json: false,
            b => InModuleFolder(LoraModule.BinFile, b), typeof(LoraFormatException));

    [Fact]
    public void Mutated_adapter_config_end_in_LoraFormatException_or_load() =>
        Property("0adapterconf1", File.ReadAllBytes(Path.Combine(Fixtures.Adapter(0), LoraModule.ConfigFile)), json: true,
            b => InModuleFolder(LoraModule.ConfigFile, b), typeof(LoraFormatException));

    [Fact]
    public void Mutated_model_configs_end_in_ModelFormatException_or_parse()
    {
        void Check(string folder, Func<System.Text.Json.Nodes.JsonObject, string, object> parse, string seed) =>
            Property(seed, File.ReadAllBytes(Path.Combine(folder, "config.json")), json: true, b =>
            {
                using var dir = new Fixtures.TempDir();
                File.WriteAllBytes(dir["config.json"], b);
                parse(ModelLoader.ReadConfig(dir.Path), dir["config.json"]);
            }, typeof(ModelFormatException));
        Check(Fixtures.TinyT5, (j, p) => T5Config.FromJson(j, p), "0t5config0001");
        Check(Path.Combine(Fixtures.Root, "llama", "tiny-llama"), (j, p) => LlamaConfig.FromJson(j, p), "0llamaconfig1");
    }

    [Fact]
    public void Mutated_sentencepiece_models_end_in_TokenizerException_or_encode()
    {
        var original = File.ReadAllBytes(Path.Combine(Fixtures.T5, "spiece.model"));
        Property("0spiecemodel1", 60, original, json: false, b => T5Tokenizer.FromBytes(b, "spiece.model").Encode("Hello, world: 42 ünïcode"), typeof(TokenizerException));
    }

    [Fact]
    public void Mutated_llama_tokenizer_models_end_in_TokenizerException_or_encode()
    {
        var folder = Path.Combine(Fixtures.Root, "llama", "tiny-llama");
        Property("0llamatoken01", 60, File.ReadAllBytes(Path.Combine(folder, "tokenizer.model")), json: false, b =>
        {
            using var dir = new Fixtures.TempDir();
            foreach (var f in new[] { "tokenizer_config.json", "special_tokens_map.json", "config.json" }) File.Copy(Path.Combine(folder, f), dir[f]);
            File.WriteAllBytes(dir["tokenizer.model"], b);
            LlamaTokenizer.Load(dir.Path).Encode("Hello, world: 42 ünïcode");
        }, typeof(TokenizerException));
    }

    [Fact]
    public void Mutated_tokenizer_json_end_in_TokenizerException_or_encode()
    {
        using var source = new HostileWorkspace();
        var folder = source.BpeTokenizerFolder();
        Property("0tokenizerjs1", File.ReadAllBytes(Path.Combine(folder, "tokenizer.json")), json: true, b =>
        {
            using var dir = new Fixtures.TempDir();
            File.Copy(Path.Combine(folder, "tokenizer_config.json"), dir["tokenizer_config.json"]);
            File.WriteAllBytes(dir["tokenizer.json"], b);
            HfJsonTokenizer.Load(dir.Path).Encode("Hello, world: 42 ünïcode <s>");
        }, typeof(TokenizerException));
    }

    [Fact]
    public void Mutated_examples_end_in_ExampleFormatException_or_parse()
    {
        var original = Encoding.UTF8.GetBytes(string.Join("\n", Fixtures.Golden["cases"]!.AsArray().Take(4).Select(c =>
            new System.Text.Json.Nodes.JsonObject { ["input"] = c!["input_text"]!.GetValue<string>(), ["output"] = c["target_text"]!.GetValue<string>() }.ToJsonString())));
        Property("0examplefile1", original, json: true, b =>
        {
            using var dir = new Fixtures.TempDir();
            File.WriteAllBytes(dir["e.jsonl"], b);
            ExampleFile.Load(dir["e.jsonl"]);
        }, typeof(ExampleFormatException));
    }
}
