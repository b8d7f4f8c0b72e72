namespace LoraHub.Core.Tokenization;

/// <summary>A tokenizer model file is missing, unreadable or not a model this tokenizer understands.</summary>
public sealed class TokenizerException : Exception
{
    public TokenizerException(string message)
        : base(message)
    {
    }

    public TokenizerException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The model file the problem is about, when known.</summary>
    public string? FilePath { get; init; }
}
