using Azure.Core;
using Azure.Identity;
using Azure.Storage.Blobs;

namespace LoraHub.Storage;

/// <summary>
/// Where a blob hub is and how to sign in to it without an account key: a blob service URI and an Entra ID token
/// credential. The settings have the shape the Functions host uses for identity-based connections, so one app
/// setting prefix serves both the blob trigger and the hub store:
/// <c>{prefix}__blobServiceUri</c> (or <c>__serviceUri</c>, or <c>__accountName</c> for the public cloud),
/// <c>__credential</c> ("managedidentity" or absent) and <c>__clientId</c> (a user-assigned identity).
/// </summary>
public sealed record HubConnection(Uri BlobServiceUri, TokenCredential Credential)
{
    /// <summary>
    /// A connection from identity settings (setting names are case-insensitive), or null when none is given.
    /// "managedidentity" with a clientId uses that managed identity only; anything else uses DefaultAzureCredential
    /// (environment, workload identity, managed identity, Azure CLI...), with clientId as its managed identity.
    /// </summary>
    public static HubConnection? FromSettings(Func<string, string?> setting)
    {
        var uri = setting("blobServiceUri") ?? setting("serviceUri");
        if (string.IsNullOrWhiteSpace(uri) && setting("accountName") is { Length: > 0 } account)
            uri = $"https://{account.Trim()}.blob.core.windows.net";
        if (string.IsNullOrWhiteSpace(uri)) return null;
        if (!Uri.TryCreate(uri.Trim(), UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttps && parsed.Scheme != Uri.UriSchemeHttp))
            throw new ArgumentException($"the hub's blob service URI '{uri}' is not an http(s) URL");
        var clientId = setting("clientId") is { Length: > 0 } id ? id.Trim() : null;
        var kind = setting("credential")?.Trim();
        TokenCredential credential = string.Equals(kind, "managedidentity", StringComparison.OrdinalIgnoreCase)
            ? new ManagedIdentityCredential(clientId is null ? ManagedIdentityId.SystemAssigned : ManagedIdentityId.FromUserAssignedClientId(clientId))
            : new DefaultAzureCredential(new DefaultAzureCredentialOptions { ManagedIdentityClientId = clientId });
        return new HubConnection(parsed, credential);
    }

    /// <summary>A service URI given as the whole location ("https://acct.blob.core.windows.net"): DefaultAzureCredential.</summary>
    public static bool IsServiceUri(string location) =>
        Uri.TryCreate(location.Trim(), UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp);

    public BlobServiceClient CreateClient(BlobClientOptions? options = null) => new(BlobServiceUri, Credential, options);
}
