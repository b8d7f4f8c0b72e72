using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.Azure.Functions.Worker;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// Core Tools cannot run here, so the build output that `func start` reads is checked instead: functions.metadata
/// must list every function with its trigger and bindings, and host.json must be next to it.
/// </summary>
public sealed class FunctionsMetadataTests
{
    private static string Output => typeof(FunctionsMetadataTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "FunctionsOutput").Value!;

    private static JsonArray Metadata
    {
        get
        {
            var path = Path.Combine(Output, "functions.metadata");
            Assert.True(File.Exists(path), $"{path} exists after a build");
            return JsonNode.Parse(File.ReadAllText(path))!.AsArray();
        }
    }

    private static JsonObject Function(string name) =>
        Metadata.Select(f => f!.AsObject()).SingleOrDefault(f => f["name"]!.GetValue<string>() == name)
        ?? throw new Xunit.Sdk.XunitException($"functions.metadata has no function {name}");

    private static JsonObject Binding(JsonObject function, string type) =>
        function["bindings"]!.AsArray().Select(b => b!.AsObject()).Single(b => b["type"]!.GetValue<string>() == type);

    [Fact]
    public void Every_function_of_the_assembly_is_listed_once()
    {
        var declared = typeof(LoraHubOptions).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods())
            .Select(m => m.GetCustomAttribute<FunctionAttribute>()?.Name)
            .OfType<string>()
            .Order().ToList();
        var listed = Metadata.Select(f => f!["name"]!.GetValue<string>()).Order().ToList();
        Assert.Equal(declared, listed);
        Assert.Equal(
            ["ComposeOrchestrator", "EvaluateCandidates", "EvaluateCandidatesHttp", "ExamplesBlobTrigger", "GenerateWithAdapter", "GetAdapter",
             "GetAdapterReport", "GetComposition", "Health", "ListCompositions", "ListModules", "ListPool", "MaterializeAdapter", "OpenApi", "SelectModules",
             "StartComposition", "TerminateComposition", "WatchPage"],
            listed);
        Assert.True(File.Exists(Path.Combine(Output, "host.json")), "host.json is copied next to functions.metadata");
        Assert.True(File.Exists(Path.Combine(Output, "worker.config.json")));
        Assert.True(File.Exists(Path.Combine(Output, "extensions.json")));
    }

    [Theory]
    [InlineData("StartComposition", "post", "compositions", "Function", true)]
    [InlineData("GetComposition", "get", "compositions/{id}", "Function", true)]
    [InlineData("TerminateComposition", "delete", "compositions/{id}", "Function", true)]
    [InlineData("ListModules", "get", "modules", "Function", false)]
    [InlineData("GetAdapter", "get", "adapters/{task}", "Function", false)]
    [InlineData("GenerateWithAdapter", "post", "adapters/{task}/generate", "Function", false)]
    [InlineData("EvaluateCandidatesHttp", "post", "evaluate", "Function", false)]
    [InlineData("Health", "get", "health", "Anonymous", false)]
    [InlineData("ListCompositions", "get", "compositions", "Function", true)]
    [InlineData("GetAdapterReport", "get", "adapters/{task}/report.png", "Function", false)]
    [InlineData("WatchPage", "get", "ui", "Function", false)]
    [InlineData("OpenApi", "get", "openapi.json", "Anonymous", false)]
    public void Http_functions_have_their_route_method_authorization_and_bindings(string name, string method, string route, string auth, bool durableClient)
    {
        var function = Function(name);
        var trigger = Binding(function, "httpTrigger");
        Assert.Equal("In", trigger["direction"]!.GetValue<string>());
        Assert.Equal(route, trigger["route"]!.GetValue<string>());
        Assert.Equal(auth, trigger["authLevel"]!.GetValue<string>());
        Assert.Equal([method], trigger["methods"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.Equal("Out", Binding(function, "http")["direction"]!.GetValue<string>());
        Assert.Equal(durableClient, function["bindings"]!.AsArray().Any(b => b!["type"]!.GetValue<string>() == "durableClient"));
    }

    [Fact]
    public void The_blob_trigger_watches_examples_jsonl_on_the_hub_connection_and_has_a_durable_client()
    {
        var function = Function("ExamplesBlobTrigger");
        var trigger = Binding(function, "blobTrigger");
        Assert.Equal("examples/{task}.jsonl", trigger["path"]!.GetValue<string>());
        Assert.Equal("LoraHub:Storage", trigger["connection"]!.GetValue<string>());
        Assert.Equal("In", Binding(function, "durableClient")["direction"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("ComposeOrchestrator", "orchestrationTrigger")]
    [InlineData("SelectModules", "activityTrigger")]
    [InlineData("EvaluateCandidates", "activityTrigger")]
    [InlineData("MaterializeAdapter", "activityTrigger")]
    public void Durable_functions_have_their_trigger(string name, string trigger)
    {
        var function = Function(name);
        Assert.Equal("In", Binding(function, trigger)["direction"]!.GetValue<string>());
        Assert.Single(function["bindings"]!.AsArray());
    }

    [Fact]
    public void The_torch_native_library_in_the_functions_output_is_patched_for_debian_12()
    {
        var so = Path.Combine(Output, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(so), $"{so} exists");
        // The build step makes the GLIBCXX_3.4.32 requirement weak. This test process loads its own copy (patched by the
        // same step) on Debian 12's libstdc++; the Functions app's copy must be the same bytes.
        using var model = LoraHub.Core.Models.ModelLoader.LoadSeq2Seq(FunctionsHub.TinyT5);
        Assert.NotNull(model);
        var mine = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.ReadAllBytes(mine).AsSpan().SequenceEqual(File.ReadAllBytes(so)), "the Functions output holds the patched library");
    }
}
