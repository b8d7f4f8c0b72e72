using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Tensors;
using static TorchSharp.torch;

namespace LoraHub.Core.Lora;

/// <summary>A single LoRA adapter (per layer A [r, in], B [out, r], unscaled) ready to be written as PEFT files.</summary>
public sealed class MergedAdapter(int rank, double loraAlpha, bool useRslora, IReadOnlyDictionary<string, (Tensor A, Tensor B)> layers,
    string taskType = "SEQ_2_SEQ_LM") : IDisposable
{
    /// <summary>PEFT's task_type: SEQ_2_SEQ_LM (T5) or CAUSAL_LM (decoder-only), from the model the adapter is for.</summary>
    public string TaskType { get; } = taskType;

    public int Rank { get; } = rank;
    public double LoraAlpha { get; } = loraAlpha;
    public bool UseRslora { get; } = useRslora;
    public IReadOnlyDictionary<string, (Tensor A, Tensor B)> Layers { get; } = layers;

    /// <summary>
    /// Writes adapter_config.json and adapter_model.safetensors the way PEFT saves them, so PEFT's
    /// PeftModel.from_pretrained loads the folder unchanged. target_modules lists the layer names' last parts
    /// (q, v, ...), as PEFT does. Files are written to temporary names and renamed into place.
    /// </summary>
    public void Save(string directory, string baseModelNameOrPath)
    {
        // Stryker disable once Statement : equivalent, SafeTensors.Save (next) creates the folder itself
        Directory.CreateDirectory(directory);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (path, (a, b)) in Layers)
        {
            tensors[$"base_model.model.{path}.lora_A.weight"] = a;
            tensors[$"base_model.model.{path}.lora_B.weight"] = b;
        }
        SafeTensors.Save(Path.Combine(directory, LoraModule.SafetensorsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        var targets = Layers.Keys.Select(p => p[(p.LastIndexOf('.') + 1)..]).Distinct().Order(StringComparer.Ordinal);
        var config = new JsonObject
        {
            ["alpha_pattern"] = new JsonObject(),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = baseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = LoraAlpha == Math.Floor(LoraAlpha) ? JsonValue.Create((long)LoraAlpha) : JsonValue.Create(LoraAlpha),
            ["lora_dropout"] = 0.0,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = Rank,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = new JsonArray(targets.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["task_type"] = TaskType,
            ["use_rslora"] = UseRslora,
        };
        var configPath = Path.Combine(directory, LoraModule.ConfigFile);
        var tmp = configPath + ".tmp";
        File.WriteAllText(tmp, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, configPath, overwrite: true);
    }

    public void Dispose()
    {
        foreach (var (a, b) in Layers.Values)
        {
            a.Dispose();
            b.Dispose();
        }
    }
}
