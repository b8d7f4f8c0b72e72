using Xunit;

namespace LoraHub.Storage.Tests;

public sealed class HubStoreFactoryTests
{
    [Theory]
    [InlineData("UseDevelopmentStorage=true")]
    [InlineData("  usedevelopmentstorage=true ")]
    [InlineData("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net")]
    [InlineData("BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=abc")]
    public void Connection_strings_open_a_blob_store(string location)
    {
        Assert.True(HubStoreFactory.IsBlobConnectionString(location));
        var store = HubStoreFactory.Create(location, Path.GetTempPath());
        Assert.Equal("blob", store.Kind);
        Assert.IsType<BlobHubStore>(store);
    }

    [Theory]
    [InlineData("/srv/hub")]
    [InlineData("hub")]
    [InlineData("./my hub")]
    public void Anything_else_is_a_local_folder(string location)
    {
        Assert.False(HubStoreFactory.IsBlobConnectionString(location));
        var store = Assert.IsType<LocalHubStore>(HubStoreFactory.Create(location, Path.GetTempPath()));
        Assert.Equal("local", store.Kind);
        Assert.Equal(Path.GetFullPath(location), store.Root);
    }

    [Fact]
    public void An_empty_location_is_refused() =>
        Assert.Throws<ArgumentException>(() => HubStoreFactory.Create(" ", Path.GetTempPath()));

    [Fact]
    public void Descriptions_hide_keys_and_signatures()
    {
        var shown = HubStoreFactory.Describe("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0;BlobEndpoint=https://x/;SharedAccessSignature=sig=abc");
        Assert.Equal("AccountName=acct;BlobEndpoint=https://x/", shown);
        Assert.Equal("/srv/hub", HubStoreFactory.Describe("/srv/hub"));
    }
}
