using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using Azure.Storage.Blobs;
using Xunit;

namespace LoraHub.Storage.Tests;

/// <summary>Keyless hubs: a blob service URI and a token credential (managed identity in Azure), no account key.</summary>
public sealed class HubConnectionTests
{
    private static Func<string, string?> Settings(params (string Key, string Value)[] pairs) =>
        key => pairs.Where(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase)).Select(p => p.Value).FirstOrDefault();

    [Fact]
    public void Identity_settings_name_the_service_and_the_managed_identity()
    {
        var byUri = HubConnection.FromSettings(Settings(("blobServiceUri", "https://acct.blob.core.windows.net"), ("credential", "managedidentity"), ("clientId", "0000-client")))!;
        Assert.Equal(new Uri("https://acct.blob.core.windows.net"), byUri.BlobServiceUri);
        Assert.IsType<ManagedIdentityCredential>(byUri.Credential);

        var byName = HubConnection.FromSettings(Settings(("accountName", "hubacct")))!;
        Assert.Equal(new Uri("https://hubacct.blob.core.windows.net"), byName.BlobServiceUri);
        Assert.IsType<DefaultAzureCredential>(byName.Credential);

        Assert.Null(HubConnection.FromSettings(Settings()));
        var bad = Assert.Throws<ArgumentException>(() => HubConnection.FromSettings(Settings(("serviceUri", "ftp://x"))));
        Assert.Contains("not an http(s) URL", bad.Message);
    }

    [Fact]
    public void A_service_url_as_the_hub_location_opens_a_blob_store_without_a_shared_key()
    {
        Assert.True(HubConnection.IsServiceUri("https://acct.blob.core.windows.net"));
        Assert.False(HubConnection.IsServiceUri("/srv/hub"));
        Assert.False(HubConnection.IsServiceUri("UseDevelopmentStorage=true"));
        var store = Assert.IsType<BlobHubStore>(HubStoreFactory.Create("https://acct.blob.core.windows.net/", Path.GetTempPath()));
        Assert.Equal("acct", store.Service.AccountName);
        // Only a shared-key client can sign SAS URLs itself: this one holds a token credential.
        Assert.False(store.Service.CanGenerateAccountSasUri);
        Assert.True(new BlobServiceClient("UseDevelopmentStorage=true").CanGenerateAccountSasUri);
    }

    [Fact]
    public async Task Requests_carry_a_bearer_token_from_the_credential_and_no_shared_key()
    {
        var transport = new RecordingTransport();
        var connection = new HubConnection(new Uri("https://acct.blob.core.windows.net"), new FixedToken("token-123"));
        var store = HubStoreFactory.Create(connection, Path.GetTempPath(), new BlobClientOptions { Transport = transport, Retry = { MaxRetries = 0 } });
        await Assert.ThrowsAnyAsync<RequestFailedException>(() => store.ListAsync(HubArea.Modules));
        var request = Assert.Single(transport.Requests);
        Assert.StartsWith("https://acct.blob.core.windows.net/modules", request.Uri);
        Assert.Equal("Bearer token-123", request.Authorization);
        Assert.Equal("https://storage.azure.com/.default", Assert.Single(FixedToken.Scopes.Distinct()));
    }

    private sealed class FixedToken(string token) : TokenCredential
    {
        public static readonly List<string> Scopes = [];

        public override AccessToken GetToken(TokenRequestContext context, CancellationToken ct)
        {
            lock (Scopes) Scopes.AddRange(context.Scopes);
            return new AccessToken(token, DateTimeOffset.UtcNow.AddHours(1));
        }

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext context, CancellationToken ct) => new(GetToken(context, ct));
    }

    /// <summary>Answers every request with 403 and records it: nothing leaves the process.</summary>
    private sealed class RecordingTransport : HttpPipelineTransport
    {
        public List<(string Uri, string? Authorization)> Requests { get; } = [];

        public override Request CreateRequest() => new HttpClientTransport().CreateRequest();

        public override void Process(HttpMessage message) => ProcessAsync(message).AsTask().GetAwaiter().GetResult();

        public override ValueTask ProcessAsync(HttpMessage message)
        {
            message.Request.Headers.TryGetValue("Authorization", out var auth);
            Requests.Add((message.Request.Uri.ToString(), auth));
            message.Response = new ForbiddenResponse(message.Request.ClientRequestId);
            return ValueTask.CompletedTask;
        }
    }

    private sealed class ForbiddenResponse(string requestId) : Response
    {
        public override int Status => 403;
        public override string ReasonPhrase => "Forbidden";
        public override Stream? ContentStream { get; set; } = new MemoryStream();
        public override string ClientRequestId { get; set; } = requestId;
        public override void Dispose() { }
        protected override bool ContainsHeader(string name) => false;
        protected override IEnumerable<HttpHeader> EnumerateHeaders() => [];
        protected override bool TryGetHeader(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? value) { value = null; return false; }
        protected override bool TryGetHeaderValues(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IEnumerable<string>? values) { values = null; return false; }
    }
}
