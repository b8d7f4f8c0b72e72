using System.Text.Json;
using LoraHub.Functions.Contracts;
using LoraHub.Functions.Engine;
using LoraHub.Functions.Requests;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Options;

namespace LoraHub.Functions.Triggers;

/// <summary>
/// POST /api/evaluate: the EvaluateCandidates work over HTTP, served by the evaluator app (this image on GPU
/// containers) to the orchestration app's activities when LoraHub:EvaluatorUrl points here.
/// </summary>
public sealed class EvaluatorApi(LocalCandidateEvaluator evaluator, IOptions<LoraHubOptions> options)
{
    [Function("EvaluateCandidatesHttp")]
    public async Task<IActionResult> Evaluate(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "evaluate")] HttpRequest req,
        CancellationToken ct)
    {
        EvaluateCandidatesInput? input;
        try
        {
            var body = await HttpBodies.ReadObjectAsync(req, options.Value.MaxExamplesBytes * 2, ct);
            input = body.Deserialize<EvaluateCandidatesInput>(RemoteCandidateEvaluator.Json);
        }
        catch (RequestException e)
        {
            return ApiJson.Error(e.Status, e.Message);
        }
        catch (JsonException e)
        {
            return ApiJson.Error(400, $"not an EvaluateCandidates input: {e.Message}");
        }
        if (input is null || input.Candidates is null || input.Modules is null || input.Examples is null)
            return ApiJson.Error(400, "not an EvaluateCandidates input");
        var scores = await evaluator.EvaluateAsync(input, ct);
        return new ContentResult
        {
            StatusCode = 200,
            ContentType = "application/json; charset=utf-8",
            Content = JsonSerializer.Serialize(scores, RemoteCandidateEvaluator.Json),
        };
    }
}
