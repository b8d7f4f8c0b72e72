using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Functions.Engine;
using LoraHub.Functions.Requests;
using LoraHub.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Options;

namespace LoraHub.Functions.Triggers;

/// <summary>GET /api/modules, GET /api/adapters/{task}, POST /api/adapters/{task}/generate, GET /api/health.</summary>
public sealed class HubApi(IHubStore store, AdapterGenerator generator, IOptions<LoraHubOptions> options)
{
    [Function("ListModules")]
    public async Task<IActionResult> ListModules(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "modules")] HttpRequest req,
        CancellationToken ct)
    {
        var modules = await store.ListAsync(HubArea.Modules, ct);
        return ApiJson.Result(200, new
        {
            modules = modules.OrderBy(m => m.Name, StringComparer.Ordinal)
                .Select(m => new { name = m.Name, etag = m.ETag, size = m.Size, last_modified = m.LastModified }),
        });
    }

    [Function("GetAdapter")]
    public async Task<IActionResult> GetAdapter(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "adapters/{task}")] HttpRequest req,
        string task,
        CancellationToken ct)
    {
        if (!HubNames.IsValidName(task)) return ApiJson.Error(400, $"'{task}' is not a valid task name");
        var record = await store.ReadFileAsync(HubArea.Adapters, $"{task}/{CompositionOutput.RecordFile}", ct);
        return record is null
            ? ApiJson.Error(404, $"no composed adapter for task '{task}'")
            : ApiJson.Raw(200, System.Text.Encoding.UTF8.GetString(record.Content));
    }

    [Function("GenerateWithAdapter")]
    public async Task<IActionResult> Generate(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "adapters/{task}/generate")] HttpRequest req,
        string task,
        CancellationToken ct)
    {
        if (!HubNames.IsValidName(task)) return ApiJson.Error(400, $"'{task}' is not a valid task name");
        try
        {
            var body = await HttpBodies.ReadObjectAsync(req, options.Value.MaxExamplesBytes, ct);
            if (body["inputs"] is not JsonArray array || array.Count == 0)
                throw new RequestException("request body: \"inputs\" must be a non-empty list of strings");
            var inputs = array.Select(x => x is JsonValue v && v.TryGetValue(out string? s) ? s
                : throw new RequestException("request body: \"inputs\" must be a list of strings")).ToList();
            if (inputs.Count > options.Value.MaxGenerateInputs)
                throw new RequestException($"request body: {inputs.Count} inputs (at most {options.Value.MaxGenerateInputs} per call)");
            var maxNewTokens = body["max_new_tokens"] switch
            {
                null => 64,
                JsonValue v when v.TryGetValue(out int n) && n is >= 1 and <= 1024 => n,
                _ => throw new RequestException("request body: \"max_new_tokens\" must be a whole number in [1, 1024]"),
            };
            var outputs = await generator.GenerateAsync(task, inputs, maxNewTokens, ct);
            return ApiJson.Result(200, new { task, outputs });
        }
        catch (RequestException e)
        {
            return ApiJson.Error(e.Status, e.Message);
        }
    }

    [Function("Health")]
    public IActionResult Health([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "health")] HttpRequest req) =>
        ApiJson.Result(200, new { status = "ok", store = store.Kind });
}
