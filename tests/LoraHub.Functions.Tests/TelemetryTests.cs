using LoraHub.Functions.Contracts;
using Microsoft.DurableTask.Client;
using Xunit;

namespace LoraHub.Functions.Tests;

/// <summary>
/// A composition logs one structured line per search round and one at the end, through the orchestration's
/// replay-safe logger: the orchestrator replays after every activity, so a plain logger would repeat rounds.
/// </summary>
[Collection(FunctionsCollection.Name)]
public sealed class TelemetryTests(FunctionsHub hub)
{
    [Fact]
    public async Task Each_round_logs_one_line_with_evaluations_best_objective_and_seconds_and_the_end_one_more()
    {
        var id = "telemetry-0123456789abcdef";
        var done = await hub.RunAsync(FunctionsHub.Request("telemetry", budget: 6, optimizer: "cobyla"), id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        var outcome = done.ReadOutputAs<CompositionOutcome>()!;

        var lines = hub.Logs.For(id);
        var rounds = lines.Where(l => l.EventName == "CompositionRound").ToList();
        Assert.Equal([1, 2, 3, 4, 5, 6], rounds.Select(r => (int)r.Fields["Evaluations"]!));
        var bests = rounds.Select(r => (double)r.Fields["BestObjective"]!).ToList();
        Assert.Equal(bests.OrderDescending(), bests); // the best so far never rises
        Assert.Equal(outcome.BestObjective, bests[^1], 12);
        var seconds = rounds.Select(r => (double)r.Fields["Seconds"]!).ToList();
        Assert.Equal(seconds.Order(), seconds);
        Assert.All(seconds, s => Assert.InRange(s, 0, 90));
        Assert.Contains(id, rounds[0].Message);

        var end = Assert.Single(lines, l => l.EventName == "CompositionEnded");
        Assert.Equal("completed", end.Fields["Outcome"]);
        Assert.Equal(6, (int)end.Fields["Evaluations"]!);
        Assert.Equal(outcome.BestObjective, (double)end.Fields["BestObjective"]!, 12);
        Assert.Equal(7, lines.Count);

        // The status the watch page draws carries the same evaluations.
        var curve = System.Text.Json.JsonSerializer.Deserialize<CompositionStatus>(done.SerializedCustomStatus!)!.Curve!;
        Assert.Equal([1.0, 2, 3, 4, 5, 6], curve.Select(p => p[0]));
        Assert.Equal(outcome.BestObjective, curve.Min(p => p[1]), 5);
    }

    [Fact]
    public void The_curve_keeps_at_most_200_points_each_the_lowest_of_its_bucket()
    {
        var history = Enumerable.Range(1, 1000).Select(i => new Evaluation(i, [0.0], 1.0, 0, 10 - i % 7 - (i == 777 ? 20 : 0))).ToList();
        var curve = ObjectiveCurve.Of(history);
        Assert.Equal(200, curve.Count);
        Assert.Equal(777, curve.MinBy(p => p[1])![0]);
        Assert.Equal(-10.0, curve.Min(p => p[1]), 9);
        Assert.All(curve.Zip(curve.Skip(1)), pair => Assert.True(pair.First[0] < pair.Second[0]));
        Assert.Equal(40, ObjectiveCurve.Of(history.Take(40).ToList()).Count);
    }
}
