using LoraHub.Cli;
using Xunit;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>The CLI's last net: anything unexpected is one line on stderr and exit code 3; the trace only with --verbose.</summary>
[Collection(nameof(ConsoleErrorCollection))]
public sealed class LastNetTests
{
    public static TheoryData<string> Unexpected => new()
    {
        nameof(InvalidOperationException), nameof(DivideByZeroException), nameof(OverflowException), nameof(NullReferenceException),
        nameof(IndexOutOfRangeException), nameof(OutOfMemoryException), nameof(System.Runtime.InteropServices.ExternalException),
        nameof(KeyNotFoundException), nameof(FormatException), nameof(AggregateException),
    };

    private static Exception Make(string type) => type switch
    {
        nameof(InvalidOperationException) => new InvalidOperationException("state\nsecond line"),
        nameof(DivideByZeroException) => new DivideByZeroException(),
        nameof(OverflowException) => new OverflowException("Arithmetic operation resulted in an overflow."),
        nameof(NullReferenceException) => new NullReferenceException(),
        nameof(IndexOutOfRangeException) => new IndexOutOfRangeException(),
        nameof(OutOfMemoryException) => new OutOfMemoryException(),
        nameof(System.Runtime.InteropServices.ExternalException) => new System.Runtime.InteropServices.ExternalException("native\r\nstack"),
        nameof(KeyNotFoundException) => new KeyNotFoundException("key 'x'"),
        nameof(FormatException) => new FormatException("bad"),
        _ => new AggregateException(new ArithmeticException("inner")),
    };

    private static (int Code, string Stderr) Run(Func<int> action, bool verbose)
    {
        var saved = Console.Error;
        var writer = new StringWriter();
        Console.SetError(writer);
        CliErrors.Verbose = verbose;
        try
        {
            return (CliErrors.Run(action), writer.ToString());
        }
        finally
        {
            CliErrors.Verbose = false;
            Console.SetError(saved);
        }
    }

    [Theory]
    [MemberData(nameof(Unexpected))]
    public void An_unexpected_exception_is_one_line_and_exit_code_3(string type)
    {
        var (code, stderr) = Run(() => throw Make(type), verbose: false);
        Assert.Equal(CliErrors.InternalError, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("lorahub: internal error: ", line);
        Assert.Contains(type == nameof(AggregateException) ? nameof(ArithmeticException) : type, line);
        Assert.Contains("--verbose", line);
    }

    [Theory]
    [MemberData(nameof(Unexpected))]
    public void With_verbose_the_stack_trace_follows_the_line(string type)
    {
        var (code, stderr) = Run(() => throw Make(type), verbose: true);
        Assert.Equal(CliErrors.InternalError, code);
        Assert.StartsWith("lorahub: internal error: ", stderr);
        Assert.Contains("   at ", stderr);
    }

    [Fact]
    public void Expected_errors_keep_their_codes_usage_2_input_1()
    {
        Assert.Equal(CliErrors.UsageError, Run(() => throw new UsageException("--x is wrong"), false).Code);
        Assert.Equal(CliErrors.InputError, Run(() => throw new IOException("disk"), false).Code);
        var (code, stderr) = Run(() => throw new LoraHub.Core.Composition.CompositionException("a\nb"), false);
        Assert.Equal(CliErrors.InputError, code);
        Assert.Equal("lorahub: error: a b", stderr.Trim());
    }

    [Fact]
    public void Verbose_is_accepted_anywhere_on_the_line_and_adds_the_trace_to_an_input_error()
    {
        using var dir = new Fixtures.TempDir();
        var r = CliProcess.Run("hub", "list", "--verbose", "--hub", dir["missing"]);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("lorahub: error: --hub", r.Stderr);
        Assert.Contains("   at ", r.Stderr);
        r = CliProcess.Run("hub", "list", "--hub", dir["missing"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}

/// <summary>Tests that swap Console.Error run one at a time.</summary>
[CollectionDefinition(nameof(ConsoleErrorCollection), DisableParallelization = true)]
public sealed class ConsoleErrorCollection;
