using TorchSharp;
using static TorchSharp.torch;

namespace LoraHub.Core.Models;

/// <summary>
/// What LoRA composition needs from any model family: its module tree, whose names are the checkpoint's keys
/// (the LoRA injector wraps Linear layers by those names). Encoder-decoder and decoder-only models both are.
/// </summary>
public interface IAdaptableModel : IDisposable
{
    nn.Module Module { get; }
}
