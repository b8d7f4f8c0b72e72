// Shared by the projects that need Azure Storage (tests, and the durable-overhead bench): include it by link
//   <Compile Include="..\Shared\AzuriteFixture.cs" Link="Shared\AzuriteFixture.cs" />
// It does not depend on xunit; test projects that want one Azurite per collection also link AzuriteCollection.cs
// and put the test classes in [Collection(AzuriteCollection.Name)] to get the fixture in their constructor.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace LoraHub.Testing;

/// <summary>
/// A real Azurite (npm, pinned by package-lock.json) of this test run: its own process on free ports with data in a
/// temporary folder, stopped and removed at the end. When Azurite is not installed yet, the fixture runs
/// scripts/azurite.sh install; when that fails, it fails with the reason: tests that need storage never skip silently.
/// </summary>
public sealed class AzuriteFixture : IDisposable
{
    /// <summary>The well-known development account of the emulator (public, documented by Microsoft).</summary>
    public const string AccountName = "devstoreaccount1";
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    public AzuriteFixture()
    {
        RepoRoot = FindRepoRoot();
        var script = Path.Combine(RepoRoot, "scripts", "azurite.sh");
        EnsureInstalled(script);
        Location = Directory.CreateTempSubdirectory("lorahub-azurite-").FullName;

        Exception? last = null;
        for (var attempt = 0; attempt < 3; attempt++) // a free port can be taken between choosing and binding it
        {
            (BlobPort, QueuePort, TablePort) = (FreePort(), FreePort(), FreePort());
            _process = Start(script);
            try
            {
                WaitUntilAnswering();
                return;
            }
            catch (Exception e)
            {
                last = e;
                Stop();
            }
        }
        TryDeleteDirectory(Location);
        throw new InvalidOperationException($"Azurite did not start: {last?.Message}", last);
    }

    public string RepoRoot { get; }

    /// <summary>Azurite's data folder (temporary, deleted at the end).</summary>
    public string Location { get; }

    public int BlobPort { get; private set; }
    public int QueuePort { get; private set; }
    public int TablePort { get; private set; }

    public string BlobEndpoint => $"http://127.0.0.1:{BlobPort}/{AccountName}";
    public string QueueEndpoint => $"http://127.0.0.1:{QueuePort}/{AccountName}";
    public string TableEndpoint => $"http://127.0.0.1:{TablePort}/{AccountName}";

    /// <summary>The connection string of this Azurite (what AzureWebJobsStorage or a hub location takes).</summary>
    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};" +
        $"BlobEndpoint={BlobEndpoint};QueueEndpoint={QueueEndpoint};TableEndpoint={TableEndpoint};";

    /// <summary>What Azurite printed (for failure messages).</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public void Dispose()
    {
        Stop();
        TryDeleteDirectory(Location);
    }

    private Process Start(string script)
    {
        var info = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = RepoRoot,
        };
        // "child": the script stops Azurite when this test process is gone, even if it is killed before Dispose.
        string[] args =
        [
            script, "child", Environment.ProcessId.ToString(),
            "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--location", Location,
            "--blobHost", "127.0.0.1", "--blobPort", BlobPort.ToString(),
            "--queueHost", "127.0.0.1", "--queuePort", QueuePort.ToString(),
            "--tableHost", "127.0.0.1", "--tablePort", TablePort.ToString(),
        ];
        foreach (var a in args) info.ArgumentList.Add(a);
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    private void WaitUntilAnswering()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var watch = Stopwatch.StartNew();
        var ports = new[] { BlobPort, QueuePort, TablePort };
        while (true)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"Azurite exited with code {_process.ExitCode}: {Output.Trim()}");
            if (ports.All(Listening))
            {
                try
                {
                    // Any HTTP answer (403 without a signature) means the blob service is serving.
                    using var response = http.GetAsync($"{BlobEndpoint}?comp=list").GetAwaiter().GetResult();
                    if (response.StatusCode != 0) return;
                }
                catch (HttpRequestException)
                {
                }
            }
            if (watch.Elapsed > StartTimeout)
                throw new TimeoutException($"Azurite did not answer on ports {BlobPort}/{QueuePort}/{TablePort} within {StartTimeout.TotalSeconds} s: {Output.Trim()}");
            Thread.Sleep(100);
        }
    }

    private static bool Listening(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private void Stop()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // never started or already gone
        }
        _process.Dispose();
    }

    private static void EnsureInstalled(string script)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(script);
        info.ArgumentList.Add("install");
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"cannot run {script} install (bash is needed): {e.Message}", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{script} install did not finish within 10 minutes");
            }
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"Azurite is not installed and `{script} install` failed (exit {process.ExitCode}); needs Node 20+ and npm with the npm registry reachable: {stderr.Result.Trim()} {stdout.Result.Trim()}");
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LoraHub.Functions.sln")) && File.Exists(Path.Combine(dir.FullName, "scripts", "azurite.sh")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"cannot find the repository (LoraHub.Functions.sln with scripts/azurite.sh) above {AppContext.BaseDirectory}");
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
