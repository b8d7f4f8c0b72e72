using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Functions.Requests;
using Microsoft.AspNetCore.Http;

namespace LoraHub.Functions.Triggers;

internal static class HttpBodies
{
    /// <summary>Reads a JSON object body of at most maxBytes, or throws RequestException (400 / 413 / 415).</summary>
    public static async Task<JsonObject> ReadObjectAsync(HttpRequest req, long maxBytes, CancellationToken ct)
    {
        if (req.ContentLength > maxBytes)
            throw new RequestException($"the request body is {req.ContentLength} bytes (at most {maxBytes})", status: 413);
        if (req.ContentType is { Length: > 0 } type && !type.Contains("json", StringComparison.OrdinalIgnoreCase))
            throw new RequestException($"the request body must be JSON (Content-Type: application/json), not {type}", status: 415);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await req.Body.ReadAsync(chunk, ct)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > maxBytes) throw new RequestException($"the request body is larger than {maxBytes} bytes", status: 413);
        }
        if (buffer.Length == 0) throw new RequestException("the request body is empty: send a JSON object");
        JsonNode? node;
        try
        {
            // A duplicate key is an error here, not an ArgumentException later when the object is read (a 500).
            node = JsonNode.Parse(buffer.ToArray(), documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new RequestException($"the request body is not valid JSON: {e.Message}");
        }
        return node as JsonObject ?? throw new RequestException("the request body must be a JSON object");
    }

    /// <summary>The base URL of this app as the caller sees it: scheme://host/api.</summary>
    public static string ApiBase(HttpRequest req) => $"{req.Scheme}://{req.Host}{req.PathBase}/api";
}
