// Benchmarks print ratios measured in one run (absolute times on a shared 2-core machine mean little).
// Run: OMP_WAIT_POLICY=PASSIVE dotnet run -c Release --project bench/LoraHub.Bench -- [lora-overhead] [composition-overhead] [durable-overhead] [--rounds N]
// (--rounds defaults to 15, and to 3 for durable-overhead, whose rounds are whole compositions.)
using LoraHub.Bench;

var rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(a => (int?)int.Parse(a)).FirstOrDefault();
var which = args.Where(a => !a.StartsWith("--") && !int.TryParse(a, out _)).DefaultIfEmpty("lora-overhead").ToList();
foreach (var name in which)
{
    switch (name)
    {
        case "lora-overhead": LoraOverhead.Run(rounds ?? 15); break;
        case "composition-overhead": CompositionOverhead.Run(rounds ?? 15); break;
        case "durable-overhead": if (await DurableOverhead.RunAsync(rounds ?? 3) != 0) return 1; break;
        default: Console.Error.WriteLine($"unknown benchmark '{name}' (known: lora-overhead, composition-overhead, durable-overhead)"); return 2;
    }
}
return 0;
