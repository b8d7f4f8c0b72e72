using System.Diagnostics;
using System.Reflection;
using Xunit;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// Runs the real `lorahub` program on a hostile input: in this process (its entry point, stdout and stderr captured;
/// one run at a time) for the cases about messages, or as a child process whose peak resident memory is sampled for
/// the cases about memory. Either way the result says what a user would see: exit code, stdout, stderr, time taken.
/// </summary>
public static class HostileCli
{
    /// <summary>What a run showed. Cpu is the child's user + system time (its last sample), null for in-process runs.</summary>
    public sealed record Outcome(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, long PeakRssBytes = 0, TimeSpan? Cpu = null)
    {
        public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        public override string ToString() => $"exit {ExitCode} after {Elapsed.TotalSeconds:F2} s (cpu {Cpu?.TotalSeconds:F2} s), peak RSS {PeakRssBytes >> 20} MiB\nstderr: {Stderr}\nstdout: {(Stdout.Length > 400 ? Stdout[..400] : Stdout)}";
    }

    private static readonly object Gate = new();
    private static readonly MethodInfo EntryPoint = typeof(LoraHub.Cli.UsageException).Assembly.EntryPoint!;

    /// <summary>Runs the CLI's Main here. Console is process-wide, so runs are serialised.</summary>
    public static Outcome InProcess(params string[] args)
    {
        lock (Gate)
        {
            var (oldOut, oldErr) = (Console.Out, Console.Error);
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            Console.SetOut(stdout);
            Console.SetError(stderr);
            var clock = Stopwatch.StartNew();
            var cpuBefore = ReadCpu("/proc/thread-self/stat");
            int code;
            try
            {
                code = (int)EntryPoint.Invoke(null, [args])!;
            }
            catch (TargetInvocationException e)
            {
                // An exception escaping Main is the crash the hostile suite exists to rule out: report it as such.
                code = int.MinValue;
                stderr.WriteLine($"UNHANDLED {e.InnerException}");
            }
            finally
            {
                Console.SetOut(oldOut);
                Console.SetError(oldErr);
            }
            // The CPU time of this thread (which ran Main): on a shared machine, wall time also measures the other jobs.
            var cpu = ReadCpu("/proc/thread-self/stat") - cpuBefore;
            return new Outcome(code, stdout.ToString(), stderr.ToString(), clock.Elapsed, Cpu: cpu);
        }
    }

    /// <summary>
    /// Runs lorahub as a child process, sampling its VmHWM (peak resident set) every few milliseconds until it exits;
    /// the last sample before exit is the peak up to a few ms of growth. Killed after the timeout.
    /// </summary>
    public static Outcome Child(string[] args, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lorahub.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) info.Environment[k] = v;
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        long peak = 0;
        var cpu = TimeSpan.Zero;
        var status = $"/proc/{process.Id}/status";
        var stat = $"/proc/{process.Id}/stat";
        while (!process.WaitForExit(5))
        {
            peak = Math.Max(peak, ReadHwm(status));
            cpu = ReadCpu(stat) ?? cpu;
            if (clock.Elapsed > timeout)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                return new Outcome(int.MinValue, stdout.Result, $"KILLED after {timeout.TotalSeconds} s\n{stderr.Result}", clock.Elapsed, peak, cpu);
            }
        }
        return new Outcome(process.ExitCode, stdout.Result, stderr.Result, clock.Elapsed, peak, cpu);
    }

    /// <summary>utime + stime of /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s).</summary>
    private static TimeSpan? ReadCpu(string statPath)
    {
        try
        {
            var text = File.ReadAllText(statPath);
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            // fields[0] is field 3 (state): utime is field 14, stime field 15.
            return TimeSpan.FromSeconds((long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    private static long ReadHwm(string statusPath)
    {
        try
        {
            foreach (var line in File.ReadLines(statusPath))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0]) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // exited between WaitForExit and the read
        }
        return 0;
    }

    /// <summary>
    /// The contract for a refused input: the expected exit code, exactly one line on stderr that starts "lorahub: error:",
    /// names the file (or folder) and says the cause; under 5 s; nothing on stdout.
    /// </summary>
    public static void AssertClearError(Outcome o, int exitCode, string names, string cause)
    {
        Assert.True(o.ExitCode == exitCode, $"expected exit {exitCode}: {o}");
        var lines = o.StderrLines;
        Assert.True(lines.Length == 1, $"expected one stderr line: {o}");
        Assert.StartsWith("lorahub: error: ", lines[0]);
        Assert.True(lines[0].Contains(names, StringComparison.Ordinal), $"the message does not name '{names}': {lines[0]}");
        Assert.True(lines[0].Contains(cause, StringComparison.OrdinalIgnoreCase), $"the message does not say '{cause}': {lines[0]}");
        // CPU time is what the input cost (wall time on this shared machine, at load 50 on 2 cores, measures the other
        // jobs too); wall time gets a loose sanity bound.
        var spent = o.Cpu ?? o.Elapsed;
        Assert.True(spent < TimeSpan.FromSeconds(5), $"took {spent.TotalSeconds:F1} s of CPU: {o}");
        Assert.True(o.Elapsed < TimeSpan.FromSeconds(60), $"took {o.Elapsed.TotalSeconds:F1} s: {o}");
        Assert.True(o.Stdout.Trim().Length == 0, $"wrote to stdout: {o}");
    }
}
