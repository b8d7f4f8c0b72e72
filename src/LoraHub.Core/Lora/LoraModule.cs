using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Lora;

/// <summary>A LoRA module or adapter folder that cannot be used; the message names the file and the problem.</summary>
public sealed class LoraFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The parts of PEFT's adapter_config.json that change the computation.</summary>
public sealed record LoraConfig(
    int R,
    double LoraAlpha,
    bool UseRslora,
    IReadOnlyList<string> TargetModules,
    string? TaskType,
    string? BaseModelNameOrPath)
{
    /// <summary>PEFT's scaling: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA.</summary>
    public double Scale => UseRslora ? LoraAlpha / Math.Sqrt(R) : LoraAlpha / R;

    public static LoraConfig Load(string path)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path), documentOptions: ConfigFields.StrictJson)?.AsObject()
                ?? throw new LoraFormatException($"{path}: adapter config is empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new LoraFormatException($"{path}: adapter config is not a JSON object ({e.Message})", e);
        }
        // Every field is checked by type and range: "lora_alpha": "NaN" or 1e999 is refused, never read as PEFT's default.
        var f = new ConfigFields(json, path, message => new LoraFormatException(message));
        var peftType = f.String("peft_type");
        if (peftType is not null && peftType != "LORA")
            throw new LoraFormatException($"{path}: peft_type is '{peftType}', only LORA adapters can be composed");
        if (!f.Has("r")) throw new LoraFormatException($"{path}: adapter config has no positive integer 'r' (the LoRA rank)");
        var r = f.Int("r", 1, MaxRank);
        // PEFT's default lora_alpha is 8.
        var alpha = f.Double("lora_alpha", 0, 1e6, 8.0, exclusiveMin: true);
        foreach (var unsupported in new[] { "rank_pattern", "alpha_pattern" })
            if (json[unsupported] is JsonObject o && o.Count > 0)
                throw new LoraFormatException($"{path}: '{unsupported}' (per-layer ranks or alphas) is not supported");
        if (f.Bool("fan_in_fan_out", false))
            throw new LoraFormatException($"{path}: fan_in_fan_out adapters (Conv1D layers) are not supported");
        if (f.Bool("use_dora", false))
            throw new LoraFormatException($"{path}: DoRA adapters are not supported");
        var bias = f.String("bias");
        if (bias is not null && bias != "none")
            throw new LoraFormatException($"{path}: bias '{bias}' is not supported (only 'none')");
        var targets = json["target_modules"] switch
        {
            null => new List<string>(),
            JsonArray arr => arr.Select((x, i) => x is JsonValue v && v.TryGetValue(out string? name) && name.Length > 0 ? name
                : throw f.Error($"'target_modules'[{i}]", $"is {ConfigFields.Kind(x)}, not a module name")).ToList(),
            JsonValue s when s.TryGetValue(out string? one) => [one],
            var other => throw f.Error("'target_modules'", $"is {ConfigFields.Kind(other)}, not a list of module names"),
        };
        return new LoraConfig(r, alpha, f.Bool("use_rslora", false), targets, f.String("task_type"), f.String("base_model_name_or_path"));
    }

    /// <summary>Largest LoRA rank accepted (the ranks in use are 4 to 256).</summary>
    public const int MaxRank = 1 << 16;

    private static string? Str(JsonObject json, string key) => json[key] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
}

/// <summary>
/// One PEFT LoRA module: for each target layer path (the base model's module name, e.g.
/// "encoder.block.0.layer.0.SelfAttention.q"), A [r, in] and B [out, r], as stored (unscaled).
/// </summary>
public sealed class LoraModule : IDisposable
{
    public const string ConfigFile = "adapter_config.json";
    public const string SafetensorsFile = "adapter_model.safetensors";
    public const string BinFile = "adapter_model.bin";
    private const string Prefix = "base_model.model.";

    public string Name { get; }
    public string Directory { get; }
    public LoraConfig Config { get; }
    /// <summary>Per target layer A and B. Empty once a <see cref="ComposedModel"/> that owns the module has laid it out.</summary>
    public IReadOnlyDictionary<string, (Tensor A, Tensor B)> Layers => layers;
    private readonly Dictionary<string, (Tensor A, Tensor B)> layers;

    private LoraModule(string name, string directory, LoraConfig config, Dictionary<string, (Tensor, Tensor)> layers)
    {
        (Name, Directory, Config, this.layers) = (name, directory, config, layers);
    }

    /// <summary>Disposes one layer's tensors and forgets the layer (the owner has copied them).</summary>
    internal void ReleaseLayer(string path)
    {
        if (!layers.Remove(path, out var ab)) return;
        ab.A.Dispose();
        ab.B.Dispose();
    }

    public int Rank => Config.R;

