using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LoraHub.Functions.Telemetry;

/// <summary>
/// Where the app's logs go: to Application Insights straight from the worker when
/// APPLICATIONINSIGHTS_CONNECTION_STRING is set (Azure: infra/main.bicep sets it), and to the console always
/// (locally the host, Core Tools or a container shows it). Composition rounds are Information lines of
/// <see cref="CompositionTelemetry.Category"/>.
/// </summary>
public static class LoggingSetup
{
    public const string ConnectionSetting = "APPLICATIONINSIGHTS_CONNECTION_STRING";

    public static FunctionsApplicationBuilder AddLoraHubLogging(this FunctionsApplicationBuilder builder)
    {
        if (!string.IsNullOrWhiteSpace(builder.Configuration[ConnectionSetting]))
        {
            builder.Services.AddApplicationInsightsTelemetryWorkerService();
            builder.Services.ConfigureFunctionsApplicationInsights();
            // The Application Insights provider keeps only warnings by default: let the composition's lines through.
            builder.Logging.Services.Configure<LoggerFilterOptions>(options =>
            {
                var rule = options.Rules.FirstOrDefault(r => r.ProviderName == "Microsoft.Extensions.Logging.ApplicationInsights.ApplicationInsightsLoggerProvider");
                if (rule is not null) options.Rules.Remove(rule);
            });
        }
        builder.Logging.AddFilter(CompositionTelemetry.Category, LogLevel.Information);
        return builder;
    }
}
