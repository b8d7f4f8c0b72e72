// Benchmarks print ratios measured in one run (absolute times on a shared 2-core machine mean little).
// Run: OMP_WAIT_POLICY=PASSIVE dotnet run -c Release --project bench/LoraHub.Bench -- [lora-overhead] [composition-overhead] [--rounds N]
using LoraHub.Bench;

var rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(15);
var which = args.Where(a => !a.StartsWith("--") && !int.TryParse(a, out _)).DefaultIfEmpty("lora-overhead").ToList();
foreach (var name in which)
{
    switch (name)
    {
        case "lora-overhead": LoraOverhead.Run(rounds); break;
        case "composition-overhead": CompositionOverhead.Run(rounds); break;
        default: Console.Error.WriteLine($"unknown benchmark '{name}' (known: lora-overhead, composition-overhead)"); return 2;
    }
}
return 0;
