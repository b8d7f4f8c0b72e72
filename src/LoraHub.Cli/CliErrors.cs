using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tokenization;
using LoraHub.Storage;

namespace LoraHub.Cli;

/// <summary>A command-line usage problem found after parsing (e.g. weights that do not match the modules).</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Turns every expected failure into one clear line on stderr and a non-zero exit code, and anything unexpected (the last
/// net) into one line too. Exit codes: 0 success, 1 bad input or environment (a file, a folder, the hub, an --out
/// taken), 2 usage (options), 3 internal error (a bug: an exception nobody expected). --verbose adds the stack trace.
/// </summary>
public static class CliErrors
{
    public const int InputError = 1;
    public const int UsageError = 2;
    public const int InternalError = 3;

    /// <summary>Set by --verbose (a global option): print the stack trace after the one line.</summary>
    public static bool Verbose { get; set; }

    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (Describe(e) is { } message)
        {
            Console.Error.WriteLine($"lorahub: error: {message}");
            if (Verbose) Console.Error.WriteLine(e);
            return e is UsageException ? UsageError : InputError;
        }
        catch (Exception e)
        {
            ReportInternal(e);
            return InternalError;
        }
    }

    /// <summary>The last net: one line naming the unexpected exception (its trace only with --verbose).</summary>
    public static void ReportInternal(Exception e)
    {
        var inner = e is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : e;
        Console.Error.WriteLine($"lorahub: internal error: {inner.GetType().Name}: {FirstLine(OneLine(inner.Message))}"
            + (Verbose ? "" : " (run with --verbose for the stack trace)"));
        if (Verbose) Console.Error.WriteLine(e);
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
