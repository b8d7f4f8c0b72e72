// Benchmarks print ratios measured in one run (absolute times on a shared 2-core machine mean little).
// Run: OMP_WAIT_POLICY=PASSIVE dotnet run -c Release --project bench/LoraHub.Bench -- [name]... [--rounds N]
using LoraHub.Bench;

// load-memory measures each load in a child process of this program.
if (LoadMemory.TryRunChild(args)) return 0;

var benchmarks = new Dictionary<string, Action<int>>
{
    ["lora-overhead"] = LoraOverhead.RunT5,
    ["lora-overhead-llama"] = LoraOverhead.RunLlama,
    ["composition-overhead"] = CompositionOverhead.Run,
    ["load-memory"] = _ => LoadMemory.Run(),
    ["cpu-dtypes"] = CpuDtypes.Run,
};
var rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(15);
var which = args.Where(a => !a.StartsWith("--") && !int.TryParse(a, out _)).DefaultIfEmpty("lora-overhead").ToList();
foreach (var name in which)
{
    if (!benchmarks.TryGetValue(name, out var run))
    {
        Console.Error.WriteLine($"unknown benchmark '{name}' (known: {string.Join(", ", benchmarks.Keys)})");
        return 2;
    }
    run(rounds);
}
return 0;
