using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// CI compiles the Bicep: scripts/bicep.sh builds infra/main.bicep and its parameters file with the Bicep CLI from NuGet
/// (restored with this test project), failing on any error or linter warning; the ARM template must hold the parts
/// of the design.
/// </summary>
public sealed class InfraTests
{
    private static string Metadata(string key) => typeof(InfraTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LoraHub.Functions.sln"))) return dir.FullName;
        throw new InvalidOperationException("repository root not found");
    }

    // Both tests read the one compile's output.
    private static readonly Lazy<Task> Compiled = new(CompileAsync);

    private static async Task CompileAsync()
    {
        var root = RepoRoot();
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = root };
        info.ArgumentList.Add(Path.Combine(root, "scripts", "bicep.sh"));
        info.Environment["BICEP"] = Metadata("BicepCli");
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
            await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"scripts/bicep.sh failed ({process.ExitCode}):\n{await stdout}\n{await stderr}");
    }

    [Fact]
    public async Task The_bicep_templates_compile_without_warnings_and_describe_the_deployment()
    {
        await Compiled.Value;
        var root = RepoRoot();

        var arm = JsonNode.Parse(File.ReadAllText(Path.Combine(root, ".tools", "bicep", "out", "main.json")))!;
        var resources = arm["resources"] is JsonArray list ? list.Select(r => r!).ToList() : arm["resources"]!.AsObject().Select(r => r.Value!).ToList();
        JsonNode Single(string type) => Assert.Single(resources, r => r["type"]!.GetValue<string>() == type)!;

        Assert.Single(resources, r => r["type"]!.GetValue<string>() == "Microsoft.Storage/storageAccounts");
        Assert.Contains("gpuProfileType", Single("Microsoft.App/managedEnvironments")["properties"]!["workloadProfiles"]!.ToJsonString());
        var sites = resources.Where(r => r["type"]!.GetValue<string>() == "Microsoft.Web/sites").Select(r => r.ToJsonString()).ToList();
        Assert.Equal(2, sites.Count);
        Assert.Contains(sites, s => s.Contains("azurecontainerapps") && s.Contains("LoraHub__Device") && s.Contains("AzureWebJobs.ExamplesBlobTrigger.Disabled"));
        Assert.Contains(sites, s => s.Contains("LoraHub__EvaluatorUrl") && s.Contains("serverFarmId"));
        Assert.Contains("ElasticPremium", Single("Microsoft.Web/serverfarms").ToJsonString());
        Assert.Equal(["models", "modules", "examples", "adapters"], arm["variables"]!["hubContainers"]!.AsArray().Select(c => c!.GetValue<string>()));

        var parameters = JsonNode.Parse(File.ReadAllText(Path.Combine(root, ".tools", "bicep", "out", "main.parameters.json")))!;
        Assert.Equal("Consumption-GPU-NC8as-T4", parameters["parameters"]!["gpuProfileType"]!["value"]!.GetValue<string>());
    }

    [Fact]
    public async Task No_storage_key_leaves_the_template_the_apps_sign_in_with_their_managed_identity()
    {
        await Compiled.Value;
        var text = File.ReadAllText(Path.Combine(RepoRoot(), ".tools", "bicep", "out", "main.json"));
        var arm = JsonNode.Parse(text)!;
        var resources = arm["resources"]!.AsArray().Select(r => r!).ToList();

        // The account refuses shared keys, and nothing reads one: the only list*() call left is the GPU app's
        // function key (an HTTP key of our own app, not a storage or workspace key).
        var storage = Assert.Single(resources, r => r["type"]!.GetValue<string>() == "Microsoft.Storage/storageAccounts");
        Assert.False(storage["properties"]!["allowSharedKeyAccess"]!.GetValue<bool>());
        Assert.DoesNotContain("AccountKey", text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("\"sharedKey\"", text, StringComparison.OrdinalIgnoreCase); // the workspace key of log-analytics logs
        var lists = System.Text.RegularExpressions.Regex.Matches(text, @"list[A-Za-z]*\(").Select(m => text.Substring(m.Index, Math.Min(160, text.Length - m.Index))).ToList();
        Assert.Single(lists);
        Assert.Contains("/host/default", lists[0]);
        Assert.DoesNotContain("Microsoft.Storage", lists[0]);

        // Identity-based connections for the host's storage and the hub (blob trigger and hub store).
        // (Settings that read resource properties are inlined into the sites by the compiler.)
        var variables = text;
        foreach (var setting in new[] { "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
                     "LoraHub__Storage__blobServiceUri", "LoraHub__Storage__queueServiceUri", "LoraHub__Storage__credential", "LoraHub__Storage__clientId" })
            Assert.Contains($"'{setting}'", variables);
        Assert.DoesNotContain("'AzureWebJobsStorage'", variables);
        Assert.DoesNotContain("'LoraHub__Storage'", variables);

        // The identity may use blobs (owner: the host's locks and receipts), queues and tables, on the account only.
        Assert.Equal(["0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "974c5e8b-45b9-4653-ba55-5f855dd0fb88", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"],
            arm["variables"]!["storageRoles"]!.AsObject().Select(p => p.Value!.GetValue<string>()).Order());
        var storageAssignments = Assert.Single(resources, r => r["type"]!.GetValue<string>() == "Microsoft.Authorization/roleAssignments"
            && r["copy"] is not null);
        Assert.Contains("Microsoft.Storage/storageAccounts", storageAssignments["scope"]!.GetValue<string>());
        Assert.Contains("principalId", storageAssignments["properties"]!.ToJsonString());
    }
}
