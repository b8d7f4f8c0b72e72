using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>Loads a Hugging Face model folder (config.json + weights) into the model family its model_type names.</summary>
public static class ModelLoader
{
    /// <summary>The encoder-decoder model_type values <see cref="LoadSeq2Seq"/> builds.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["t5"];

    /// <summary>Every model_type <see cref="Load"/> accepts.</summary>
    public static IReadOnlyList<string> AllModelTypes => [.. SupportedModelTypes, .. SupportedCausalModelTypes];

    public static JsonObject ReadConfig(string directory)
    {
        var path = Path.Combine(directory, "config.json");
        if (!Directory.Exists(directory)) throw new ModelFormatException($"{directory}: model folder does not exist");
        if (!File.Exists(path)) throw new ModelFormatException($"{directory}: no config.json in the model folder");
        try
        {
            return JsonNode.Parse(File.ReadAllText(path), documentOptions: ConfigFields.StrictJson)?.AsObject() ?? throw new ModelFormatException($"{path}: config is empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new ModelFormatException($"{path}: not a JSON object ({e.Message})", e);
        }
    }

    /// <summary>
    /// Builds the model of whichever family config.json's model_type names (t5 → encoder-decoder; llama, mistral,
    /// qwen2 → decoder-only) and copies the checkpoint into it. No flag: the folder says what it is.
    /// </summary>
    public static IAdaptableModel Load(string directory, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        IsCausal(directory) ? LoadCausal(directory, dtype, device) : LoadSeq2Seq(directory, dtype, device);

    /// <summary>
    /// Builds the encoder-decoder model for config.json's model_type and copies the checkpoint into it, streamed as in
    /// <see cref="LoadCausal"/>. Weights stored as F16/BF16 are computed in F32 by default (see <see cref="LoadCausal"/>
    /// for why, and for what BF16/F16 compute does on the CPU). Base weights are frozen (only LoRA is ever trained).
    /// </summary>
    public static ISeq2SeqModel LoadSeq2Seq(string directory, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        directory = Path.GetFullPath(directory);
        var json = ReadConfig(directory);
        var modelType = ModelType(json);
        var configPath = Path.Combine(directory, "config.json");
        if (modelType != "t5")
            throw Unsupported(configPath, modelType, SupportedCausalModelTypes.Contains(modelType ?? "") ? "a decoder-only model: use Load or LoadCausal" : null);
        var config = T5Config.FromJson(json, configPath);
        return Populate(() => new T5ForConditionalGeneration(config, ForLoading(dtype, device)), directory, ModelPreflight.For(config), configPath, T5Source);
    }

    /// <summary>config.json's model_type, or null.</summary>
    private static string? ModelType(JsonObject json) => json["model_type"] is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    private static ModelFormatException Unsupported(string configPath, string? modelType, string? hint) => new(
        $"{configPath}: model_type '{modelType ?? "(none)"}' is not supported; supported: {string.Join(", ", AllModelTypes)}"
        + (hint is null ? "" : $" ('{modelType}' is {hint})"));

    /// <summary>
    /// Fills a freshly built model (already in its compute dtype, on its device) with the folder's checkpoint and freezes
    /// it (only LoRA is ever trained); the model is disposed when anything fails. The checkpoint is streamed: every name
    /// and shape is checked from the file headers first, then each tensor is read straight into its parameter, so the
    /// only memory beyond the model is one tensor's temporary copy when the stored dtype differs (none when it is the
    /// compute dtype). sourceOf names the checkpoint tensor for a parameter (null: absent).
    /// </summary>
    private static T Populate<T>(Func<T> build, string directory, IReadOnlyList<ModelPreflight.Expected> expected, string configPath,
        Func<string, Checkpoint, string?>? sourceOf = null)
        where T : nn.Module
    {
        Checkpoint checkpoint;
        try
        {
            checkpoint = StateDict.OpenModelFolder(directory);
        }
        catch (TensorFileException e)
        {
            throw new ModelFormatException(e.Message, e);
        }
        using (checkpoint)
        {
            // The config's sizes are checked against the checkpoint's headers before anything is allocated for them.
            ModelPreflight.Check(expected, checkpoint, configPath);
            var model = build();
            try
            {
                foreach (var p in model.parameters()) p.requires_grad = false;
                CopyParameters(model, checkpoint, directory, sourceOf ?? ((name, c) => c.Contains(name) ? name : null));
                model.eval();
                return model;
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
    }

    /// <summary>
    /// Parameters for a model about to be filled from a checkpoint: already in the compute dtype on the device, Linear
    /// weights uninitialised, since every parameter is overwritten (a missing tensor is an error).
    /// </summary>
    private static ParameterFactory ForLoading(ScalarType dtype, Device? device) => new(dtype, device, Uninitialised: true);

    /// <summary>T5: save_pretrained stores the shared embedding once; older checkpoints may only have the stack copies.</summary>
    private static string? T5Source(string parameter, Checkpoint checkpoint)
    {
        string[] candidates = parameter == "shared.weight"
            ? ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
            : [parameter];
        return candidates.FirstOrDefault(checkpoint.Contains);
    }

    /// <summary>
    /// Copies checkpoint tensors into the parameters of the same name (the module names are the checkpoint's keys);
    /// mis-shaped or missing tensors are errors that name them, and blocks missing entirely are named as such. Both
    /// are found from the headers before any data is read; the data is then read in file order.
    /// </summary>
    private static void CopyParameters(nn.Module model, Checkpoint checkpoint, string directory, Func<string, Checkpoint, string?> sourceOf)
    {
        var missing = new List<string>();
        var plan = new List<(Tensor Parameter, StoredTensor Source)>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (sourceOf(name, checkpoint) is not { } key)
            {
                missing.Add(name);
                continue;
            }
            var source = checkpoint.Find(key)!;
            if (!source.Shape.SequenceEqual(parameter.shape))
                throw new ModelFormatException(
                    $"{directory}: checkpoint tensor '{name}' has shape [{string.Join(", ", source.Shape)}] but config.json implies [{string.Join(", ", parameter.shape)}]");
            plan.Add((parameter, source));
        }
        if (missing.Count > 0)
        {
            // A numbered block with no tensor at all is the usual cause (a truncated or mixed-up checkpoint): say so.
            var absent = missing.Select(BlockOf).Where(b => b is not null && !checkpoint.Tensors.Any(t => t.Name.StartsWith(b + ".", StringComparison.Ordinal))).Distinct().ToList();
            throw new ModelFormatException($"{directory}: checkpoint is missing {missing.Count} tensor(s): {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? ", ..." : "")}"
                + (absent.Count > 0 ? $" (layer(s) absent: {string.Join(", ", absent)})" : ""));
        }

        var order = checkpoint.Tensors.Select((t, i) => (t.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        foreach (var (parameter, source) in plan.OrderBy(p => order[p.Source.Name]))
        {
            try
            {
                checkpoint.ReadInto(source.Name, parameter);
            }
            catch (TensorFileException e)
            {
                throw new ModelFormatException(e.Message, e);
            }
            // One isfinite().all() per tensor: NaN/Inf weights are refused by name, not scored as "loss NaN".
            if (NonFinite.Describe(parameter) is { } bad)
                throw new ModelFormatException($"{source.File}: checkpoint tensor '{source.Name}' holds {bad}; a model with non-finite weights cannot be used");
        }
    }

    /// <summary>"model.layers.3" of "model.layers.3.mlp.up_proj.weight", "decoder.block.1" of a T5 key; null when unnumbered.</summary>
    private static string? BlockOf(string name)
    {
        var parts = name.Split('.');
        for (var i = 1; i < parts.Length - 1; i++)
            if (int.TryParse(parts[i], out _)) return string.Join('.', parts.Take(i + 1));
        return null;
    }

    /// <summary>True when config.json's model_type is a decoder-only family (load it with <see cref="LoadCausal"/>).</summary>
    public static bool IsCausal(string directory)
    {
        var modelType = ModelType(ReadConfig(Path.GetFullPath(directory)));
        return modelType is not null && SupportedCausalModelTypes.Contains(modelType);
    }

    /// <summary>The few-shot format of the folder's model family, from config.json alone (no weights are read).</summary>
    public static FewShotFormat FormatOf(string directory) => IsCausal(directory) ? FewShotFormat.DecoderOnly : FewShotFormat.EncoderDecoder;

    /// <summary>The decoder-only model_type values <see cref="LoadCausal"/> builds.</summary>
    public static readonly IReadOnlyList<string> SupportedCausalModelTypes = LlamaConfig.ModelTypes;

    /// <summary>
    /// Builds the decoder-only model for config.json's model_type (llama, mistral, qwen2) and copies the checkpoint
    /// into it; missing or mis-shaped tensors are errors that name them. Base weights are frozen (only LoRA is ever trained).
    /// <para>
    /// The model is built directly in dtype on device (its Linear weights uninitialised) and the checkpoint streamed into
    /// it tensor by tensor, so loading needs about the model's own size: BF16 weights loaded as BF16 are read straight
    /// into the parameters (no F32 copy ever exists), and F16/BF16 weights loaded as F32 need one tensor's temporary copy
    /// on top (bench load-memory: peak growth 1.01x the model's bytes, against 3.0x and 2.5x before streaming).
    /// </para>
    /// <para>
    /// dtype is F32 by default. On the CPU (libtorch 2.10) BF16 and F16 both compute correctly, but their speed depends
    /// on the processor: BF16 products use oneDNN, fast with AVX512-BF16 (a Llama few-shot loss took 0.37-0.5x the F32
    /// time on an AVX512-BF16 EPYC) and slower than F32 without it (1.1x with plain AVX-512, 3.2x with AVX2 only); F16
    /// has no fast CPU matrix product there (1.4-6x F32 for a whole evaluation). BF16 also moves losses by about 0.01
    /// (F16 by 0.005) from the reference's F32 values, so F32 stays the default on the CPU; on a GPU BF16/F16 are
    /// native. See the README's "Compute types and loading".
    /// </para>
    /// </summary>
    public static ICausalLanguageModel LoadCausal(string directory, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        directory = Path.GetFullPath(directory);
        var json = ReadConfig(directory);
        var modelType = ModelType(json);
        var configPath = Path.Combine(directory, "config.json");
        if (modelType is null || !SupportedCausalModelTypes.Contains(modelType))
            throw Unsupported(configPath, modelType, SupportedModelTypes.Contains(modelType ?? "") ? "an encoder-decoder model: use Load or LoadSeq2Seq" : null);
        var config = LlamaConfig.FromJson(json, configPath);
        return Populate(() => new LlamaForCausalLM(config, ForLoading(dtype, device)), directory, ModelPreflight.For(config), configPath);
    }

    /// <summary>
    /// The tokenizer of a decoder-only model folder: tokenizer.model (SentencePiece BPE, Llama 2 / Mistral) when present,
    /// else tokenizer.json (byte-level BPE, Llama 3 / Qwen2).
    /// </summary>
    /// <remarks>
    /// Hugging Face's AutoTokenizer prefers tokenizer.json, but Llama 2 and Mistral folders ship both files and their
    /// tokenizer.json is a SentencePiece-style BPE (Metaspace, byte fallback) that <see cref="HfJsonTokenizer"/> does not
    /// read, while the tokenizer.model path is golden-tested against Hugging Face; Llama 3 and Qwen2 folders have no
    /// tokenizer.model at the top (Llama 3's tiktoken file sits in original/). So tokenizer.model wins when present.
    /// </remarks>
    public static ITextTokenizer LoadCausalTokenizer(string directory)
    {
        var spm = Path.Combine(directory, LlamaTokenizer.ModelFileName);
        if (File.Exists(spm)) return LlamaTokenizer.Load(spm);
        var json = Path.Combine(directory, HfJsonTokenizer.FileName);
        if (File.Exists(json)) return HfJsonTokenizer.Load(json);
        throw new ModelFormatException($"{directory}: no tokenizer found (looked for {LlamaTokenizer.ModelFileName} and {HfJsonTokenizer.FileName})");
    }

    /// <summary>
    /// The tokenizer stored with the model: spiece.model (T5's SentencePiece model) first, else
    /// lorahub-vocab.json (the character vocabulary of models trained from scratch, such as the toy world's), else a
    /// decoder-only model's tokenizer.model or tokenizer.json (<see cref="LoadCausalTokenizer"/>). T5 folders often
    /// carry a tokenizer.json too; spiece.model comes first so they keep the SentencePiece tokenizer.
    /// </summary>
    public static ITextTokenizer LoadTokenizer(string directory)
    {
        var spiece = Path.Combine(directory, T5Tokenizer.ModelFileName);
        if (File.Exists(spiece)) return T5Tokenizer.Load(spiece);
        var chars = Path.Combine(directory, CharTokenizer.FileName);
        if (File.Exists(chars)) return CharTokenizer.Load(chars);
        if (File.Exists(Path.Combine(directory, LlamaTokenizer.ModelFileName)) || File.Exists(Path.Combine(directory, HfJsonTokenizer.FileName)))
            return LoadCausalTokenizer(directory);
        throw new ModelFormatException(
            $"{directory}: no tokenizer found (looked for {T5Tokenizer.ModelFileName}, {CharTokenizer.FileName}, {LlamaTokenizer.ModelFileName} and {HfJsonTokenizer.FileName})");
    }
}
