using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;
using LoraHub.Storage;

namespace LoraHub.Cli;

/// <summary>A command-line usage problem found after parsing (e.g. weights that do not match the modules).</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Turns every expected failure into one clear line on stderr and a non-zero exit code.</summary>
public static class CliErrors
{
    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (Describe(e) is { } message)
        {
            Console.Error.WriteLine($"lorahub: error: {message}");
            return e is UsageException ? 2 : 1;
        }
    }

    /// <summary>Wraps a command's action so its known exceptions surface here, not in System.CommandLine's handler.</summary>
    public static Func<System.CommandLine.ParseResult, int> Guard(Func<System.CommandLine.ParseResult, int> action) =>
        parse => Run(() => action(parse));

    private static string? Describe(Exception e) => e switch
    {
        UsageException or ModelFormatException or LoraFormatException or TensorFileException
            or TokenizerException or ExampleFormatException or CompositionException => OneLine(e.Message),
        FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException => OneLine(e.Message),
        HubNameException or HubItemNotFoundException => OneLine(e.Message),
        Azure.RequestFailedException r => OneLine($"blob storage answered {r.Status}{(r.ErrorCode is { } code ? $" {code}" : "")}: {FirstLine(r.Message)}"),
        AggregateException { InnerExceptions: [Azure.RequestFailedException r] } => OneLine($"blob storage cannot be reached ({FirstLine(r.Message)})"),
        AggregateException a when a.InnerExceptions.All(i => i is Azure.RequestFailedException) => OneLine($"blob storage cannot be reached ({FirstLine(a.InnerExceptions[^1].Message)}, after {a.InnerExceptions.Count} tries)"),
        _ => null,
    };

    private static string OneLine(string message) => message.ReplaceLineEndings(" ");

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();
}
