using System.Diagnostics;
using Xunit;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>An unusable --out is refused by compose and train before any model is loaded: one line, exit 1, nothing touched.</summary>
public sealed class OutTargetCliTests : IDisposable
{
    private readonly Fixtures.TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string, string, string> Cases()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var verb in new[] { "compose", "train" })
        {
            data.Add(verb, "file", "is a file, not a folder");
            data.Add(verb, "under-file", "is a file, not a folder");
            data.Add(verb, "occupied", "use --force");
            data.Add(verb, "dangling-link", "does not lead to a folder");
            data.Add(verb, "fifo", "special file");
        }
        data.Add("compose", "holds-composition", "already holds a composition");
        data.Add("train", "holds-module", "already holds a LoRA module");
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void An_unusable_out_is_refused_before_the_work_starts(string verb, string kind, string expected)
    {
        var target = _dir["out"];
        switch (kind)
        {
            case "file": File.WriteAllText(target, "precious"); break;
            case "under-file": File.WriteAllText(_dir["f"], "precious"); target = Path.Combine(_dir["f"], "out"); break;
            case "occupied": Directory.CreateDirectory(target); File.WriteAllText(Path.Combine(target, "notes.txt"), "precious"); break;
            case "dangling-link": File.CreateSymbolicLink(target, _dir["nowhere"]); break;
            case "fifo": Process.Start("mkfifo", target)!.WaitForExit(); break;
            case "holds-composition": Directory.CreateDirectory(target); File.WriteAllText(Path.Combine(target, "lorahub.json"), "{}"); break;
            case "holds-module": Directory.CreateDirectory(target); File.WriteAllText(Path.Combine(target, "adapter_config.json"), "{}"); break;
        }
        var before = Directory.GetFileSystemEntries(_dir.Path, "*", SearchOption.AllDirectories).Order().ToList();
        // The model, modules and examples do not exist: an error about --out proves it was checked before any of them.
        var r = verb == "compose"
            ? CliProcess.Run("compose", "--base", _dir["no-model"], "--modules", _dir["no-pool"], "--examples", _dir["no-examples.jsonl"], "--out", target, "--budget", "2")
            : CliProcess.Run("train", "--base", _dir["no-model"], "--data", _dir["no-examples.jsonl"], "--out", target, "--steps", "2");
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stderr}");
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("lorahub: error: --out: ", line);
        Assert.Contains(expected, line);
        Assert.DoesNotContain("composing", r.Stderr);
        Assert.Equal("", r.Stdout);
        Assert.Equal(before, Directory.GetFileSystemEntries(_dir.Path, "*", SearchOption.AllDirectories).Order().ToList());
        if (kind is "file" or "under-file") Assert.Equal("precious", File.ReadAllText(kind == "file" ? target : _dir["f"]));
    }
}
