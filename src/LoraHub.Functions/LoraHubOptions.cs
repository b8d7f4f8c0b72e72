namespace LoraHub.Functions;

/// <summary>
/// The app's settings, from the configuration section "LoraHub" (environment variables LoraHub__Storage, ...;
/// in local.settings.json's Values). README "Settings reference" lists them.
/// </summary>
public sealed class LoraHubOptions
{
    public const string Section = "LoraHub";

    /// <summary>
    /// The hub: a blob connection string ("UseDevelopmentStorage=true" for Azurite), a blob service URL (signed in with
    /// DefaultAzureCredential) or a local folder. In Azure the keyless form is the section's children instead:
    /// LoraHub__Storage__blobServiceUri, __credential=managedidentity, __clientId (HubConnection).
    /// </summary>
    public string Storage { get; set; } = "UseDevelopmentStorage=true";

    /// <summary>Where downloaded models and modules are cached (keyed by ETag); default: {temp}/lorahub-cache.</summary>
    public string? CacheRoot { get; set; }

    /// <summary>Base models kept loaded per worker process; the least recently used one is disposed beyond this.</summary>
    public int MaxModels { get; set; } = 2;

    /// <summary>Module compositions (stacked LoRA weights) kept per loaded model.</summary>
    public int MaxCompositionsPerModel { get; set; } = 4;

    /// <summary>Largest examples file (or inline examples) accepted, in bytes.</summary>
    public long MaxExamplesBytes { get; set; } = 1 << 20;

    /// <summary>Largest number of examples accepted.</summary>
    public int MaxExamples { get; set; } = 1000;

    /// <summary>Largest evaluation budget accepted.</summary>
    public int MaxBudget { get; set; } = 1000;

    /// <summary>Score an activity's candidates in one grouped forward pass (worth it on a GPU, slower on a small CPU).</summary>
    public bool BatchCandidates { get; set; }

    /// <summary>Torch intra-op threads; 0 keeps TorchSharp's default (all cores).</summary>
    public int TorchThreads { get; set; }

    /// <summary>"cpu" or "cuda" (needs the image built with TORCH_BACKEND=cuda).</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>
    /// The evaluator app (the same image on GPU containers) that EvaluateCandidates sends its work to, e.g.
    /// https://lorahub-gpu.example.azurecontainerapps.io; empty: evaluate in this process.
    /// </summary>
    public string? EvaluatorUrl { get; set; }

    /// <summary>The evaluator app's function key (sent as x-functions-key).</summary>
    public string? EvaluatorKey { get; set; }

    /// <summary>How long one remote evaluation may take.</summary>
    public int EvaluatorTimeoutSeconds { get; set; } = 600;

    /// <summary>Inputs accepted by one POST /api/adapters/{task}/generate call.</summary>
    public int MaxGenerateInputs { get; set; } = 64;

    public string ResolvedCacheRoot => string.IsNullOrWhiteSpace(CacheRoot) ? Path.Combine(Path.GetTempPath(), "lorahub-cache") : CacheRoot;
}
