using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Functions.Requests;
using LoraHub.Storage;

namespace LoraHub.Functions.Engine;

/// <summary>Greedy generation with a composed adapter from the hub (adapters/{task}/) on its base model.</summary>
public sealed class AdapterGenerator(EngineCache engine, IHubStore store)
{
    public async Task<IReadOnlyList<string>> GenerateAsync(string task, IReadOnlyList<string> inputs, int maxNewTokens, CancellationToken ct = default)
    {
        var recordFile = await store.ReadFileAsync(HubArea.Adapters, $"{task}/{CompositionOutput.RecordFile}", ct)
            ?? throw new RequestException($"no composed adapter for task \"{task}\" (adapters/{task}/lorahub.json does not exist)", status: 404);
        string baseModel;
        try
        {
            var record = System.Text.Json.JsonSerializer.Deserialize<CompositionRecord>(recordFile.Content, CompositionRecord.Json);
            baseModel = record?.BaseModel is { Length: > 0 } b ? b : throw new RequestException($"adapters/{task}/lorahub.json names no base model", status: 409);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new RequestException($"adapters/{task}/lorahub.json is not a composition record ({e.Message})", status: 409);
        }
        using var lease = await engine.AcquireAsync(baseModel, HubArea.Adapters, [task], ct);
        lease.Composed.SetWeights([1.0]);
        var predictions = Predictor.Predict(lease.Model, lease.Tokenizer, inputs.Select(i => new Example(i, "")).ToList(), maxNewTokens);
        return predictions.Select(p => p.Output).ToList();
    }
}
