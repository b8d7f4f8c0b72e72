using LoraHub.Core.Lora;
using LoraHub.Core.Composition;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Storage;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;

namespace LoraHub.Functions.Activities;

/// <summary>
/// Merges the best weights into one PEFT LoRA adapter and publishes adapters/{task}/: adapter_config.json,
/// adapter_model.safetensors, report.png, and lorahub.json (the composition record, written last as the commit marker).
/// </summary>
public sealed class MaterializeAdapter(EngineCache engine, IHubStore store, IFaultInjector faults, ILogger<MaterializeAdapter> log)
{
    private const int PublishAttempts = 3;

    [Function(nameof(MaterializeAdapter))]
    public Task<MaterializedAdapter> Run([ActivityTrigger] MaterializeAdapterInput input, CancellationToken ct) => RunAsync(input, ct);

    public async Task<MaterializedAdapter> RunAsync(MaterializeAdapterInput input, CancellationToken ct = default)
    {
        faults.BeforeActivity(nameof(MaterializeAdapter));
        var request = input.Request;
        var settings = request.Settings;
        var history = input.History.Select(h => h.ToTrial()).ToList();
        var best = history.First(h => h.Weights.AsSpan().SequenceEqual(input.Weights));
        var folder = Directory.CreateTempSubdirectory("lorahub-adapter-").FullName;
        try
        {
            int rank;
            using (var lease = await engine.AcquireAsync(request.BaseModel, input.Versions?.BaseModel, HubArea.Modules, input.Modules,
                input.Versions?.Modules, ct, MergeModes.Parse(settings.Merge)))
            {
                rank = lease.Composed.Rank;
                using var adapter = lease.Composed.Merge(input.Weights);
                adapter.Save(folder, request.BaseModel);
            }
            var search = new SearchResult(history, input.Weights, best, input.Rounds);
            var record = CompositionRecord.Create(settings, request.BaseModel, input.Modules.Select(m => (m, $"modules/{m}")).ToList(), search, rank,
                input.ExampleCount, input.Warnings, Timings.Of(input.SelectSeconds, input.LoadSeconds, input.SearchSeconds, history.Count),
                modulesGiven: request.Modules is not null);
            var png = Report.RenderPng(history.Select(h => h.Objective).ToList(), input.Modules, input.Weights, request.Task);
            await File.WriteAllBytesAsync(Path.Combine(folder, CompositionOutput.ReportFile), png, ct);
            await File.WriteAllTextAsync(Path.Combine(folder, CompositionOutput.RecordFile), record.ToJson(), ct);
            await PublishAsync(request.Task, folder, ct);
            var files = Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            return new MaterializedAdapter($"adapters/{request.Task}", files!);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// Publishes the folder, then reads it back. Two compositions of one task (a changed file while the previous run
    /// is still going) may publish at the same moment, and the store's marker-last protocol alone does not keep their
    /// files apart. So: if the marker read back is another run's, that run published later and owns adapters/{task}
    /// (it checks its own files); if it is ours but a file is not, the publishes interleaved and we publish again.
    /// </summary>
    private async Task PublishAsync(string task, string folder, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            await store.PublishFolderAsync(HubArea.Adapters, task, folder, CompositionOutput.RecordFile, ct);
            var marker = await store.ReadFileAsync(HubArea.Adapters, $"{task}/{CompositionOutput.RecordFile}", ct);
            var mine = await File.ReadAllBytesAsync(Path.Combine(folder, CompositionOutput.RecordFile), ct);
            if (marker is null || !marker.Content.AsSpan().SequenceEqual(mine))
            {
                log.LogWarning("adapters/{Task} was published again by another composition of the task, which owns it now", task);
                return;
            }
            var mixed = new List<string>();
            foreach (var path in Directory.GetFiles(folder).Where(f => Path.GetFileName(f) != CompositionOutput.RecordFile))
            {
                var stored = await store.ReadFileAsync(HubArea.Adapters, $"{task}/{Path.GetFileName(path)}", ct);
                var local = await File.ReadAllBytesAsync(path, ct);
                if (stored is null || !stored.Content.AsSpan().SequenceEqual(local)) mixed.Add(Path.GetFileName(path));
            }
            if (mixed.Count == 0) return;
            if (attempt == PublishAttempts)
                throw new IOException($"adapters/{task}: {string.Join(", ", mixed)} kept being overwritten by another publish");
            log.LogWarning("adapters/{Task}: {Files} were overwritten by a concurrent publish; publishing again", task, string.Join(", ", mixed));
        }
    }
}
