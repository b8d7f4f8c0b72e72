using System.Reflection;
using Azure.Storage.Blobs;
using LoraHub.Functions.Triggers;
using LoraHub.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LoraHub.Functions.Tests;

/// <summary>
/// The app's HTTP functions served over real HTTP (Kestrel on 127.0.0.1, a free port) for curl and a browser: every
/// method with an [HttpTrigger] is routed at api/{Route} for its methods and invoked on the class the app's services
/// build, with the request, route values, the Durable client and the cancellation token, as the Functions host's
/// ASP.NET Core integration does. Function-level routes ask for the key (x-functions-key or ?code=) as a plain host
/// does (401 otherwise); anonymous ones do not. A poller stands in for the host's blob trigger: a new or changed
/// examples/*.jsonl blob runs ExamplesBlobTrigger once per ETag.
/// </summary>
public sealed class FunctionsServer : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly CancellationTokenSource stop = new();
    private Task? poller;

    private FunctionsServer(WebApplication app, string url)
    {
        this.app = app;
        Url = url;
    }

    /// <summary>http://127.0.0.1:PORT</summary>
    public string Url { get; }

    public string Api => Url + "/api";

    /// <summary>Every HTTP function of the app: (name, method, route, authorization level).</summary>
    public static IReadOnlyList<(string Name, string Method, string Route, AuthorizationLevel Auth, MethodInfo Target)> HttpFunctions() =>
        typeof(LoraHubOptions).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static))
            .Select(m => (Method: m, Function: m.GetCustomAttribute<FunctionAttribute>(),
                Trigger: m.GetParameters().Select(p => p.GetCustomAttribute<HttpTriggerAttribute>()).OfType<HttpTriggerAttribute>().SingleOrDefault()))
            .Where(x => x.Function is not null && x.Trigger is not null)
            .SelectMany(x => x.Trigger!.Methods!.Select(verb => (x.Function!.Name, verb.ToUpperInvariant(), x.Trigger.Route!, x.Trigger.AuthLevel, x.Method)))
            .ToList();

    public static async Task<FunctionsServer> StartAsync(FunctionsHub hub, string? functionKey, bool watchExamples = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddMvcCore(); // the IActionResult executors (ContentResult, FileContentResult)
        var app = builder.Build();
        foreach (var f in HttpFunctions())
            app.MapMethods("/api/" + f.Route, [f.Method], context => InvokeAsync(hub, f.Target, f.Auth, functionKey, context));
        await app.StartAsync();
        var url = app.Urls.Single().TrimEnd('/');
        var server = new FunctionsServer(app, url);
        if (watchExamples) server.poller = Task.Run(() => WatchExamplesAsync(hub, server.stop.Token));
        return server;
    }

    private static async Task InvokeAsync(FunctionsHub hub, MethodInfo target, AuthorizationLevel auth, string? key, HttpContext context)
    {
        if (auth != AuthorizationLevel.Anonymous && key is not null)
        {
            var given = context.Request.Headers["x-functions-key"].FirstOrDefault() ?? context.Request.Query["code"].FirstOrDefault();
            if (given != key)
            {
                context.Response.StatusCode = 401;
                return;
            }
        }
        var instance = target.IsStatic ? null : hub.Services.GetRequiredService(target.DeclaringType!);
        var args = target.GetParameters().Select(object? (p) => p.ParameterType switch
        {
            var t when t == typeof(HttpRequest) => context.Request,
            var t when t == typeof(DurableTaskClient) => hub.Client,
            var t when t == typeof(CancellationToken) => context.RequestAborted,
            var t when t == typeof(string) => context.GetRouteValue(p.Name!)?.ToString(),
            var t => throw new InvalidOperationException($"{target.Name}: no value for parameter {p.Name} ({t})"),
        }).ToArray();
        var returned = target.Invoke(instance, args);
        var result = returned switch
        {
            Task<IActionResult> task => await task,
            IActionResult r => r,
            _ => throw new InvalidOperationException($"{target.Name} returned {returned?.GetType()}"),
        };
        await result.ExecuteResultAsync(new ActionContext(context, context.GetRouteData(), new ActionDescriptor()));
    }

    /// <summary>The blob trigger's stand-in: polls examples/ every 500 ms (the host's polling takes up to a minute).</summary>
    private static async Task WatchExamplesAsync(FunctionsHub hub, CancellationToken ct)
    {
        var store = (BlobHubStore)hub.Store;
        await store.EnsureContainersAsync(ct);
        var container = store.Container(HubArea.Examples);
        var seen = new Dictionary<string, Azure.ETag>();
        await foreach (var blob in container.GetBlobsAsync(cancellationToken: ct)) seen[blob.Name] = blob.Properties.ETag!.Value;
        var trigger = hub.Services.GetRequiredService<ExamplesBlobTrigger>();
        while (!ct.IsCancellationRequested)
        {
            await foreach (var blob in container.GetBlobsAsync(cancellationToken: ct))
            {
                if (!blob.Name.EndsWith(".jsonl", StringComparison.Ordinal) || seen.GetValueOrDefault(blob.Name) == blob.Properties.ETag) continue;
                seen[blob.Name] = blob.Properties.ETag!.Value;
                using var content = (await container.GetBlobClient(blob.Name).DownloadStreamingAsync(cancellationToken: ct)).Value.Content;
                await trigger.Run(content, blob.Name[..^".jsonl".Length], hub.Client, ct);
            }
            await Task.Delay(500, ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        if (poller is not null) try { await poller; } catch (OperationCanceledException) { }
        await app.StopAsync();
        await app.DisposeAsync();
        stop.Dispose();
    }
}
