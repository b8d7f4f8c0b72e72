using System.Globalization;

namespace LoraHub.Cli;

/// <summary>
/// Test hooks that widen the gaps of the output publish protocol, so kill tests can SIGKILL a run inside each step
/// (tests/LoraHub.Core.Tests/Hostile/PublishKillTests.cs). Off unless LORAHUB_FAULT_PUBLISH_STEP_MS is set.
/// </summary>
internal static class FaultHooks
{
    public const string PublishStepVariable = "LORAHUB_FAULT_PUBLISH_STEP_MS";

    /// <summary>A callback that sleeps LORAHUB_FAULT_PUBLISH_STEP_MS milliseconds at each step (and says which on stderr); null when unset.</summary>
    public static Action<string>? PublishStep()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(PublishStepVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms) || ms <= 0) return null;
        return step =>
        {
            Console.Error.WriteLine($"lorahub: publish step {step}");
            Thread.Sleep(ms);
        };
    }
}
