using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;

namespace LoraHub.Functions.Tests;

/// <summary>
/// The watch page in a real browser: headless Chromium (Debian's package, installed by scripts/browser.sh, which
/// scripts/test.sh runs) driven by playwright-core (npm, pinned) through ui/watch-page.cjs, against the app served
/// over HTTP with function keys enforced (the page forwards ?code=). No browser is a failure, never a skip.
/// Screenshot: TestResults/ui.png at the repository root.
/// </summary>
[Collection(FunctionsCollection.Name)]
public sealed class UiPageTests(FunctionsHub hub, ITestOutputHelper output)
{
    private const string Key = "ui-key";
    private const int Budget = 60;

    [Fact]
    public async Task A_composition_appears_its_curve_fills_in_and_it_completes_with_weights_and_report()
    {
        var root = WalkthroughTests.RepoRoot();
        var chromium = Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } c ? c : "/usr/bin/chromium";
        Assert.True(File.Exists(chromium), $"{chromium} is missing: run scripts/browser.sh install (scripts/test.sh does)");
        var tools = Path.Combine(root, ".tools", "azurite", "node_modules");
        Assert.True(Directory.Exists(Path.Combine(tools, "playwright-core")), $"playwright-core is missing in {tools}: run scripts/browser.sh install");

        await using var server = await FunctionsServer.StartAsync(hub, Key);
        var screenshot = Path.Combine(root, "TestResults", "ui.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        File.Delete(screenshot);
        var info = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(root, "tests", "LoraHub.Functions.Tests", "ui", "watch-page.cjs"));
        info.Environment["LORAHUB_UI"] = $"{server.Api}/ui?code={Key}";
        info.Environment["CHROMIUM"] = chromium;
        info.Environment["NODE_TOOLS"] = tools;
        info.Environment["SCREENSHOT"] = screenshot;
        info.Environment["MODULES"] = "3";
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));

        // The page is open before the composition starts, so it sees it run.
        var ready = await process.StandardOutput.ReadLineAsync(timeout.Token);
        Assert.True(ready == "ready", $"the page did not load: {ready}\n{(process.HasExited ? await stderr : "")}");
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Add("x-functions-key", Key);
        var body = new JsonObject
        {
            ["task"] = "watched",
            ["examples"] = new JsonArray(FunctionsHub.Examples.Select(e => (JsonNode)new JsonObject { ["input"] = e.Input, ["output"] = e.Output }).ToArray()),
            ["base"] = FunctionsHub.BaseModel, ["modules"] = new JsonArray("lora_0", "lora_1", "lora_2"),
            ["budget"] = Budget, ["optimizer"] = "cobyla", ["chunk_size"] = 1, ["seed"] = 7,
        };
        // Each evaluation takes at least 150 ms, as with a real model, so the page sees the curve fill in on a fast machine too.
        hub.Faults.SlowDown(nameof(Activities.EvaluateCandidates), TimeSpan.FromMilliseconds(150));
        using var restore = new Restore(() => hub.Faults.SlowDown(nameof(Activities.EvaluateCandidates), TimeSpan.Zero));
        var started = await (await http.PostAsJsonAsync(server.Api + "/compositions", body)).Content.ReadFromJsonAsync<JsonObject>();
        var id = started!["id"]!.GetValue<string>();
        await process.StandardInput.WriteLineAsync(id);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the browser script did not finish in 4 minutes:\n{await stdout}\n{await stderr}");
        }
        output.WriteLine(await stdout + await stderr);
        Assert.True(process.ExitCode == 0, $"the browser did not see the composition through ({process.ExitCode}):\n{await stdout}\n{await stderr}");

        var saw = JsonNode.Parse((await stdout).Trim().Split('\n')[^1])!;
        var done = await hub.WaitAsync(id);
        var outcome = done.ReadOutputAs<Contracts.CompositionOutcome>()!;
        Assert.StartsWith("Completed", saw["status"]!.GetValue<string>());
        Assert.Contains($"{outcome.BestObjective:F4}", saw["status"]!.GetValue<string>());
        Assert.Contains(id, saw["rowText"]!.GetValue<string>());
        // (COBYLA may stop before the budget when its trust region has shrunk.)
        Assert.Contains($"{outcome.Evaluations}/{Budget}", saw["rowText"]!.GetValue<string>());
        Assert.Equal(outcome.Evaluations, saw["points"]!.GetValue<int>());
        Assert.True(saw["dotPixels"]!.GetValue<int>() > 30, "the chart's dots are drawn");
        Assert.True(saw["bestLinePixels"]!.GetValue<int>() > 30, "the best-so-far line is drawn");
        // It filled in: the page showed the curve part-drawn at least once before the end.
        Assert.Contains(saw["pointsWhileRunning"]!.AsArray(), p => p!.GetValue<int>() > 0 && p.GetValue<int>() < outcome.Evaluations);
        var weights = saw["weights"]!.AsArray();
        Assert.Equal(outcome.Modules, weights.Select(w => w!["module"]!.GetValue<string>()));
        for (var i = 0; i < weights.Count; i++) Assert.Equal(outcome.Weights[i], weights[i]!["weight"]!.GetValue<double>(), 4);
        Assert.True(saw["report"]!["width"]!.GetValue<int>() > 100, "report.png is shown");
        Assert.Empty(saw["pageErrors"]!.AsArray());
        Assert.Equal("", saw["error"]!.GetValue<string>());
        Assert.True(File.Exists(screenshot) && new FileInfo(screenshot).Length > 10_000, $"{screenshot} saved");
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
