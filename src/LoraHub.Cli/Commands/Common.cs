using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using static TorchSharp.torch;

namespace LoraHub.Cli.Commands;

/// <summary>Options and loading steps shared by the commands.</summary>
internal static class Common
{
    public static Option<string> Base() => new("--base") { Description = "Hugging Face model folder (config.json, model.safetensors, spiece.model)", Required = true };
    public static Option<string[]> Modules() => new("--module") { Description = "PEFT LoRA module folder (repeatable)", AllowMultipleArgumentsPerToken = false };
    public static Option<string?> Weights() => new("--weights") { Description = "one weight per --module, comma separated (w1,w2,...)" };
    public static Option<string> Format() => new Option<string>("--format") { Description = "output format", DefaultValueFactory = _ => "text" }.AcceptOnlyFromAmong("text", "json");
    public static Option<string> DType() => new Option<string>("--dtype") { Description = "compute type: float32 (default), bfloat16 (half the memory; on the CPU fast only with AVX512-BF16 or AMX), float16 (half the memory, slow on the CPU)", DefaultValueFactory = _ => "float32" }.AcceptOnlyFromAmong("float32", "bfloat16", "float16");

    public static Option<string> Merge() => new Option<string>("--merge") { Description = "lorahub: A and B merged separately (the paper); linear: exact weighted sum of the modules' deltas", DefaultValueFactory = _ => "lorahub" }.AcceptOnlyFromAmong([.. MergeModes.Names]);

    public static ScalarType ParseDType(string name) => name switch
    {
        "bfloat16" => ScalarType.BFloat16,
        "float16" => ScalarType.Float16,
        _ => ScalarType.Float32,
    };

    /// <summary>
    /// The weight vector for the given modules: --weights as given, or weight 1 for a single module.
    /// Returns null when there are no modules (the base model alone).
    /// </summary>
    public static double[]? ResolveWeights(string[] modules, string? weights)
    {
        if (weights is null)
        {
            if (modules.Length == 0) return null;
            if (modules.Length == 1) return [1.0];
            throw new UsageException($"{modules.Length} modules given: say how to mix them with --weights w1,...,w{modules.Length}");
        }
        var parts = weights.Split(',', StringSplitOptions.TrimEntries);
        var values = new double[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !double.IsFinite(values[i]))
                throw new UsageException($"--weights: '{parts[i]}' is not a number");
        }
        if (modules.Length == 0) throw new UsageException("--weights given without any --module");
        if (values.Length != modules.Length)
            throw new UsageException($"--weights has {values.Length} values for {modules.Length} modules");
        return values;
    }

    /// <summary>Loads the modules and attaches their composition to the model; null when there are none.</summary>
    public static ComposedModel? Compose(IAdaptableModel model, string[] moduleDirs, double[]? weights, MergeMode mode = MergeMode.LoraHub)
    {
        if (moduleDirs.Length == 0) return null;
        var composed = ComposedModel.Load(model, moduleDirs, mode);
        try
        {
            composed.SetWeights(weights!);
            return composed;
        }
        catch
        {
            composed.Dispose();
            throw;
        }
    }

    // Relaxed escaping keeps SentencePiece pieces readable ("▁Hello", not "\u2581Hello").
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void WriteJson(JsonNode node) => Console.Out.WriteLine(node.ToJsonString(Json));
}
