using LoraHub.Core;
using LoraHub.Core.Composition;
using Spectre.Console;

namespace LoraHub.Cli;

/// <summary>A progress bar on stderr (stdout stays clean for --format json); plain lines when not a terminal.</summary>
internal static class Progress
{
    private static readonly IAnsiConsole Err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    public static T Run<T>(string title, int total, Func<IProgress<CompositionProgress>, T> work)
    {
        if (Console.IsErrorRedirected)
        {
            var last = "";
            return work(new SyncProgress<CompositionProgress>(p =>
            {
                var line = $"{p.Phase} {p.Done}/{p.Total}" + (p.BestObjective is { } b ? $" best {b:F4}" : "");
                // Only phase changes and the end, so logs stay short.
                if (p.Done == p.Total || !line.StartsWith(last.Split(' ')[0], StringComparison.Ordinal)) Console.Error.WriteLine($"lorahub: {line}");
                last = line;
            }));
        }
        T result = default!;
        Err.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: total);
                result = work(new SyncProgress<CompositionProgress>(p =>
                {
                    task.MaxValue = p.Total;
                    task.Value = p.Done;
                    task.Description = $"{p.Phase}" + (p.BestObjective is { } b ? $" (best {b:F4})" : "");
                }));
            });
        return result;
    }
}
