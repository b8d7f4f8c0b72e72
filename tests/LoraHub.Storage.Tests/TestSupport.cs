using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using Azure.Core;
using Azure.Core.Pipeline;

namespace LoraHub.Storage.Tests;

/// <summary>A fresh folder under the system temp folder, removed when disposed.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("lorahub-storage-test-").FullName;

    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>Writes files (relative path → text) into a new sub folder and returns it.</summary>
    public string Folder(string name, params (string Path, string Text)[] files)
    {
        var dir = this[name];
        Directory.CreateDirectory(dir);
        foreach (var (path, text) in files)
        {
            var full = System.IO.Path.Combine(dir, path);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
            File.WriteAllText(full, text);
        }
        return dir;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Counts the requests a blob client sends; downloads are GETs of a blob (no "comp=" query).</summary>
public sealed class CountingPolicy : HttpPipelineSynchronousPolicy
{
    private int _requests;
    private int _downloads;

    public int Requests => Volatile.Read(ref _requests);
    public int Downloads => Volatile.Read(ref _downloads);

    public void Reset()
    {
        Interlocked.Exchange(ref _requests, 0);
        Interlocked.Exchange(ref _downloads, 0);
    }

    /// <summary>Runs before a download is sent (e.g. to change the hub behind the store's back).</summary>
    public Action<HttpMessage>? BeforeDownload { get; set; }

    public override void OnSendingRequest(HttpMessage message)
    {
        Interlocked.Increment(ref _requests);
        if (message.Request.Method == RequestMethod.Get && !message.Request.Uri.Query.Contains("comp=", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _downloads);
            BeforeDownload?.Invoke(message);
        }
    }
}

public static class Fixtures
{
    public static string Root =>
        typeof(Fixtures).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "Fixtures").Value!;

    public static string TinyT5 => System.IO.Path.Combine(Root, "t5", "tiny-t5");

    public static string Adapters => System.IO.Path.Combine(Root, "t5", "adapters");

    public static string Adapter(int i) => System.IO.Path.Combine(Adapters, $"lora_{i}");
}

public static class Names
{
    /// <summary>A hub name no other test uses (tests share one Azurite).</summary>
    public static string Unique(string stem) => $"{stem}-{Guid.NewGuid():N}"[..(stem.Length + 13)];
}

/// <summary>Runs the real `lorahub` program (the CLI project's build output) in its own process.</summary>
public static class CliProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public JsonObject Json => JsonNode.Parse(Stdout)!.AsObject();
        public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
    }

    public static string Dll =>
        typeof(CliProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "LorahubCli").Value!;

    public static Result Run(params string[] args)
    {
        if (!File.Exists(Dll)) throw new FileNotFoundException($"the lorahub CLI is not built at {Dll} (build the solution first)", Dll);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, StandardOutputEncoding = Encoding.UTF8 };
        info.ArgumentList.Add(Dll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["LORAHUB_CACHE"] = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lorahub-storage-test-cache");
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3))) { process.Kill(true); throw new TimeoutException("lorahub did not finish"); }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
