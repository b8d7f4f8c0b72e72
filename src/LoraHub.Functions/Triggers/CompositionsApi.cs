using System.Text.Json.Nodes;
using LoraHub.Functions.Requests;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Options;

namespace LoraHub.Functions.Triggers;

/// <summary>POST /api/compositions, GET and DELETE /api/compositions/{id}: start, watch and stop compositions.</summary>
public sealed class CompositionsApi(ExampleIntake intake, IOptions<LoraHubOptions> options)
{
    [Function("StartComposition")]
    public async Task<IActionResult> Start(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "compositions")] HttpRequest req,
        [DurableClient] DurableTaskClient client,
        CancellationToken ct)
    {
        try
        {
            var body = await HttpBodies.ReadObjectAsync(req, options.Value.MaxExamplesBytes * 2, ct);
            var (request, outcome) = await intake.FromHttpAsync(client, body, ct);
            var links = Links(req, outcome.InstanceId, request.Task);
            req.HttpContext.Response.Headers.Location = links.Status;
            return ApiJson.Result(StatusCodes.Status202Accepted, new
            {
                id = outcome.InstanceId,
                task = request.Task,
                started = outcome.Started,
                status = outcome.Started ? "Pending" : outcome.ExistingStatus?.ToString(),
                links,
            });
        }
        catch (RequestException e)
        {
            return ApiJson.Error(e.Status, e.Message);
        }
    }

    [Function("GetComposition")]
    public async Task<IActionResult> Get(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "compositions/{id}")] HttpRequest req,
        string id,
        [DurableClient] DurableTaskClient client,
        CancellationToken ct)
    {
        if (!InstanceIds.LooksValid(id)) return ApiJson.Error(400, $"'{id}' is not a composition id");
        var instance = await client.GetInstanceAsync(id, getInputsAndOutputs: true, ct);
        if (instance is null) return ApiJson.Error(404, $"no composition '{id}'");
        return ApiJson.Result(200, new
        {
            id,
            status = instance.RuntimeStatus.ToString(),
            created_at = instance.CreatedAt,
            last_updated_at = instance.LastUpdatedAt,
            progress = Parse(instance.SerializedCustomStatus),
            result = Parse(instance.SerializedOutput),
            error = instance.FailureDetails is { } f ? $"{f.ErrorType}: {f.ErrorMessage}" : null,
            links = Links(req, id, null),
        });
    }

    [Function("TerminateComposition")]
    public async Task<IActionResult> Terminate(
        [HttpTrigger(AuthorizationLevel.Function, "delete", Route = "compositions/{id}")] HttpRequest req,
        string id,
        [DurableClient] DurableTaskClient client,
        CancellationToken ct)
    {
        if (!InstanceIds.LooksValid(id)) return ApiJson.Error(400, $"'{id}' is not a composition id");
        var instance = await client.GetInstanceAsync(id, getInputsAndOutputs: false, ct);
        if (instance is null) return ApiJson.Error(404, $"no composition '{id}'");
        if (instance.IsCompleted) return ApiJson.Error(409, $"composition '{id}' already ended ({instance.RuntimeStatus})");
        await client.TerminateInstanceAsync(id, new TerminateInstanceOptions { Output = "terminated by DELETE /api/compositions" }, ct);
        return ApiJson.Result(StatusCodes.Status202Accepted, new { id, status = "Terminating" });
    }

    private static JsonNode? Parse(string? json)
    {
        if (string.IsNullOrEmpty(json)) return null;
        try
        {
            return JsonNode.Parse(json);
        }
        catch (System.Text.Json.JsonException)
        {
            return JsonValue.Create(json);
        }
    }

    private static CompositionLinks Links(HttpRequest req, string id, string? task)
    {
        var api = HttpBodies.ApiBase(req);
        return new CompositionLinks($"{api}/compositions/{id}", $"{api}/compositions/{id}", task is null ? null : $"{api}/adapters/{task}");
    }

    private sealed record CompositionLinks(string Status, string Terminate, string? Adapter);
}
