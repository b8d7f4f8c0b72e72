using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>
/// Creates a model's layers with every parameter in one dtype on one device, either initialised as PyTorch does (to
/// train from scratch) or, for Linear layers, left uninitialised for a checkpoint to overwrite: a model built to be
/// loaded then costs neither a second, differently typed copy of itself nor most of a random initialisation it would
/// throw away.
/// </summary>
public sealed record ParameterFactory(ScalarType? Dtype = null, Device? Device = null, bool Uninitialised = false)
{
    /// <summary>F32 on the CPU, initialised: TorchSharp's defaults.</summary>
    public static readonly ParameterFactory Default = new();

    public Linear Linear(long inFeatures, long outFeatures, bool hasBias) => Uninitialised
        ? nn.Linear(Empty(outFeatures, inFeatures), hasBias ? Empty(outFeatures) : null)
        : nn.Linear(inFeatures, outFeatures, hasBias, Device, Dtype);

    /// <summary>
    /// Always initialised: with an uninitialised weight from TorchSharp 0.107's Embedding_from_pretrained, the loaded
    /// model no longer matched the golden losses although its weight parameter held the checkpoint. An embedding is a
    /// small part of a model (2 % of a 7B Llama), so its initialisation time is kept.
    /// </summary>
    public Embedding Embedding(long count, long dimension) => nn.Embedding(count, dimension, device: Device, dtype: Dtype);

    /// <summary>A norm's weight: ones (cheap, so always initialised).</summary>
    public Parameter Ones(long size) => new(ones(size, Dtype, Device));

    private Parameter Empty(params long[] shape) => new(empty(shape, Dtype, Device));
}
