namespace LoraHub.Storage;

/// <summary>
/// Opens a hub from one configuration string: a blob connection string, a blob service URL (signed in with
/// DefaultAzureCredential: no account key), or a local folder; or from identity settings (<see cref="HubConnection"/>).
/// </summary>
public static class HubStoreFactory
{
    /// <summary>
    /// "UseDevelopmentStorage=true" (Azurite on its default ports) or a connection string with "AccountName=" or
    /// "BlobEndpoint=" opens a BlobHubStore that downloads into cacheRoot; so does an https URL of a blob service
    /// (with DefaultAzureCredential); anything else is a local folder (LocalHubStore).
    /// </summary>
    public static IHubStore Create(string location, string cacheRoot) => Create(location, cacheRoot, null);

    /// <summary>Create with client options for a blob store (retries, timeouts, diagnostics); ignored for a folder.</summary>
    public static IHubStore Create(string location, string cacheRoot, Azure.Storage.Blobs.BlobClientOptions? blobOptions)
    {
        if (string.IsNullOrWhiteSpace(location)) throw new ArgumentException("the hub location is empty: give a folder or a blob connection string", nameof(location));
        if (IsBlobConnectionString(location)) return new BlobHubStore(location.Trim(), cacheRoot, blobOptions);
        if (HubConnection.IsServiceUri(location))
            return Create(HubConnection.FromSettings(k => k == "serviceUri" ? location : null)!, cacheRoot, blobOptions);
        return new LocalHubStore(location);
    }

    /// <summary>A blob hub signed in with a token credential (managed identity, workload identity, Azure CLI...).</summary>
    public static BlobHubStore Create(HubConnection connection, string cacheRoot, Azure.Storage.Blobs.BlobClientOptions? blobOptions = null) =>
        new(connection.CreateClient(blobOptions), cacheRoot);

    /// <summary>Create with the default cache folder (DefaultCacheRoot).</summary>
    public static IHubStore Create(string location) => Create(location, DefaultCacheRoot);

    /// <summary>LORAHUB_CACHE when set, else lorahub-cache under the system temp folder.</summary>
    public static string DefaultCacheRoot =>
        Environment.GetEnvironmentVariable("LORAHUB_CACHE") is { Length: > 0 } fromEnv
            ? fromEnv
            : Path.Combine(Path.GetTempPath(), "lorahub-cache");

    public static bool IsBlobConnectionString(string location)
    {
        var text = location.Trim();
        return text.StartsWith("UseDevelopmentStorage=", StringComparison.OrdinalIgnoreCase)
            || text.Contains("AccountName=", StringComparison.OrdinalIgnoreCase)
            || text.Contains("BlobEndpoint=", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The location for messages, without any account key or SAS signature.</summary>
    public static string Describe(string location)
    {
        if (!IsBlobConnectionString(location)) return location;
        var parts = location.Trim().Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var shown = parts
            .Where(p => !p.StartsWith("AccountKey=", StringComparison.OrdinalIgnoreCase) && !p.StartsWith("SharedAccessSignature=", StringComparison.OrdinalIgnoreCase))
            .Where(p => p.StartsWith("UseDevelopmentStorage=", StringComparison.OrdinalIgnoreCase) || p.StartsWith("AccountName=", StringComparison.OrdinalIgnoreCase) || p.StartsWith("BlobEndpoint=", StringComparison.OrdinalIgnoreCase));
        return string.Join(';', shown);
    }
}
