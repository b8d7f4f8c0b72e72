using Microsoft.Extensions.Logging;

namespace LoraHub.Functions.Telemetry;

/// <summary>
/// The operator's view of a composition: one structured line per search round and one at the end, with named
/// fields (InstanceId, Evaluations, BestObjective, Seconds) that Application Insights keeps as custom dimensions
/// (query: traces | where customDimensions.EventName == "CompositionRound"). Call with the orchestration's
/// replay-safe logger (context.CreateReplaySafeLogger), so a replay does not log a round twice.
/// </summary>
public static partial class CompositionTelemetry
{
    public const string Category = "LoraHub.Composition";

    [LoggerMessage(EventId = 1501, EventName = "CompositionRound", Level = LogLevel.Information,
        Message = "composition {InstanceId}: {Evaluations} evaluations, best objective {BestObjective}, {Seconds:F1} s")]
    public static partial void Round(ILogger logger, string instanceId, int evaluations, double? bestObjective, double seconds);

    [LoggerMessage(EventId = 1502, EventName = "CompositionEnded", Level = LogLevel.Information,
        Message = "composition {InstanceId} ended ({Outcome}): {Evaluations} evaluations, best objective {BestObjective}, {Seconds:F1} s")]
    public static partial void Ended(ILogger logger, string instanceId, string outcome, int evaluations, double? bestObjective, double seconds);
}