    /// <summary>Loads adapter_config.json and adapter_model.safetensors (or the legacy adapter_model.bin).</summary>
    public static LoraModule Load(string directory, string? name = null)
    {
        directory = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(directory))
            throw new LoraFormatException($"{directory}: LoRA module folder does not exist");
        var configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath))
            throw new LoraFormatException($"{directory}: no {ConfigFile} in the LoRA module folder");
        var config = LoraConfig.Load(configPath);
        var weightsPath = Path.Combine(directory, SafetensorsFile);
        if (!File.Exists(weightsPath)) weightsPath = Path.Combine(directory, BinFile);
        if (!File.Exists(weightsPath))
            throw new LoraFormatException($"{directory}: no {SafetensorsFile} or {BinFile} in the LoRA module folder");

        Dictionary<string, Tensor> tensors;
        try
        {
            tensors = StateDict.LoadFile(weightsPath, ScalarType.Float32);
        }
        catch (TensorFileException e)
        {
            throw new LoraFormatException(e.Message, e);
        }
        try
        {
            var layers = ParseLayers(weightsPath, config, tensors);
            return new LoraModule(name ?? Path.GetFileName(directory), directory, config, layers);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>Maps PEFT keys (base_model.model.PATH.lora_A[.adapter].weight) to layer paths and checks shapes.</summary>
    private static Dictionary<string, (Tensor, Tensor)> ParseLayers(string file, LoraConfig config, Dictionary<string, Tensor> tensors)
    {
        var a = new Dictionary<string, Tensor>();
        var b = new Dictionary<string, Tensor>();
        foreach (var (key, tensor) in tensors)
        {
            var (path, kind) = ParseKey(key) ?? throw new LoraFormatException(
                $"{file}: tensor '{key}' is not a LoRA A or B weight (expected base_model.model.<layer>.lora_A.weight or .lora_B.weight)");
            if (!tensor.is_floating_point())
                throw new LoraFormatException($"{file}: tensor '{key}' is {tensor.dtype}; LoRA weights must be floating point");
            if (NonFinite.Describe(tensor) is { } bad)
                throw new LoraFormatException($"{file}: tensor '{key}' holds {bad}; a module with non-finite weights cannot be composed");
            var side = kind == 'A' ? a : b;
            if (!side.TryAdd(path, tensor))
                throw new LoraFormatException($"{file}: layer '{path}' has more than one lora_{kind} (several adapter names in one file?)");
        }
        if (a.Count == 0) throw new LoraFormatException($"{file}: holds no LoRA weights");
        var layers = new Dictionary<string, (Tensor, Tensor)>();
        foreach (var path in a.Keys.Union(b.Keys).Order(StringComparer.Ordinal))
        {
            if (!a.TryGetValue(path, out var ta)) throw new LoraFormatException($"{file}: layer '{path}' has lora_B but no lora_A");
            if (!b.TryGetValue(path, out var tb)) throw new LoraFormatException($"{file}: layer '{path}' has lora_A but no lora_B");
            if (ta.dim() != 2 || tb.dim() != 2)
                throw new LoraFormatException($"{file}: layer '{path}' has A {Shape(ta)} and B {Shape(tb)}; both must be matrices");
            if (ta.shape[0] != config.R || tb.shape[1] != config.R)
                throw new LoraFormatException($"{file}: layer '{path}' has rank {ta.shape[0]} (A {Shape(ta)}, B {Shape(tb)}) but adapter_config.json says r = {config.R}");
            layers[path] = (ta, tb);
        }
        return layers;
    }

    internal static (string Path, char Kind)? ParseKey(string key)
    {
        if (!key.StartsWith(Prefix, StringComparison.Ordinal) || !key.EndsWith(".weight", StringComparison.Ordinal)) return null;
        var body = key[Prefix.Length..^".weight".Length];
        var parts = body.Split('.');
        // Either PATH.lora_A or PATH.lora_A.<adapter name> (PEFT's in-memory naming leaks into some files).
        for (var i = parts.Length - 1; i >= Math.Max(1, parts.Length - 2); i--)
        {
            if (parts[i] is "lora_A" or "lora_B")
                return (string.Join('.', parts[..i]), parts[i][^1]);
        }
        return null;
    }

    /// <summary>Checks every target against the model's Linear layers; all mismatches are reported together, by name.</summary>
    public void ValidateAgainst(nn.Module model)
    {
        var linears = model.named_modules()
            .Where(m => m.module is TorchSharp.Modules.Linear)
            .ToDictionary(m => m.name, m => ((TorchSharp.Modules.Linear)m.module).weight!.shape);
        var problems = new List<string>();
        foreach (var (path, (ta, tb)) in Layers)
        {
            if (!linears.TryGetValue(path, out var shape))
            {
                problems.Add($"target '{path}' does not exist in the base model");
                continue;
            }
            if (ta.shape[1] != shape[1] || tb.shape[0] != shape[0])
                problems.Add($"'{path}' has A {Shape(ta)} and B {Shape(tb)} but the base layer is {shape[1]} -> {shape[0]}");
        }
        if (problems.Count > 0)
            throw new LoraFormatException($"{Directory}: LoRA module '{Name}' does not fit the base model: {string.Join("; ", problems.Take(5))}"
                + (problems.Count > 5 ? $" (and {problems.Count - 5} more)" : ""));
    }

    internal static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    public void Dispose()
    {
        foreach (var (ta, tb) in Layers.Values)
        {
            ta.Dispose();
            tb.Dispose();
        }
    }
}
