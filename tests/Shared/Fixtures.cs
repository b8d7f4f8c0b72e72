// Shared by the test projects that run models or the CLI: include it by link (see LoraHub.Core.Tests.csproj).
using System.Diagnostics;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;

namespace LoraHub.Testing;

/// <summary>Paths of the committed fixtures (tests/fixtures, copied next to the test assembly).</summary>
public static class Fixtures
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "fixtures");
    public static string T5 => Path.Combine(Root, "t5");
    public static string TinyT5 => Path.Combine(T5, "tiny-t5");
    public static string Adapter(int i) => Path.Combine(T5, "adapters", $"lora_{i}");
    public static JsonObject Golden => JsonNode.Parse(File.ReadAllText(Path.Combine(T5, "golden-visible.json")))!.AsObject();

    /// <summary>A fresh folder under the system temp folder, removed when disposed.</summary>
    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("lorahub-test-").FullName;
        public string this[string name] => System.IO.Path.Combine(Path, name);
        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
        }
    }
}

/// <summary>Runs the real `lorahub` program (built next to the tests) in its own process.</summary>
public static class CliProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public JsonObject Json => JsonNode.Parse(Stdout)!.AsObject();
    }

    public static Result Run(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lorahub.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5))) { process.Kill(true); throw new TimeoutException("lorahub did not finish"); }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>One loaded tiny-t5 and its three adapters, shared by the golden tests.</summary>
public sealed class TinyT5Fixture : IDisposable
{
    public ISeq2SeqModel Model { get; } = ModelLoader.LoadSeq2Seq(Fixtures.TinyT5);
    public IReadOnlyList<LoraModule> Modules { get; } = Enumerable.Range(0, 3).Select(i => LoraModule.Load(Fixtures.Adapter(i))).ToList();
    public ComposedModel Composed { get; }
    public TinyT5Fixture() => Composed = new ComposedModel(Model, Modules);
    public static readonly IReadOnlyDictionary<string, double[]> Mixes = new Dictionary<string, double[]>
    {
        ["lora_0"] = [1, 0, 0], ["lora_1"] = [0, 1, 0], ["lora_2"] = [0, 0, 1], ["lorahub"] = [0.5, -0.3, 1.2],
    };
    public void Use(string mix)
    {
        if (mix == "base") Composed.Clear(); else Composed.SetWeights(Mixes[mix]);
    }
    public void Dispose()
    {
        Composed.Dispose();
        foreach (var m in Modules) m.Dispose();
        Model.Dispose();
    }
}
