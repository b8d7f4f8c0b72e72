using LoraHub.Functions.Requests;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;

namespace LoraHub.Functions.Triggers;

/// <summary>
/// A file examples/{task}.jsonl lands in the hub's storage: validate it (and its sidecar examples/{task}.json) and
/// start its composition once per content. Upload the sidecar first: only the .jsonl triggers.
/// </summary>
public sealed class ExamplesBlobTrigger(ExampleIntake intake)
{
    /// <summary>The app setting (section) holding the hub's storage connection: LoraHub__Storage.</summary>
    public const string Connection = "LoraHub:Storage";

    [Function(nameof(ExamplesBlobTrigger))]
    public async Task Run(
        [BlobTrigger("examples/{task}.jsonl", Connection = Connection)] Stream content,
        string task,
        [DurableClient] DurableTaskClient client,
        CancellationToken ct)
    {
        await intake.FromBlobAsync(client, task, content, ct);
    }
}
