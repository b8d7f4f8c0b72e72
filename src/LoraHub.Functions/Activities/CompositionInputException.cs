namespace LoraHub.Functions.Activities;

/// <summary>
/// A composition that cannot run as asked (unknown module, bad K...): retrying cannot help, so the orchestrator's
/// retry policy lets it fail at once with this message.
/// </summary>
public sealed class CompositionInputException(string message) : Exception(message);
