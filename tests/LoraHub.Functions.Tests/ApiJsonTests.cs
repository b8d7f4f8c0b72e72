using LoraHub.Functions.Requests;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>The HTTP API's JSON bodies: snake_case keys, no nulls, named non-finite numbers, UTF-8 JSON content type.</summary>
public sealed class ApiJsonTests
{
    private const string Json = "application/json; charset=utf-8";

    [Fact]
    public void A_result_is_compact_snake_case_json_without_nulls()
    {
        var r = ApiJson.Result(201, new { TaskName = "t", BestObjective = 1.5, Missing = (string?)null, Diverged = double.NaN, Weights = new[] { 0.5, -1 } });
        Assert.Equal((201, Json), (r.StatusCode, r.ContentType));
        Assert.Equal("""{"task_name":"t","best_objective":1.5,"diverged":"NaN","weights":[0.5,-1]}""", r.Content);
    }

    [Fact]
    public void An_error_is_an_object_with_the_message()
    {
        var r = ApiJson.Error(404, "no composition 'x'");
        Assert.Equal((404, Json, """{"error":"no composition \u0027x\u0027"}"""), (r.StatusCode, r.ContentType, r.Content));
    }

    [Fact]
    public void Raw_json_is_passed_through_unchanged()
    {
        var r = ApiJson.Raw(200, "{\n  \"base_model\": \"t5\"\n}");
        Assert.Equal((200, Json, "{\n  \"base_model\": \"t5\"\n}"), (r.StatusCode, r.ContentType, r.Content));
    }
}
