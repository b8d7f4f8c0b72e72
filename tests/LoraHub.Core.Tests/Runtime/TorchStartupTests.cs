using System.Runtime.InteropServices;
using LoraHub.Core.Runtime;
using Xunit;

namespace LoraHub.Core.Tests.Runtime;

public sealed class TorchStartupTests
{
    [Fact]
    public void A_policy_the_user_set_is_kept_and_a_loaded_libtorch_is_reported()
    {
        // The test host has OMP_WAIT_POLICY=PASSIVE (scripts/test.sh) or not; either way set one and check it is kept.
        var saved = Environment.GetEnvironmentVariable(TorchStartup.WaitPolicyVariable);
        try
        {
            Environment.SetEnvironmentVariable(TorchStartup.WaitPolicyVariable, "ACTIVE");
            Assert.Equal("kept OMP_WAIT_POLICY=ACTIVE", TorchStartup.ConfigureThreads());
            Assert.Equal("ACTIVE", Environment.GetEnvironmentVariable(TorchStartup.WaitPolicyVariable));

            Environment.SetEnvironmentVariable(TorchStartup.WaitPolicyVariable, null);
            TorchSharp.torch.zeros(1).Dispose(); // libtorch is loaded now
            Assert.True(TorchStartup.NativeTorchLoaded());
            Assert.StartsWith("too late", TorchStartup.ConfigureThreads());
            Assert.Equal("PASSIVE", Environment.GetEnvironmentVariable(TorchStartup.WaitPolicyVariable));
        }
        finally
        {
            Environment.SetEnvironmentVariable(TorchStartup.WaitPolicyVariable, saved);
        }
    }

    [Fact]
    public void The_variable_reaches_the_native_environment_that_libgomp_reads()
    {
        // .NET's Environment keeps its own copy on Unix; libgomp calls the C library's getenv.
        var saved = Environment.GetEnvironmentVariable(TorchStartup.WaitPolicyVariable);
        try
        {
            Environment.SetEnvironmentVariable(TorchStartup.WaitPolicyVariable, null);
            Assert.Equal(0, unsetenv(TorchStartup.WaitPolicyVariable));
            Assert.Equal(IntPtr.Zero, getenv(TorchStartup.WaitPolicyVariable));
            TorchStartup.ConfigureThreads();
            Assert.Equal("PASSIVE", Marshal.PtrToStringAnsi(getenv(TorchStartup.WaitPolicyVariable)));
        }
        finally
        {
            Environment.SetEnvironmentVariable(TorchStartup.WaitPolicyVariable, saved);
        }
    }

    [DllImport("libc", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern IntPtr getenv(string name);

    [DllImport("libc", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int unsetenv(string name);
}
