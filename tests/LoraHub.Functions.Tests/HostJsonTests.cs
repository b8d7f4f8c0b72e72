using System.Text.Json.Nodes;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// host.json's Durable storage settings bound how long a crashed host's compositions wait after a restart
/// (docs/functions-app.md, "Recovery after a crash"): messages a dead host had dequeued come back when their
/// visibility timeout runs out, and an idle queue is polled at least every maxQueuePollingInterval.
/// </summary>
public sealed class HostJsonTests
{
    private static JsonNode HostJson()
    {
        // The copy next to functions.metadata is what the host reads; it must be the repository's.
        var output = Path.Combine(typeof(HostJsonTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "FunctionsOutput").Value!, "host.json");
        Assert.True(File.Exists(output), $"{output} exists");
        return JsonNode.Parse(File.ReadAllText(output))!;
    }

    private static TimeSpan Span(JsonNode provider, string name) => TimeSpan.Parse(provider[name]!.GetValue<string>());

    [Fact]
    public void A_crashed_composition_resumes_within_60_seconds_and_a_running_activity_is_not_run_twice()
    {
        var durable = HostJson()["extensions"]!["durableTask"]!;
        Assert.Equal("LoraHub", durable["hubName"]!.GetValue<string>());
        Assert.False(durable["extendedSessionsEnabled"]!.GetValue<bool>());
        var provider = durable["storageProvider"]!;
        Assert.Equal(4, provider["partitionCount"]!.GetValue<int>());
        var control = Span(provider, "controlQueueVisibilityTimeout");
        var workItem = Span(provider, "workItemQueueVisibilityTimeout");
        var polling = Span(provider, "maxQueuePollingInterval");
        Assert.Equal(TimeSpan.FromSeconds(45), control);
        Assert.Equal(TimeSpan.FromSeconds(45), workItem);
        Assert.Equal(TimeSpan.FromSeconds(5), polling);

        // Worst case after a crash: a message dequeued (or renewed) just before it waits out its visibility timeout,
        // then the next poll; the dead host's partition leases (30 s) expire meanwhile. Measured from the crash, so a
        // restart at any time after it resumes sooner. The defaults (5 min, 5 min, 30 s) gave the 5 minutes seen.
        Assert.True(Max(control, workItem) + polling <= TimeSpan.FromSeconds(60), "recovery within 60 s");
        // A running activity's message is renewed when less than 30 s of its visibility are left, checked every 5 s
        // (DurableTask.Core's TaskActivityDispatcher): the timeout must leave room for that check and the renewal
        // call, or a live activity's message reappears and a second worker runs it again.
        Assert.True(workItem >= TimeSpan.FromSeconds(30 + 5 + 10), "a live activity's lock is renewed in time");
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}
