using LoraHub.Experiments.Bbh;
using System.CommandLine;
using LoraHub.Cli;
using LoraHub.Cli.Commands;
using LoraHub.Core.Runtime;

// Before anything loads libtorch: idle OpenMP threads must sleep, not spin, on a shared CPU.
TorchStartup.ConfigureThreads();

var root = new RootCommand("LoraHub.NET: compose LoRA modules for a new task from a few examples, without gradients.")
{
    TokenizeCommand.Create(),
    ScoreCommand.Create(),
    GenerateCommand.Create(),
    ComposeCommand.Create(),
    EvalCommand.Create(),
    HubCommand.Create(),
    BbhCommand.Create(),
    TrainCommand.Create(),
    DemoCommand.Create(),
};
// Global: the stack trace after the one-line error (CliErrors). Recursive, so it goes anywhere on the line.
var verbose = new Option<bool>("--verbose") { Description = "print the stack trace of an error after its one line", Recursive = true };
root.Options.Add(verbose);
CliErrors.Verbose = args.Contains("--verbose");
// Even an exception on another thread ends in one line and the internal-error exit code, not a runtime crash dump.
AppDomain.CurrentDomain.UnhandledException += (_, e) =>
{
    CliErrors.ReportInternal(e.ExceptionObject as Exception ?? new InvalidOperationException(e.ExceptionObject?.ToString()));
    Environment.Exit(CliErrors.InternalError);
};
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?"))
{
    // One clear line on stderr instead of the parser's help dump.
    Console.Error.WriteLine($"lorahub: error: {string.Join("; ", parsed.Errors.Select(e => e.Message.ReplaceLineEndings(" ")))} (see lorahub {string.Join(' ', args.Take(1))} --help)");
    return CliErrors.UsageError;
}
return CliErrors.Run(() => parsed.Invoke());
