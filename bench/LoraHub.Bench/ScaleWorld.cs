using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using static TorchSharp.torch;

namespace LoraHub.Bench;

/// <summary>
/// The scale bench's worlds, generated once from fixed seeds into a cache outside the repository
/// (LORAHUB_BENCH_CACHE, else ~/.cache/lorahub-bench/scale-v1): a Flan-T5-large geometry in F32 with a hub of 196
/// PEFT modules (half adapter_model.safetensors, half legacy adapter_model.bin as torch.save writes it), and a
/// TinyLlama-geometry 1.1 B decoder in BF16, sharded with model.safetensors.index.json, with 20 CAUSAL_LM modules.
/// Weights are written tensor by tensor in chunks (never a whole model in memory): random values of plausible
/// scale, which is all loading, memory and speed depend on.
/// </summary>
internal static class ScaleWorld
{
    public static string Cache => Environment.GetEnvironmentVariable("LORAHUB_BENCH_CACHE")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "lorahub-bench", "scale-v1");

    public static string T5Dir => Path.Combine(Cache, "flan-t5-large-geometry");
    public static string T5Hub => Path.Combine(Cache, "t5-hub-196");
    public static string LlamaDir => Path.Combine(Cache, "tinyllama-geometry-bf16");
    public static string LlamaHub => Path.Combine(Cache, "llama-hub-20");

    public static JsonObject T5LargeConfig() => BenchWorld.T5Config(dModel: 1024, layers: 24, heads: 16, dFf: 2816);

    public static JsonObject TinyLlamaConfig() => BenchWorld.LlamaConfig(hidden: 2048, layers: 22, heads: 32, kvHeads: 4, intermediate: 5632, vocab: 32000);

    /// <summary>Generates whatever is missing (each folder is marked complete only when fully written).</summary>
    public static void Ensure(int t5Modules = 196, int llamaModules = 20)
    {
        Once(T5Dir, dir =>
        {
            var config = T5LargeConfig();
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            File.Copy(Path.Combine(AppContext.BaseDirectory, "spiece.model"), Path.Combine(dir, "spiece.model"), overwrite: true);
            WriteSafetensors(Path.Combine(dir, "model.safetensors"), T5Shapes(config), "F32", seed: 1);
        });
        Once(LlamaDir, dir =>
        {
            var config = TinyLlamaConfig();
            config["torch_dtype"] = "bfloat16";
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            var shapes = LlamaShapes(config);
            // Two shards of about equal bytes, as save_pretrained splits a model larger than its shard size.
            var total = shapes.Sum(s => s.Shape.Aggregate(1L, (a, b) => a * b));
            var first = new List<(string, long[])>();
            long acc = 0;
            foreach (var s in shapes)
            {
                if (acc >= total / 2) break;
                first.Add(s);
                acc += s.Shape.Aggregate(1L, (a, b) => a * b);
            }
            var second = shapes.Skip(first.Count).ToList();
            string[] files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
            WriteSafetensors(Path.Combine(dir, files[0]), first, "BF16", seed: 2);
            WriteSafetensors(Path.Combine(dir, files[1]), second, "BF16", seed: 3);
            var map = new JsonObject();
            foreach (var (name, _) in first) map[name] = files[0];
            foreach (var (name, _) in second) map[name] = files[1];
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total * 2 }, ["weight_map"] = map };
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index.ToJsonString());
        });
        Once(T5Hub, dir =>
        {
            var config = T5LargeConfig();
            var (d, inner, layers) = ((long)config["d_model"]!.GetValue<int>(), 16L * 64, config["num_layers"]!.GetValue<int>());
            var targets = new List<(string Path, long In, long Out)>();
            foreach (var stack in new[] { "encoder", "decoder" })
            {
                for (var i = 0; i < layers; i++)
                {
                    targets.Add(($"{stack}.block.{i}.layer.0.SelfAttention.q", d, inner));
                    targets.Add(($"{stack}.block.{i}.layer.0.SelfAttention.v", d, inner));
                    if (stack == "decoder")
                    {
                        targets.Add(($"{stack}.block.{i}.layer.1.EncDecAttention.q", d, inner));
                        targets.Add(($"{stack}.block.{i}.layer.1.EncDecAttention.v", d, inner));
                    }
                }
            }
            for (var m = 0; m < t5Modules; m++)
                WriteModule(Path.Combine(dir, $"t5-large-lora-{m:D3}"), targets, "SEQ_2_SEQ_LM", "google/flan-t5-large", seed: 1000 + m, asBin: m % 2 == 1);
        });
        Once(LlamaHub, dir =>
        {
            var targets = new List<(string Path, long In, long Out)>();
            for (var i = 0; i < 22; i++)
            {
                targets.Add(($"model.layers.{i}.self_attn.q_proj", 2048, 2048));
                targets.Add(($"model.layers.{i}.self_attn.v_proj", 2048, 256));
            }
            for (var m = 0; m < llamaModules; m++)
                WriteModule(Path.Combine(dir, $"llama-lora-{m:D2}"), targets, "CAUSAL_LM", "TinyLlama/TinyLlama-1.1B", seed: 5000 + m, asBin: false);
        });
    }

    private static void Once(string dir, Action<string> write)
    {
        var marker = Path.Combine(dir, ".complete");
        if (File.Exists(marker)) return;
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(dir);
        Console.WriteLine($"scale: generating {dir}");
        write(dir);
        File.WriteAllText(marker, DateTime.UtcNow.ToString("O"));
    }

    /// <summary>Parameter names and shapes of a model built uninitialised (Linear weights are never touched).</summary>
    private static List<(string Name, long[] Shape)> Shapes(nn.Module model)
    {
        var list = model.named_parameters().Select(p => (p.name, p.parameter.shape)).ToList();
        model.Dispose();
        return list;
    }

    private static List<(string Name, long[] Shape)> T5Shapes(JsonObject config) =>
        Shapes(new T5ForConditionalGeneration(Core.Models.T5Config.FromJson(config, "scale"), new ParameterFactory(ScalarType.Float32, Uninitialised: true)));

    private static List<(string Name, long[] Shape)> LlamaShapes(JsonObject config) =>
        Shapes(new LlamaForCausalLM(Core.Models.LlamaConfig.FromJson(config, "scale"), new ParameterFactory(ScalarType.BFloat16, Uninitialised: true)));

    /// <summary>
    /// Streams a safetensors file: header first, then each tensor's values generated in chunks. Norm weights are
    /// ones, embeddings uniform with std 1 (T5) or 0.02-ish, matrices uniform with std 1/sqrt(fan_in).
    /// </summary>
    private static void WriteSafetensors(string path, IReadOnlyList<(string Name, long[] Shape)> tensors, string dtype, int seed)
    {
        var size = dtype == "F32" ? 4 : 2;
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            var bytes = shape.Aggregate(1L, (a, b) => a * b) * size;
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;
        var tmp = path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(len, padded);
            file.Write(len);
            file.Write(json);
            for (var i = json.Length; i < padded; i++) file.WriteByte((byte)' ');
            var rng = new Random(seed);
            var chunk = new byte[1 << 20];
            foreach (var (name, shape) in tensors)
            {
                var count = shape.Aggregate(1L, (a, b) => a * b);
                var (ones, scale) = name.Contains("norm", StringComparison.Ordinal) ? (true, 0f)
                    : name.Contains("relative_attention_bias", StringComparison.Ordinal) ? (false, 0.1f)
                    : name.Contains("shared", StringComparison.Ordinal) || name.Contains("embed_tokens", StringComparison.Ordinal) ? (false, dtype == "F32" ? 1f : 0.02f)
                    : (false, 1f / MathF.Sqrt(shape[^1]));
                var amplitude = scale * MathF.Sqrt(3);
                for (long done = 0; done < count;)
                {
                    var n = (int)Math.Min(count - done, chunk.Length / size);
                    for (var j = 0; j < n; j++)
                    {
                        var v = ones ? 1f : (float)(rng.NextDouble() * 2 - 1) * amplitude;
                        if (size == 4) BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(j * 4), v);
                        else BinaryPrimitives.WriteUInt16LittleEndian(chunk.AsSpan(j * 2), ToBf16(v));
                    }
                    file.Write(chunk, 0, n * size);
                    done += n;
                }
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static ushort ToBf16(float v)
    {
        var bits = BitConverter.SingleToUInt32Bits(v);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16); // round to nearest even
    }

    /// <summary>A rank-16, alpha-32 PEFT module (random A and B, seeded) as safetensors or as a torch.save .bin.</summary>
    private static void WriteModule(string dir, List<(string Path, long In, long Out)> targets, string taskType, string baseName, int seed, bool asBin)
    {
        manual_seed(seed);
        using var scope = NewDisposeScope();
        var layers = targets.ToDictionary(t => t.Path, t => (randn(16, t.In) / MathF.Sqrt(t.In), randn(t.Out, 16) * 0.01));
        using (var adapter = new MergedAdapter(16, 32, false, layers, taskType)) adapter.Save(dir, baseName);
        if (!asBin) return;
        var safetensors = Path.Combine(dir, LoraModule.SafetensorsFile);
        var tensors = SafeTensors.Load(safetensors);
        TorchBinWriter.Save(Path.Combine(dir, LoraModule.BinFile), tensors);
        foreach (var t in tensors.Values) t.Dispose();
        File.Delete(safetensors);
    }
}

