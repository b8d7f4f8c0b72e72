// The xunit collection of AzuriteFixture (kept apart so that non-test projects can link the fixture alone).
using Xunit;

namespace LoraHub.Testing;

/// <summary>The test classes that share one Azurite: [Collection(AzuriteCollection.Name)].</summary>
[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}
