using LoraHub.Functions.Activities;
using LoraHub.Functions.Engine;
using LoraHub.Functions.Requests;
using LoraHub.Functions.Triggers;
using LoraHub.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using TorchSharp;

namespace LoraHub.Functions;

/// <summary>The app's services, shared by Program and the tests (which host the same classes in-process).</summary>
public static class LoraHubServices
{
    public static IServiceCollection AddLoraHub(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<LoraHubOptions>().Bind(configuration.GetSection(LoraHubOptions.Section));
        services.TryAddSingleton<IHubStore>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<LoraHubOptions>>().Value;
            // Keyless in Azure: LoraHub__Storage__blobServiceUri (+ __credential, __clientId), the same settings the
            // blob trigger's connection reads; else LoraHub__Storage is a connection string, a service URL or a folder.
            var storage = configuration.GetSection(LoraHubOptions.Section).GetSection(nameof(LoraHubOptions.Storage));
            return storage.Value is null && HubConnection.FromSettings(key => storage[key]) is { } identity
                ? HubStoreFactory.Create(identity, o.ResolvedCacheRoot)
                : HubStoreFactory.Create(o.Storage, o.ResolvedCacheRoot);
        });
        services.TryAddSingleton<IFaultInjector, NoFaults>();
        services.AddSingleton<EngineCache>();
        services.AddSingleton<LocalCandidateEvaluator>();
        services.TryAddSingleton<ICandidateEvaluator>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<LoraHubOptions>>();
            if (string.IsNullOrWhiteSpace(o.Value.EvaluatorUrl)) return sp.GetRequiredService<LocalCandidateEvaluator>();
            var http = new HttpClient { Timeout = TimeSpan.FromSeconds(Math.Max(1, o.Value.EvaluatorTimeoutSeconds)) };
            return new RemoteCandidateEvaluator(http, o);
        });
        services.AddSingleton<AdapterGenerator>();
        services.AddSingleton<CompositionStarter>();
        services.AddSingleton<ExampleIntake>();

        // Activities and trigger classes: the worker builds them per invocation with these services.
        services.AddTransient<ListPool>();
        services.AddTransient<SelectModules>();
        services.AddTransient<EvaluateCandidates>();
        services.AddTransient<MaterializeAdapter>();
        services.AddTransient<ExamplesBlobTrigger>();
        services.AddTransient<CompositionsApi>();
        services.AddTransient<HubApi>();
        services.AddTransient<EvaluatorApi>();
        services.AddTransient<WatchApi>();
        return services;
    }

    /// <summary>Torch thread settings from LoraHub:TorchThreads (0: TorchSharp's default, one per core).</summary>
    public static void ApplyTorchSettings(LoraHubOptions options)
    {
        if (options.TorchThreads > 0) torch.set_num_threads(options.TorchThreads);
    }
}
