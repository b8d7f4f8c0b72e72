using System.Diagnostics;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using Xunit;
using Xunit.Abstractions;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// Real `lorahub compose` processes racing for one --out, and killed (SIGKILL) at random moments of a --force replace.
/// The default run does a few tries; LORAHUB_SLOW_TESTS=1 does the full counts (20 races of 8, 40 kills).
/// </summary>
public sealed class ComposeRaceTests(ITestOutputHelper output) : IDisposable
{
    private static readonly bool Slow = Environment.GetEnvironmentVariable("LORAHUB_SLOW_TESTS") == "1";
    private readonly Fixtures.TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Examples()
    {
        var path = _dir["task.jsonl"];
        if (!File.Exists(path))
        {
            var lines = Fixtures.Golden["cases"]!.AsArray().Select(c => new JsonObject
            {
                ["input"] = c!["input_text"]!.GetValue<string>(),
                ["output"] = c["target_text"]!.GetValue<string>(),
            }.ToJsonString());
            File.WriteAllLines(path, lines);
        }
        return path;
    }

    private ProcessStartInfo Compose(string outDir, int seed, bool force, int stepDelayMs = 0)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lorahub.dll"));
        foreach (var a in new[] { "compose", "--base", Fixtures.TinyT5, "--modules", Path.Combine(Fixtures.T5, "adapters"), "--examples", Examples(),
                     "--out", outDir, "--budget", "2", "--seed", seed.ToString(), "--format", "json" })
            info.ArgumentList.Add(a);
        if (force) info.ArgumentList.Add("--force");
        info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        info.Environment["OMP_NUM_THREADS"] = "1";
        if (stepDelayMs > 0) info.Environment["LORAHUB_FAULT_PUBLISH_STEP_MS"] = stepDelayMs.ToString();
        return info;
    }

    private static (int Code, string Stdout, string Stderr) Finish(Process p)
    {
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); throw new TimeoutException("compose did not finish"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The folder holds one whole composition: the record parses and PEFT's two files load as a module.</summary>
    private static JsonObject AssertLoadable(string dir)
    {
        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "lorahub.json")))!.AsObject();
        using var module = LoraModule.Load(dir);
        Assert.NotEmpty(module.Layers);
        Assert.True(File.Exists(Path.Combine(dir, "report.png")));
        return record;
    }

    [Fact]
    public async Task Eight_composes_racing_for_one_out_end_with_one_composition_and_seven_clear_errors()
    {
        const int writers = 8;
        var tries = Slow ? 20 : 2;
        var clock = Stopwatch.StartNew();
        for (var attempt = 0; attempt < tries; attempt++)
        {
            var outDir = _dir[$"out-{attempt}"];
            var processes = Enumerable.Range(0, writers).Select(i => Process.Start(Compose(outDir, seed: i, force: false))!).ToList();
            var results = await Task.WhenAll(processes.Select(p => Task.Run(() => Finish(p))));
            foreach (var p in processes) p.Dispose();
            var winners = results.Where(r => r.Code == 0).ToList();
            var winner = Assert.Single(winners);
            var losers = results.Where(r => r.Code != 0).ToList();
            Assert.Equal(writers - 1, losers.Count);
            foreach (var loser in losers)
            {
                Assert.Equal(1, loser.Code);
                var line = Assert.Single(loser.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("lorahub: error:"));
                Assert.Contains("already holds a composition", line);
                Assert.Contains("--force", line);
                Assert.DoesNotContain("   at ", loser.Stderr);
                Assert.Equal("", loser.Stdout.Trim());
            }
            var record = AssertLoadable(outDir);
            // The folder is the winner's: its record is the one the winner printed.
            Assert.Equal(JsonNode.Parse(winner.Stdout)!["seed"]!.GetValue<int>(), record["seed"]!.GetValue<int>());
            Assert.Empty(Directory.GetFileSystemEntries(_dir.Path, $".out-{attempt}*"));
        }
        output.WriteLine($"{tries} races of {writers} composes: one winner and {writers - 1} clear errors each, {clock.Elapsed.TotalSeconds:F0} s");
    }

    [Fact]
    public async Task Killing_a_forced_replace_at_random_moments_always_leaves_a_loadable_composition()
    {
        var outDir = _dir["out"];
        var first = Finish(Process.Start(Compose(outDir, seed: 100, force: false))!);
        Assert.True(first.Code == 0, first.Stderr);
        var previous = 100;
        var kills = Slow ? 40 : 6;
        var rng = new Random(13);
        const int stepMs = 150; // each of the publish's ~5 steps is widened to 150 ms so random kills land inside them
        var landed = new Dictionary<string, int>();
        for (var k = 0; k < kills; k++)
        {
            var seed = 200 + k;
            using var p = Process.Start(Compose(outDir, seed, force: true, stepMs))!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            string? lastStep = null;
            var killAt = rng.NextDouble() * stepMs * 6;
            var locked = new ManualResetEventSlim();
            var reader = Task.Run(() =>
            {
                while (p.StandardError.ReadLine() is { } line)
                {
                    if (!line.StartsWith("lorahub: publish step ")) continue;
                    lastStep = line["lorahub: publish step ".Length..];
                    if (lastStep == "locked") locked.Set();
                }
            });
            Assert.True(locked.Wait(TimeSpan.FromMinutes(3)), "the compose never reached the publish");
            Thread.Sleep(TimeSpan.FromMilliseconds(killAt));
            try { p.Kill(); } catch (InvalidOperationException) { } // SIGKILL (no finally block runs), unless it already finished
            p.WaitForExit();
            await reader.WaitAsync(TimeSpan.FromSeconds(10));
            landed[lastStep ?? "?"] = landed.GetValueOrDefault(lastStep ?? "?") + 1;
            var record = AssertLoadable(outDir);
            var present = record["seed"]!.GetValue<int>();
            Assert.True(present == seed || present == previous, $"--out holds seed {present}: neither the old composition ({previous}) nor the new one ({seed})");
            if (lastStep is "exchanged" or "done" || p.ExitCode == 0) Assert.Equal(seed, present);
            if (lastStep is "locked" && p.ExitCode != 0) Assert.Equal(previous, present); // "staged" is printed before the exchange: either
            previous = present;
        }
        // The next run cleans what the killed ones left next to --out.
        var last = Finish(Process.Start(Compose(outDir, seed: 999, force: true))!);
        Assert.True(last.Code == 0, last.Stderr);
        Assert.Equal(999, AssertLoadable(outDir)["seed"]!.GetValue<int>());
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path, ".out*"));
        output.WriteLine($"{kills} kills; last step reached before the kill: {string.Join(", ", landed.Select(l => $"{l.Key} {l.Value}"))}");
    }
}
