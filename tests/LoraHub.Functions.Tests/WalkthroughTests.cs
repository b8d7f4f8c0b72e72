using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;

namespace LoraHub.Functions.Tests;

/// <summary>
/// The README's walk-throughs, run as written: their commands live in examples/walkthrough/*.sh, which the README
/// shows verbatim (checked here, so the two cannot drift), and run here with bash and curl against the app served
/// over HTTP (FunctionsServer: the real triggers, a real Azurite hub, the in-process Durable host), with
/// `lorahub` the CLI this build made. Only the LORAHUB_* defaults at the top differ (where the app, hub and CLI are).
/// </summary>
[Collection(FunctionsCollection.Name)]
public sealed class WalkthroughTests(FunctionsHub hub, ITestOutputHelper output)
{
    private const string Key = "walkthrough-key";

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LoraHub.Functions.sln"))) return dir.FullName;
        throw new InvalidOperationException("repository root not found");
    }

    private static string Metadata(string key) => typeof(WalkthroughTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    [Theory]
    [InlineData("setup.sh")]
    [InlineData("curl.sh")]
    [InlineData("drop-a-file.sh")]
    public void The_readme_shows_each_walkthrough_script_verbatim(string script)
    {
        var readme = File.ReadAllText(Path.Combine(RepoRoot(), "README.md"));
        var lines = File.ReadAllLines(Path.Combine(RepoRoot(), "examples", "walkthrough", script));
        var block = string.Join("\n", lines.Select(l => "    " + l));
        Assert.True(readme.Contains(block, StringComparison.Ordinal), $"README.md shows examples/walkthrough/{script} verbatim as an indented block:\n{block}");
    }

    [Fact]
    public async Task The_walkthroughs_run_as_written_against_the_app()
    {
        await using var server = await FunctionsServer.StartAsync(hub, Key, watchExamples: true);
        var temp = Directory.CreateTempSubdirectory("lorahub-walkthrough-").FullName;

        // A plain host enforces function keys (Core Tools waives them): without the header, 401.
        using (var http = new HttpClient())
        {
            Assert.Equal(401, (int)(await http.GetAsync(server.Api + "/modules")).StatusCode);
            Assert.Equal(200, (int)(await http.GetAsync(server.Api + "/health")).StatusCode);
        }

        var setup = await RunAsync("setup.sh", server, temp);
        Assert.Contains("tiny-t5", setup);

        var curl = await RunAsync("curl.sh", server, temp);
        var lines = Outputs(curl);
        Assert.Equal(7, lines.Count);
        Assert.Equal("ok", JsonNode.Parse(lines[0])!["status"]!.GetValue<string>());
        Assert.Equal(FunctionsHub.Modules, JsonNode.Parse(lines[1])!["modules"]!.AsArray().Select(m => m!["name"]!.GetValue<string>()));
        var started = JsonNode.Parse(lines[2])!;
        Assert.Matches("^yes-no-[0-9a-f]{16}$", started["id"]!.GetValue<string>());
        Assert.True(started["started"]!.GetValue<bool>());
        var done = JsonNode.Parse(lines[3])!;
        Assert.Equal("Completed", done["status"]!.GetValue<string>());
        Assert.Equal(20, done["result"]!["evaluations"]!.GetValue<int>());
        Assert.Equal(3, done["result"]!["weights"]!.AsArray().Count);
        var record = JsonNode.Parse(lines[4])!;
        Assert.Equal("tiny-t5", record["base_model"]!.GetValue<string>());
        Assert.Equal(20, record["history"]!.AsArray().Count);
        var png = File.ReadAllBytes(Path.Combine(temp, "yes-no-report.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        var generated = JsonNode.Parse(lines[5])!;
        Assert.Single(generated["outputs"]!.AsArray());
        Assert.Contains("already ended", JsonNode.Parse(lines[6])!["error"]!.GetValue<string>());

        var drop = await RunAsync("drop-a-file.sh", server, temp);
        var dropLines = Outputs(drop);
        var id = Assert.Single(dropLines, l => l.StartsWith("yes-no-", StringComparison.Ordinal));
        var composition = JsonNode.Parse(Assert.Single(dropLines, l => l.StartsWith("{\"id\":", StringComparison.Ordinal)))!;
        Assert.Equal(id, composition["id"]!.GetValue<string>());
        Assert.Equal("Completed", composition["status"]!.GetValue<string>());
        Assert.Equal(["lora_0", "lora_2"], composition["result"]!["modules"]!.AsArray().Select(m => m!.GetValue<string>()));
        var dropRecord = JsonNode.Parse(dropLines[^1])!;
        Assert.Equal("cmaes", dropRecord["optimizer"]!.GetValue<string>());
        Assert.Equal(20, dropRecord["budget"]!.GetValue<int>());
        Assert.Equal(5, dropRecord["examples"]!.GetValue<int>());
        Directory.Delete(temp, recursive: true);
    }

    /// <summary>A script's output as its items: each JSON document (possibly over several lines), else each line.</summary>
    private static List<string> Outputs(string text)
    {
        var items = new List<string>();
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var at = 0;
        while (at < bytes.Length)
        {
            if (char.IsWhiteSpace((char)bytes[at])) { at++; continue; }
            if (bytes[at] is (byte)'{' or (byte)'[')
            {
                var reader = new System.Text.Json.Utf8JsonReader(bytes.AsSpan(at), new System.Text.Json.JsonReaderOptions { AllowMultipleValues = true });
                reader.Read();
                reader.Skip();
                var length = (int)reader.BytesConsumed;
                items.Add(System.Text.Encoding.UTF8.GetString(bytes, at, length));
                at += length;
                continue;
            }
            var end = Array.IndexOf(bytes, (byte)'\n', at);
            if (end < 0) end = bytes.Length;
            items.Add(System.Text.Encoding.UTF8.GetString(bytes, at, end - at).Trim());
            at = end;
        }
        return items;
    }

    /// <summary>Runs examples/walkthrough/{script} from the repository root with bash -e; its output goes to the test log.</summary>
    private async Task<string> RunAsync(string script, FunctionsServer server, string temp)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoRoot() };
        info.ArgumentList.Add("-e");
        info.ArgumentList.Add(Path.Combine("examples", "walkthrough", script));
        info.Environment["LORAHUB_API"] = server.Api;
        info.Environment["LORAHUB_KEY"] = Key;
        info.Environment["LORAHUB_HUB"] = hub.Azurite.ConnectionString;
        info.Environment["LORAHUB"] = $"dotnet {Metadata("LorahubCli")}";
        info.Environment["LORAHUB_CACHE"] = Path.Combine(temp, "cache");
        info.Environment["TMPDIR"] = temp;
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
        {
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{script} did not finish in 3 minutes:\n{await stdout}\n{await stderr}");
            }
        }
        output.WriteLine($"$ bash examples/walkthrough/{script}   ({watch.Elapsed.TotalSeconds:F1} s, exit {process.ExitCode})\n{await stdout}{await stderr}");
        Assert.True(process.ExitCode == 0, $"{script} failed ({process.ExitCode}):\n{await stdout}\n{await stderr}");
        return await stdout;
    }
}
