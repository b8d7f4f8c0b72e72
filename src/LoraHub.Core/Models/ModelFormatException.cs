namespace LoraHub.Core.Models;

/// <summary>A model folder, config or checkpoint that cannot be used; the message names the file and the problem.</summary>
public sealed class ModelFormatException(string message, Exception? inner = null) : Exception(message, inner);
