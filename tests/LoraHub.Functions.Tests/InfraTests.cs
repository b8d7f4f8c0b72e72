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

    [Fact]
    public async Task The_bicep_templates_compile_without_warnings_and_describe_the_deployment()
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
}
