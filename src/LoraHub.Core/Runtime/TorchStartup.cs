using System.Runtime.InteropServices;

namespace LoraHub.Core.Runtime;

/// <summary>
/// Process start-up settings for libtorch's OpenMP threads, to be applied before anything touches TorchSharp.
/// libtorch's OpenMP (libgomp on Linux) reads OMP_WAIT_POLICY once, when the native library loads; by default its
/// idle threads spin, and on a machine where another process takes a core every parallel region then waits for a
/// descheduled spinner: a composition took 2 s or 33 s from run to run. PASSIVE makes idle threads sleep.
/// .NET keeps its own copy of the environment on Unix (Environment.SetEnvironmentVariable does not reach the
/// native environ that libgomp reads), so the variable is set with libc's setenv as well.
/// </summary>
public static class TorchStartup
{
    public const string WaitPolicyVariable = "OMP_WAIT_POLICY";

    /// <summary>
    /// Sets OMP_WAIT_POLICY=PASSIVE unless the user set a policy. Call first thing in Main, before any torch call;
    /// returns what was done (for logs): "set", "kept USER-VALUE" or "too late" when libtorch was already loaded.
    /// </summary>
    public static string ConfigureThreads()
    {
        var current = Environment.GetEnvironmentVariable(WaitPolicyVariable);
        if (!string.IsNullOrEmpty(current)) return $"kept {WaitPolicyVariable}={current}";
        Environment.SetEnvironmentVariable(WaitPolicyVariable, "PASSIVE"); // child processes and Windows' runtime
        if (!OperatingSystem.IsWindows()) _ = setenv(WaitPolicyVariable, "PASSIVE", 0);
        return NativeTorchLoaded() ? "too late: libtorch was already loaded" : $"set {WaitPolicyVariable}=PASSIVE";
    }

    /// <summary>Whether libtorch is already mapped into this process (Linux; elsewhere false).</summary>
    public static bool NativeTorchLoaded()
    {
        try
        {
            return OperatingSystem.IsLinux() && File.ReadLines("/proc/self/maps").Any(l => l.Contains("libtorch_cpu", StringComparison.Ordinal) || l.Contains("libgomp", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false;
        }
    }

    [DllImport("libc", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int setenv(string name, string value, int overwrite);
}
