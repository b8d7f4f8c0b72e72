using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Llama;

/// <summary>Paths of the committed Llama fixtures (tests/fixtures/llama).</summary>
public static class LlamaFiles
{
    public static string Root => Path.Combine(Fixtures.Root, "llama");
    public static string TinyLlama => Path.Combine(Root, "tiny-llama");
    public static string TokenizerModel => Path.Combine(Root, "tokenizer.model");
    public static string Adapter(int i) => Path.Combine(Root, "adapters", $"lora_{i}");
    public static JsonObject Golden => JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "golden-visible.json")))!.AsObject();
    public static JsonObject TokenizerCases => JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "tokenizer-cases.json")))!.AsObject();
    public static int[] Ids(JsonNode node) => node.AsArray().Select(x => x!.GetValue<int>()).ToArray();
}

/// <summary>
/// Attaches a LoraHub mix of LoRA modules to a model directly through LoraInjector and LoraLinear, written out here
/// independently of ComposedModel (which LlamaPipelineTests checks against the same golden numbers):
/// A_hat = Σ w_i A_i, B_hat = Σ w_i s_i B_i with s_i = lora_alpha / r.
/// </summary>
public sealed class LoraMix(nn.Module model, IReadOnlyList<LoraModule> modules) : IDisposable
{
    private readonly List<(LoraLinear Layer, Tensor A, Tensor B)> attached = [];

    public void Set(IReadOnlyList<double> weights)
    {
        Clear();
        using var noGrad = no_grad();
        foreach (var path in modules.SelectMany(m => m.Layers.Keys).Distinct())
        {
            var layer = LoraInjector.Wrap(model, path);
            var a = zeros(modules[0].Rank, layer.InFeatures);
            var b = zeros(layer.OutFeatures, modules[0].Rank);
            for (var i = 0; i < modules.Count; i++)
            {
                if (!modules[i].Layers.TryGetValue(path, out var ab)) continue;
                a.add_(ab.A * weights[i]);
                b.add_(ab.B * (weights[i] * modules[i].Config.Scale));
            }
            layer.SetAdapter(a, b);
            attached.Add((layer, a, b));
        }
    }

    public void Clear()
    {
        foreach (var (layer, a, b) in attached)
        {
            layer.ClearAdapter();
            a.Dispose();
            b.Dispose();
        }
        attached.Clear();
    }

    public void Dispose() => Clear();
}

/// <summary>One loaded tiny-llama and its three adapters, shared by the golden tests.</summary>
public sealed class TinyLlamaFixture : IDisposable
{
    public ICausalLanguageModel Model { get; } = ModelLoader.LoadCausal(LlamaFiles.TinyLlama);
    public IReadOnlyList<LoraModule> Modules { get; } = Enumerable.Range(0, 3).Select(i => LoraModule.Load(LlamaFiles.Adapter(i))).ToList();
    public LoraMix Mix { get; }

    public TinyLlamaFixture()
    {
        foreach (var m in Modules) m.ValidateAgainst(Model.Module);
        Mix = new LoraMix(Model.Module, Modules);
    }

    public static readonly IReadOnlyDictionary<string, double[]> Mixes = new Dictionary<string, double[]>
    {
        ["lora_0"] = [1, 0, 0], ["lora_1"] = [0, 1, 0], ["lora_2"] = [0, 0, 1], ["lorahub"] = [0.5, -0.3, 1.2],
    };

    public void Use(string mix)
    {
        if (mix == "base") Mix.Clear(); else Mix.Set(Mixes[mix]);
    }

    public void Dispose()
    {
        Mix.Dispose();
        foreach (var m in Modules) m.Dispose();
        Model.Dispose();
    }
}

[CollectionDefinition("tiny-llama")]
public sealed class TinyLlamaCollection : ICollectionFixture<TinyLlamaFixture>;
