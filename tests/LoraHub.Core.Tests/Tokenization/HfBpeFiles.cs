using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text.Json.Nodes;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>
/// The byte-level BPE fixtures (tests/fixtures/hf-bpe): llama3-style/ (Llama 3.1's tokenizer configuration on
/// Qwen2.5's vocabulary) and qwen2/ (Qwen2.5), each a gzipped
/// tokenizer.json, its tokenizer_config.json and golden cases from Hugging Face's Rust tokenizers; tiny/ holds small
/// tokenizer.json variants inline with their cases.
/// </summary>
public static class HfBpeFiles
{
    public static string Root => Path.Combine(Fixtures.Root, "hf-bpe");

    private static readonly ConcurrentDictionary<string, Lazy<string>> Unpacked = new(StringComparer.Ordinal);

    /// <summary>
    /// A model folder holding the decompressed tokenizer.json and the committed tokenizer_config.json, made once per
    /// build output (next to the test assembly, never in the repository).
    /// </summary>
    public static string Folder(string name) => Unpacked.GetOrAdd(name, n => new Lazy<string>(() => Unpack(n))).Value;

    private static string Unpack(string name)
    {
        var source = Path.Combine(Root, name);
        var folder = Path.Combine(AppContext.BaseDirectory, "hf-bpe-unpacked", name);
        Directory.CreateDirectory(folder);
        var json = Path.Combine(folder, "tokenizer.json");
        var gz = Path.Combine(source, "tokenizer.json.gz");
        if (!File.Exists(json) || File.GetLastWriteTimeUtc(json) < File.GetLastWriteTimeUtc(gz))
        {
            var staging = json + $".{Environment.ProcessId}.tmp";
            using (var input = new GZipStream(File.OpenRead(gz), CompressionMode.Decompress))
            using (var output = File.Create(staging))
                input.CopyTo(output);
            File.Move(staging, json, overwrite: true);
        }
        File.Copy(Path.Combine(source, "tokenizer_config.json"), Path.Combine(folder, "tokenizer_config.json"), overwrite: true);
        return folder;
    }

    /// <summary>A copy of a fixture's tokenizer.json in <paramref name="dir"/>, optionally edited, and no side files.</summary>
    public static string CopyTokenizer(string name, string dir, Action<JsonObject>? edit = null)
    {
        var target = Path.Combine(dir, "tokenizer.json");
        var source = Path.Combine(Folder(name), "tokenizer.json");
        if (edit is null)
        {
            File.Copy(source, target, overwrite: true);
            return target;
        }
        var json = JsonNode.Parse(File.ReadAllText(source))!.AsObject();
        edit(json);
        File.WriteAllText(target, json.ToJsonString());
        return target;
    }

    public static JsonObject Cases(string name) => JsonNode.Parse(File.ReadAllText(Path.Combine(Root, name, "tokenizer-cases.json")))!.AsObject();

    public static int[] Ids(JsonNode node) => node.AsArray().Select(x => x!.GetValue<int>()).ToArray();
}
