using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;

namespace LoraHub.Functions.Requests;

/// <summary>The HTTP API's JSON: snake_case, compact; responses are written as ContentResult so they do not depend on MVC's settings.</summary>
public static class ApiJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static ContentResult Result(int status, object body) => new()
    {
        StatusCode = status,
        ContentType = "application/json; charset=utf-8",
        Content = JsonSerializer.Serialize(body, Options),
    };

    public static ContentResult Error(int status, string message) => Result(status, new { error = message });

    /// <summary>A JSON text already serialized elsewhere (lorahub.json, orchestration output).</summary>
    public static ContentResult Raw(int status, string json) => new()
    {
        StatusCode = status,
        ContentType = "application/json; charset=utf-8",
        Content = json,
    };
}
