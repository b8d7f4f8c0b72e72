namespace LoraHub.Storage;

/// <summary>The four areas of a hub, as blob containers (Azure) or top-level folders (local).</summary>
public enum HubArea
{
    /// <summary>models/{name}/config.json, model.safetensors (or shards), spiece.model</summary>
    Models,
    /// <summary>modules/{name}/adapter_config.json, adapter_model.safetensors | adapter_model.bin</summary>
    Modules,
    /// <summary>examples/{task}.jsonl with an optional sidecar examples/{task}.json (settings)</summary>
    Examples,
    /// <summary>adapters/{task}/adapter_config.json, adapter_model.safetensors, lorahub.json, report.png</summary>
    Adapters,
}

/// <summary>A file read from the hub, with the version tag that caches key on (blob ETag, or size+mtime locally).</summary>
public sealed record StoredFile(string Path, byte[] Content, string ETag);

/// <summary>An entry of a listing: a folder-like item (model, module, adapter) or a file (examples).</summary>
public sealed record HubItem(string Name, string ETag, long Size, DateTimeOffset LastModified);

/// <summary>
/// The hub store: models, modules, examples and composed adapters, in local folders (the embedded default)
/// or Azure Blob Storage. Names are validated (HubNameException) before any I/O: no path tricks.
/// </summary>
public interface IHubStore
{
    /// <summary>"local" or "blob".</summary>
    string Kind { get; }

    /// <summary>Items of an area: folder names for Models/Modules/Adapters, file names for Examples.</summary>
    Task<IReadOnlyList<HubItem>> ListAsync(HubArea area, CancellationToken ct = default);

    /// <summary>One file by its path inside the area (e.g. "task.jsonl" or "task/lorahub.json"); null when absent.</summary>
    Task<StoredFile?> ReadFileAsync(HubArea area, string path, CancellationToken ct = default);

    /// <summary>Writes one file (replacing it); returns its new ETag.</summary>
    Task<string> WriteFileAsync(HubArea area, string path, byte[] content, CancellationToken ct = default);

    Task<bool> DeleteFileAsync(HubArea area, string path, CancellationToken ct = default);

    /// <summary>
    /// A local folder holding the files of models/{name} or modules/{name} (or adapters/{name}), for the engine
    /// that reads folders. The local store returns its own folder; the blob store downloads into a cache folder
    /// keyed by name and the blobs' ETags, so an unchanged item is downloaded once per process/machine.
    /// Throws HubItemNotFoundException when the item does not exist.
    /// </summary>
    Task<MaterializedItem> MaterializeAsync(HubArea area, string name, CancellationToken ct = default);

    /// <summary>
    /// Publishes a local folder as {area}/{name}/...: every file, with commitMarker (e.g. "lorahub.json") deleted
    /// first and written last, so readers that check the marker never see a half-written item.
    /// </summary>
    Task PublishFolderAsync(HubArea area, string name, string localFolder, string commitMarker, CancellationToken ct = default);
}

/// <summary>A materialized item: the local folder and a version key (changes whenever any file changes).</summary>
public sealed record MaterializedItem(string Name, string LocalPath, string Version);

/// <summary>A hub name or path that is not allowed (path traversal, separators, control characters...).</summary>
public sealed class HubNameException(string message) : Exception(message);

/// <summary>The named model, module, adapter or file is not in the hub.</summary>
public sealed class HubItemNotFoundException(string message) : Exception(message);
