// Benchmarks print ratios measured in one run (absolute times on a shared 2-core machine mean little).
// Run: OMP_WAIT_POLICY=PASSIVE dotnet run -c Release --project bench/LoraHub.Bench -- [name]... [--rounds N] [--parts LIST]
using LoraHub.Bench;

// load-memory measures each load in a child process of this program.
if (LoadMemory.TryRunChild(args) || Contention.TryRunChild(args) || Scale.TryRunChild(args)) return 0;

// Each benchmark takes its rounds (--rounds, else its default: durable-overhead's rounds are whole compositions) and
// returns its exit code.
var benchmarks = new Dictionary<string, Func<int?, Task<int>>>
{
    ["lora-overhead"] = r => Done(() => LoraOverhead.RunT5(r ?? 15)),
    ["lora-overhead-llama"] = r => Done(() => LoraOverhead.RunLlama(r ?? 15)),
    ["composition-overhead"] = r => Done(() => CompositionOverhead.Run(r ?? 15)),
    ["durable-overhead"] = r => DurableOverhead.RunAsync(r ?? 3),
    ["load-memory"] = _ => Done(LoadMemory.Run),
    ["cpu-dtypes"] = r => Done(() => CpuDtypes.Run(r ?? 15)),
    ["contention"] = r => Done(() => Contention.Run(r ?? 3)),
    ["scale"] = r => Done(() => Scale.Run(r)),
    ["pytorch-t5"] = r => Task.FromResult(PytorchT5.Run(r ?? 15)),
};
var rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(a => (int?)int.Parse(a)).FirstOrDefault();
// Names are the arguments that are neither options nor an option's value (--rounds N, --parts LIST).
var which = args.Where((a, i) => !a.StartsWith("--") && !(i > 0 && args[i - 1] is "--rounds" or "--parts")).DefaultIfEmpty("lora-overhead").ToList();
foreach (var name in which)
{
    if (!benchmarks.TryGetValue(name, out var run))
    {
        Console.Error.WriteLine($"unknown benchmark '{name}' (known: {string.Join(", ", benchmarks.Keys)})");
        return 2;
    }
    if (await run(rounds) != 0) return 1;
}
return 0;

static Task<int> Done(Action run)
{
    run();
    return Task.FromResult(0);
}
