using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using LoraHub.Functions.Contracts;
using LoraHub.Storage;
using Microsoft.DurableTask.Client;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// One algorithm, two hosts: `lorahub compose` (Core's driver in process) and the Functions app (the same driver in the
/// orchestrator, evaluations fanned out to activities) give bit-identical modules, weights, history and adapter
/// files for the same request.
/// </summary>
[Collection(FunctionsCollection.Name)]
public sealed class CliParityTests(FunctionsHub hub)
{
    public static TheoryData<string, string, string, int?, string[]?> Requests => new()
    {
        // task, merge, selection, k, explicit modules
        { "parity-lorahub", "lorahub", "random", 2, null },
        { "parity-linear", "linear", "random", 2, null },
        { "parity-loss", "lorahub", "loss", 2, null },
        { "parity-loss-linear", "linear", "loss", 1, null },
        { "parity-given", "lorahub", "random", null, ["lora_2", "lora_0", "lora_1"] },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task The_CLI_and_the_app_compose_bit_identically(string task, string merge, string selection, int? k, string[]? modules)
    {
        var settings = new CompositionSettings { K = k ?? modules!.Length, Budget = 9, Merge = merge, Selection = selection, Seed = 4 };
        var request = FunctionsHub.Request(task, modules: modules, k: k) with { Settings = settings };
        var instance = await hub.RunAsync(request, $"{task}-run");
        Assert.Equal(OrchestrationRuntimeStatus.Completed, instance.RuntimeStatus);
        var outcome = instance.ReadOutputAs<CompositionOutcome>()!;
        var published = await hub.Store.MaterializeAsync(HubArea.Adapters, task);
        var app = CompositionRecord.Load(Path.Combine(published.LocalPath, "lorahub.json"));

        // The CLI's pool: the hub's modules sorted by name, or the named ones in their order.
        var pool = (modules ?? FunctionsHub.Modules).Select(m => new ModuleRef(m, FunctionsHub.ModuleFolder(m))).ToList();
        using var model = ModelLoader.Load(FunctionsHub.TinyT5);
        using var cli = new Composer(model, ModelLoader.LoadTokenizer(FunctionsHub.TinyT5)).Compose(pool, FunctionsHub.Examples, settings, FunctionsHub.BaseModel);

        Assert.Equal(cli.Record.Modules.Select(m => m.Name), app.Modules.Select(m => m.Name));
        Assert.Equal(cli.Record.Modules.Select(m => m.Name), outcome.Modules);
        if (modules is not null) Assert.Equal(modules, app.Modules.Select(m => m.Name)); // a named list keeps its order
        Assert.Equal(Bits(cli.Record.Weights), Bits(app.Weights));
        Assert.Equal(Bits(cli.Record.Weights), Bits(outcome.Weights));
        Assert.Equal(cli.Record.History.Count, app.History.Count);
        Assert.Equal(cli.Record.History.Select(h => Bits(h.Weights)), app.History.Select(h => Bits(h.Weights)));
        Assert.Equal(cli.Record.History.Select(h => h.Loss), app.History.Select(h => h.Loss));
        Assert.Equal(cli.Record.History.Select(h => h.Objective), app.History.Select(h => h.Objective));
        Assert.Equal(cli.Record.Rounds, app.Rounds);
        Assert.True(app.Rounds >= 1 && app.Rounds <= app.History.Count);
        Assert.Equal(cli.Record.Best, app.Best);
        Assert.Equal(modules is null ? selection : "given", app.Selection);
        Assert.Equal(merge, app.Merge);

        using var folder = new TempFolder();
        cli.Adapter.Save(folder.Path, FunctionsHub.BaseModel);
        foreach (var file in new[] { "adapter_config.json", "adapter_model.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(folder.Path, file)), File.ReadAllBytes(Path.Combine(published.LocalPath, file)));
    }

    private static long[] Bits(double[] values) => values.Select(BitConverter.DoubleToInt64Bits).ToArray();

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("lorahub-parity-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
