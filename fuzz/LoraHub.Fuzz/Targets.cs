using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;

namespace LoraHub.Fuzz;

/// <summary>
/// One fuzz target per reader of untrusted files. Each takes the raw bytes of one file; the typed errors the readers
/// promise (the ones the CLI turns into one line) are the expected outcome of bad input, anything else is a finding.
/// </summary>
public static class Targets
{
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        ["safetensors"] = SafetensorsFile,
        ["pytorch-bin"] = PyTorchBinFile,
        ["examples"] = ExamplesFile,
        ["spiece"] = SpieceModel,
        ["tokenizer-json"] = TokenizerJson,
        ["config"] = ConfigFiles,
    };

    /// <summary>The exceptions that are a clear, expected refusal of a bad file.</summary>
    public static bool IsTyped(Exception e) => e is TensorFileException or ModelFormatException or LoraFormatException
        or TokenizerException or ExampleFormatException or CompositionException;

    // Each process writes its input to its own scratch folder (the readers take paths, as the CLI does).
    private static readonly string Scratch = Directory.CreateTempSubdirectory($"lorahub-fuzz-{Environment.ProcessId}-").FullName;

    private static string Write(string name, byte[] data)
    {
        var path = Path.Combine(Scratch, name);
        File.WriteAllBytes(path, data);
        return path;
    }

    private static void SafetensorsFile(byte[] data)
    {
        var path = Write("adapter_model.safetensors", data);
        SafeTensors.ReadHeader(path);
        foreach (var t in SafeTensors.Load(path).Values) t.Dispose();
    }

    private static void PyTorchBinFile(byte[] data)
    {
        var path = Write("adapter_model.bin", data);
        foreach (var t in PyTorchBin.Load(path).Values) t.Dispose();
    }

    private static void ExamplesFile(byte[] data)
    {
        // Through the file reader (encoding checks included), then the in-memory parser on the decoded text.
        var path = Write("task.jsonl", data);
        ExampleFile.Load(path);
        ExampleFile.Parse(System.Text.Encoding.UTF8.GetString(data), "fuzz.jsonl");
    }

    private static void SpieceModel(byte[] data)
    {
        var tokenizer = T5Tokenizer.FromBytes(data, "spiece.model");
        tokenizer.Encode("Hello world, ünïcödé 123 \U0001F600");
    }

    private static void TokenizerJson(byte[] data)
    {
        var dir = Path.Combine(Scratch, "tok");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "tokenizer.json"), data);
        var tokenizer = HfJsonTokenizer.Load(dir);
        tokenizer.Encode("Hello world, ünïcödé 123 \U0001F600");
    }

    private static void ConfigFiles(byte[] data)
    {
        // The same bytes as a model's config.json (T5 and Llama readers) and as a module's adapter_config.json.
        var dir = Path.Combine(Scratch, "model");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "config.json"), data);
        var json = ModelLoader.ReadConfig(dir);
        try
        {
            T5Config.FromJson(json, "config.json");
        }
        catch (Exception e) when (IsTyped(e))
        {
        }
        try
        {
            LlamaConfig.FromJson(json, "config.json");
        }
        catch (Exception e) when (IsTyped(e))
        {
        }
        LoraConfig.Load(Write("adapter_config.json", data));
    }

    /// <summary>Runs a target on one input; returns null for success or a typed error, the exception for a finding.</summary>
    public static Exception? Try(Action<byte[]> target, byte[] data)
    {
        try
        {
            target(data);
            return null;
        }
        catch (Exception e) when (IsTyped(e))
        {
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }
}