/// <summary>
/// Writes a state dict of F32 tensors as torch.save (PyTorch ≥ 1.6) does: a zip of archive/data.pkl (pickle protocol 2,
/// each tensor as torch._utils._rebuild_tensor_v2 of a persistent-id storage), archive/byteorder, archive/data/N and
/// archive/version, stored uncompressed.
/// </summary>
internal static class TorchBinWriter
{
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var tmp = path + ".tmp";
        using (var zip = new ZipArchive(new FileStream(tmp, FileMode.Create), ZipArchiveMode.Create))
        {
            var pickle = new MemoryStream();
            void Op(byte op) => pickle.WriteByte(op);
            void Text(string s) => pickle.Write(Encoding.UTF8.GetBytes(s));
            void Unicode(string s)
            {
                var b = Encoding.UTF8.GetBytes(s);
                Op((byte)'X');
                Span<byte> n = stackalloc byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(n, b.Length);
                pickle.Write(n);
                pickle.Write(b);
            }
            void Int(long v)
            {
                Op((byte)'J');
                Span<byte> n = stackalloc byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(n, checked((int)v));
                pickle.Write(n);
            }
            void Global(string module, string name) { Op((byte)'c'); Text($"{module}\n{name}\n"); }
            void Tuple(IEnumerable<long> values) { Op((byte)'('); foreach (var v in values) Int(v); Op((byte)'t'); }
            void EmptyOrderedDict() { Global("collections", "OrderedDict"); Op((byte)')'); Op((byte)'R'); }

            Op(0x80); Op(2);
            EmptyOrderedDict();
            Op((byte)'(');
            var key = 0;
            foreach (var (name, tensor) in tensors)
            {
                if (tensor.dtype != ScalarType.Float32) throw new ArgumentException($"{name}: only F32 tensors are written");
                var shape = tensor.shape;
                var strides = new long[shape.Length];
                for (long i = shape.Length - 1, s = 1; i >= 0; i--) { strides[i] = s; s *= shape[i]; }
                Unicode(name);
                Global("torch._utils", "_rebuild_tensor_v2");
                Op((byte)'(');
                Op((byte)'('); Unicode("storage"); Global("torch", "FloatStorage"); Unicode(key.ToString(System.Globalization.CultureInfo.InvariantCulture)); Unicode("cpu"); Int(tensor.numel()); Op((byte)'t');
                Op((byte)'Q');
                Int(0);
                Tuple(shape);
                Tuple(strides);
                Op(0x89); // False: requires_grad
                EmptyOrderedDict();
                Op((byte)'t');
                Op((byte)'R');
                var entry = zip.CreateEntry($"archive/data/{key}", CompressionLevel.NoCompression);
                using (var s = entry.Open()) s.Write(tensor.contiguous().bytes);
                key++;
            }
            Op((byte)'u');
            Op((byte)'.');
            Write(zip, "archive/data.pkl", pickle.ToArray());
            Write(zip, "archive/byteorder", "little"u8.ToArray());
            Write(zip, "archive/version", "3\n"u8.ToArray());
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static void Write(ZipArchive zip, string name, byte[] bytes)
    {
        using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        s.Write(bytes);
    }
}
