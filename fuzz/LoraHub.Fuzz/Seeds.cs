using System.Text;
using System.Text.Json.Nodes;

namespace LoraHub.Fuzz;

/// <summary>The seed corpus of each target, taken from the committed test fixtures (tests/fixtures).</summary>
public static class Seeds
{
    public static IEnumerable<(string Name, byte[] Bytes)> For(string target, string fixtures)
    {
        string F(params string[] parts) => Path.Combine([fixtures, .. parts]);
        switch (target)
        {
            case "safetensors":
                yield return ("t5-lora.safetensors", File.ReadAllBytes(F("t5", "adapters", "lora_0", "adapter_model.safetensors")));
                yield return ("llama-lora.safetensors", File.ReadAllBytes(F("llama", "adapters", "lora_0", "adapter_model.safetensors")));
                break;
            case "pytorch-bin":
                foreach (var file in Directory.EnumerateFiles(F("bin"), "*.bin").Order(StringComparer.Ordinal))
                    yield return (Path.GetFileName(file), File.ReadAllBytes(file));
                yield return ("lora_0.bin", File.ReadAllBytes(F("bin", "lora_0", "adapter_model.bin")));
                break;
            case "examples":
                var golden = JsonNode.Parse(File.ReadAllText(F("t5", "golden-visible.json")))!["cases"]!.AsArray();
                var lines = golden.Select(c => new JsonObject { ["input"] = c!["input_text"]!.GetValue<string>(), ["output"] = c["target_text"]!.GetValue<string>() }.ToJsonString());
                yield return ("golden.jsonl", Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n"));
                yield return ("bbh.json", Encoding.UTF8.GetBytes(new JsonObject
                {
                    ["examples"] = new JsonArray(golden.Take(3).Select(c => (JsonNode)new JsonObject { ["input"] = c!["input_text"]!.GetValue<string>(), ["target"] = c["target_text"]!.GetValue<string>() }).ToArray()),
                }.ToJsonString()));
                break;
            case "spiece":
                yield return ("t5-spiece.model", File.ReadAllBytes(F("t5", "spiece.model")));
                yield return ("llama-tokenizer.model", File.ReadAllBytes(F("llama", "tokenizer.model")));
                break;
            case "tokenizer-json":
                var variants = JsonNode.Parse(File.ReadAllText(F("hf-bpe", "tiny", "tokenizer-cases.json")))!["variants"]!.AsArray();
                foreach (var v in variants)
                    yield return ($"tiny-{v!["variant"]!.GetValue<string>()}.json", Encoding.UTF8.GetBytes(v["tokenizer"]!.ToJsonString()));
                break;
            case "config":
                yield return ("t5-config.json", File.ReadAllBytes(F("t5", "tiny-t5", "config.json")));
                yield return ("llama-config.json", File.ReadAllBytes(F("llama", "tiny-llama", "config.json")));
                yield return ("t5-adapter_config.json", File.ReadAllBytes(F("t5", "adapters", "lora_0", "adapter_config.json")));
                yield return ("llama-adapter_config.json", File.ReadAllBytes(F("llama", "adapters", "lora_0", "adapter_config.json")));
                break;
            default:
                throw new ArgumentException($"unknown target {target}");
        }
    }
}
