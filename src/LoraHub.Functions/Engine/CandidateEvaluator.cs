using LoraHub.Core.Lora;
using System.Net.Http.Json;
using System.Text.Json;
using LoraHub.Core.Composition;
using LoraHub.Core.Optimization;
using LoraHub.Functions.Contracts;
using LoraHub.Storage;
using Microsoft.Extensions.Options;

namespace LoraHub.Functions.Engine;

/// <summary>Scores candidate weight vectors: in this process, or on the GPU evaluators (LoraHub:EvaluatorUrl).</summary>
public interface ICandidateEvaluator
{
    Task<CandidateScores> EvaluateAsync(EvaluateCandidatesInput input, CancellationToken ct = default);
}

/// <summary>Evaluates on this process's cached engine (the default; what the GPU evaluators run).</summary>
public sealed class LocalCandidateEvaluator(EngineCache engine, IOptions<LoraHubOptions> options) : ICandidateEvaluator
{
    public async Task<CandidateScores> EvaluateAsync(EvaluateCandidatesInput input, CancellationToken ct = default)
    {
        using var lease = await engine.AcquireAsync(input.BaseModel, input.Versions?.BaseModel, HubArea.Modules, input.Modules, input.Versions?.Modules,
            ct, MergeModes.Parse(input.Merge));
        var examples = ExampleTokenizer.Tokenize(lease.Model.Format, lease.Tokenizer, input.Examples, out _, input.MaxTokens);
        var objective = new FewShotObjective(lease.Composed, examples, input.L1);
        var values = options.Value.BatchCandidates && input.Candidates.Count > 1
            ? objective.EvaluateMany(input.Candidates)
            : input.Candidates.Select(c => objective.Evaluate(c)).ToList();
        return new CandidateScores(values.Select(CandidateScore.Of).ToList());
    }
}

/// <summary>
/// Sends the work to the evaluator app (the same image on GPU containers) at LoraHub:EvaluatorUrl, POST
/// /api/evaluate with the function key LoraHub:EvaluatorKey. A failure throws, and the orchestrator's retry policy
/// tries the activity again.
/// </summary>
public sealed class RemoteCandidateEvaluator(HttpClient http, IOptions<LoraHubOptions> options) : ICandidateEvaluator
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task<CandidateScores> EvaluateAsync(EvaluateCandidatesInput input, CancellationToken ct = default)
    {
        var o = options.Value;
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(o.EvaluatorUrl!.TrimEnd('/') + "/"), "api/evaluate"))
        {
            Content = JsonContent.Create(input, options: Json),
        };
        if (!string.IsNullOrEmpty(o.EvaluatorKey)) request.Headers.Add("x-functions-key", o.EvaluatorKey);
        using var response = await http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"evaluator {o.EvaluatorUrl} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        return await response.Content.ReadFromJsonAsync<CandidateScores>(Json, ct)
            ?? throw new HttpRequestException($"evaluator {o.EvaluatorUrl} sent an empty answer");
    }
}
