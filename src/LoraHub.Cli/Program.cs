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
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?"))
{
    // One clear line on stderr instead of the parser's help dump.
    Console.Error.WriteLine($"lorahub: error: {string.Join("; ", parsed.Errors.Select(e => e.Message.ReplaceLineEndings(" ")))} (see lorahub {string.Join(' ', args.Take(1))} --help)");
    return 2;
}
return CliErrors.Run(() => parsed.Invoke());
