namespace LoraHub.Functions.Engine;

/// <summary>
/// Called by every activity before it works. The app registers <see cref="NoFaults"/>; tests register one that
/// throws, to show that the orchestrator's retry policy carries a composition over a failed activity.
/// </summary>
public interface IFaultInjector
{
    void BeforeActivity(string activity);
}

public sealed class NoFaults : IFaultInjector
{
    public void BeforeActivity(string activity) { }
}
