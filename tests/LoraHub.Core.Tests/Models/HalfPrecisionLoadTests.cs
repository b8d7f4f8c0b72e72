using System.Text.Json;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tests.Llama;
using LoraHub.Core.Tests.Tensors;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Models;

/// <summary>
/// Checkpoints stored in one floating type and computed in another: the streamed loader must give every parameter
/// exactly the stored value converted (bit-equal when the types agree), from safetensors, torch.save and shards.
/// </summary>
public sealed class HalfPrecisionLoadTests
{
    /// <summary>tiny-llama's tensors stored as dtype (the caller disposes them).</summary>
    private static Dictionary<string, Tensor> TinyLlamaAs(ScalarType stored)
    {
        var state = SafeTensors.Load(Path.Combine(LlamaFiles.TinyLlama, "model.safetensors"), castTo: stored);
        Assert.All(state.Values, t => Assert.Equal(stored, t.dtype));
        return state;
    }

    private static string CopyConfig(Fixtures.TempDir dir)
    {
        var path = dir["model"];
        Directory.CreateDirectory(path);
        File.Copy(Path.Combine(LlamaFiles.TinyLlama, "config.json"), Path.Combine(path, "config.json"));
        return path;
    }

    /// <summary>Every parameter has the compute type and equals the stored tensor converted to it.</summary>
    private static void AssertExactConversion(ICausalLanguageModel model, Dictionary<string, Tensor> stored, ScalarType compute)
    {
        foreach (var (name, parameter) in model.Module.named_parameters())
        {
            Assert.Equal(compute, parameter.dtype);
            using var expected = stored[name].to(compute);
            TensorAssert.Equal(expected, parameter);
        }
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, ScalarType.BFloat16, "safetensors")]
    [InlineData(ScalarType.BFloat16, ScalarType.Float32, "safetensors")]
    [InlineData(ScalarType.Float16, ScalarType.Float16, "safetensors")]
    [InlineData(ScalarType.Float16, ScalarType.Float32, "safetensors")]
    [InlineData(ScalarType.BFloat16, ScalarType.Float16, "safetensors")]
    [InlineData(ScalarType.Float32, ScalarType.BFloat16, "safetensors")]
    [InlineData(ScalarType.BFloat16, ScalarType.BFloat16, "pytorch_model.bin")]
    [InlineData(ScalarType.BFloat16, ScalarType.Float32, "pytorch_model.bin")]
    [InlineData(ScalarType.Float16, ScalarType.Float32, "pytorch_model.bin")]
    [InlineData(ScalarType.BFloat16, ScalarType.BFloat16, "sharded")]
    public void Checkpoints_load_as_the_exact_conversion_of_the_stored_values(ScalarType stored, ScalarType compute, string format)
    {
        using var dir = new Fixtures.TempDir();
        var path = CopyConfig(dir);
        using var state = new Loaded(TinyLlamaAs(stored));
        switch (format)
        {
            case "safetensors":
                SafeTensors.Save(Path.Combine(path, "model.safetensors"), state.Tensors);
                break;
            case "pytorch_model.bin":
                WriteTorchSave(Path.Combine(path, "pytorch_model.bin"), state.Tensors);
                break;
            default:
                WriteShards(path, state.Tensors);
                break;
        }
        using var model = ModelLoader.LoadCausal(path, compute);
        AssertExactConversion(model, state.Tensors, compute);
        Assert.All(model.Module.parameters(), p => Assert.False(p.requires_grad));
    }

    /// <summary>Two safetensors shards and their index, as save_pretrained writes large models.</summary>
    private static void WriteShards(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var map = new Dictionary<string, string>();
        for (var s = 0; s < 2; s++)
        {
            var shard = $"model-0000{s + 1}-of-00002.safetensors";
            var part = names.Where((_, i) => i % 2 == s).ToDictionary(n => n, n => tensors[n]);
            SafeTensors.Save(Path.Combine(path, shard), part);
            foreach (var n in part.Keys) map[n] = shard;
        }
        File.WriteAllText(Path.Combine(path, "model.safetensors.index.json"), JsonSerializer.Serialize(new { weight_map = map }));
    }

    [Fact]
    public void A_bf16_model_scores_near_float32_and_composes_lora_in_bf16()
    {
        using var dir = new Fixtures.TempDir();
        var path = CopyConfig(dir);
        using (var state = new Loaded(TinyLlamaAs(ScalarType.BFloat16))) SafeTensors.Save(Path.Combine(path, "model.safetensors"), state.Tensors);
        using var model = ModelLoader.LoadCausal(path, ScalarType.BFloat16);
        var golden = LlamaFiles.Golden["cases"]!.AsArray();
        var examples = golden.Select(c => CausalExample.Join(1, LlamaFiles.Ids(c!["prompt_ids"]!), LlamaFiles.Ids(c!["completion_ids"]!), 2)).ToList();
        var losses = CausalLm.ExampleLosses(model, examples);
        // Against HF's float32 losses: bf16 weights and activations moved a loss of ~10 by at most 0.011 (bench cpu-dtypes).
        for (var i = 0; i < examples.Count; i++)
            Assert.InRange(Math.Abs(losses[i] - golden[i]!["loss"]!["base"]!.GetValue<double>()), 0, 0.05);

        var modules = Enumerable.Range(0, 3).Select(i => LoraModule.Load(LlamaFiles.Adapter(i))).ToList();
        try
        {
            using var composed = new ComposedModel(model, modules);
            composed.SetWeights(TinyLlamaFixture.Mixes["lorahub"]);
            var mixed = CausalLm.ExampleLosses(model, examples);
            for (var i = 0; i < examples.Count; i++)
                Assert.InRange(Math.Abs(mixed[i] - golden[i]!["loss"]!["lorahub"]!.GetValue<double>()), 0, 0.05);
        }
        finally
        {
            foreach (var m in modules) m.Dispose();
        }
    }

    /// <summary>Writes tensors as torch.save does: one storage per tensor, contiguous views (no torch needed).</summary>
    private static void WriteTorchSave(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var pickle = new PickleBuilder().BeginDict();
        var storages = new List<(string Key, byte[] Data)>();
        foreach (var (name, tensor) in tensors)
        {
            var key = storages.Count.ToString();
            var size = tensor.shape.Select(d => (int)d).ToArray();
            var stride = new int[size.Length];
            for (int i = size.Length - 1, s = 1; i >= 0; s *= size[i], i--) stride[i] = s;
            var storageType = tensor.dtype switch
            {
                ScalarType.BFloat16 => "BFloat16Storage",
                ScalarType.Float16 => "HalfStorage",
                _ => "FloatStorage",
            };
            pickle.Str(name).Tensor(storageType, key, (int)tensor.numel(), 0, size, stride);
            using var dense = tensor.contiguous();
            storages.Add((key, dense.bytes.ToArray()));
        }
        PickleBuilder.WriteArchive(path, pickle.EndDict().Build(), [.. storages]);
    }
}
