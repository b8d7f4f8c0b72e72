namespace LoraHub.Functions.Requests;

/// <summary>
/// A request or examples file that cannot be used: the message says what is wrong; File and Line say where
/// (for examples/{task}.error.json). Nothing is started when one is thrown.
/// </summary>
public sealed class RequestException(string message, string? file = null, int? line = null, int status = 400) : Exception(message)
{
    public string? File { get; } = file;
    public int? Line { get; } = line;
    /// <summary>The HTTP status to answer with (400 bad input, 404 a named item is missing, 413 too large).</summary>
    public int Status { get; } = status;
}
