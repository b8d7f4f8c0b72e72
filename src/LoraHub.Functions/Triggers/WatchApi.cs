using System.Reflection;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Functions.Orchestration;
using LoraHub.Functions.Requests;
using LoraHub.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;

namespace LoraHub.Functions.Triggers;

/// <summary>
/// What a person watches: GET /api/ui (a page that polls the JSON API), GET /api/compositions (the list it polls),
/// GET /api/adapters/{task}/report.png (the composition's picture) and GET /api/openapi.json (the API described).
/// The page is a Function-level route like the API: Core Tools waives keys locally; in Azure open it with ?code=KEY
/// and its script sends that key (x-functions-key) with every call it makes.
/// </summary>
public sealed class WatchApi(IHubStore store)
{
    /// <summary>Most compositions the list returns (the newest first).</summary>
    public const int ListLimit = 50;

    [Function("WatchPage")]
    public IActionResult Page([HttpTrigger(AuthorizationLevel.Function, "get", Route = "ui")] HttpRequest req) =>
        new ContentResult { StatusCode = 200, ContentType = "text/html; charset=utf-8", Content = Resource("watch.html") };

    [Function("OpenApi")]
    public IActionResult OpenApi([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "openapi.json")] HttpRequest req)
    {
        var document = JsonNode.Parse(Resource("openapi.json"))!;
        document["servers"] = new JsonArray(new JsonObject { ["url"] = HttpBodies.ApiBase(req) });
        return ApiJson.Raw(200, document.ToJsonString());
    }

    [Function("ListCompositions")]
    public async Task<IActionResult> List(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "compositions")] HttpRequest req,
        [DurableClient] DurableTaskClient client,
        CancellationToken ct)
    {
        var query = new OrchestrationQuery { FetchInputsAndOutputs = false, PageSize = 100 };
        var found = new List<OrchestrationMetadata>();
        await foreach (var instance in client.GetAllInstancesAsync(query).WithCancellation(ct))
            if (instance.Name == nameof(ComposeOrchestrator)) found.Add(instance);
        return ApiJson.Result(200, new
        {
            compositions = found.OrderByDescending(i => i.CreatedAt).ThenBy(i => i.InstanceId, StringComparer.Ordinal).Take(ListLimit).Select(i => new
            {
                id = i.InstanceId,
                task = TaskOf(i.InstanceId),
                status = i.RuntimeStatus.ToString(),
                created_at = i.CreatedAt,
                last_updated_at = i.LastUpdatedAt,
                progress = Summary(i.SerializedCustomStatus),
            }),
        });
    }

    [Function("GetAdapterReport")]
    public async Task<IActionResult> Report(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "adapters/{task}/report.png")] HttpRequest req,
        string task,
        CancellationToken ct)
    {
        if (!HubNames.IsValidName(task)) return ApiJson.Error(400, $"'{task}' is not a valid task name");
        // Only a committed adapter (its lorahub.json marker written) has a report that belongs to it.
        var marker = await store.ReadFileAsync(HubArea.Adapters, $"{task}/{CompositionOutput.RecordFile}", ct);
        var png = marker is null ? null : await store.ReadFileAsync(HubArea.Adapters, $"{task}/{CompositionOutput.ReportFile}", ct);
        return png is null
            ? ApiJson.Error(404, $"no composed adapter report for task '{task}'")
            : new FileContentResult(png.Content, "image/png");
    }

    /// <summary>The task of an instance id "{task}-{16 hex digits}" (InstanceIds).</summary>
    private static string TaskOf(string id) => id.Length > 17 && id[^17] == '-' ? id[..^17] : id;

    /// <summary>The custom status without its curve: the list stays small; GET /api/compositions/{id} has the curve.</summary>
    private static JsonNode? Summary(string? status)
    {
        if (string.IsNullOrEmpty(status)) return null;
        try
        {
            var node = JsonNode.Parse(status);
            if (node is JsonObject o) o.Remove("curve");
            return node;
        }
        catch (System.Text.Json.JsonException)
        {
            return JsonValue.Create(status);
        }
    }

    private static string Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"LoraHub.Functions.Web.{name}")
            ?? throw new InvalidOperationException($"the app's resource Web/{name} is missing from the build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
