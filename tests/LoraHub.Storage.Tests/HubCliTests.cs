using System.Text.Json.Nodes;
using LoraHub.Testing;
using Xunit;

namespace LoraHub.Storage.Tests;

/// <summary>`lorahub hub push|list` against a hub location: a folder (LocalHubCliTests) or Azurite (BlobHubCliTests).</summary>
public abstract class HubCliContract : IDisposable
{
    protected TempDir Temp { get; } = new();

    /// <summary>The --hub value.</summary>
    protected abstract string Hub { get; }

    public void Dispose() => Temp.Dispose();

    protected static void Ok(CliProcess.Result r) => Assert.True(r.ExitCode == 0, r.ToString());

    protected static void OneLineError(CliProcess.Result r, int exitCode, string contains)
    {
        Assert.True(r.ExitCode == exitCode, r.ToString());
        Assert.Contains(contains, r.Stderr);
        Assert.StartsWith("lorahub: error: ", r.Stderr);
        Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
    }

    private JsonArray ListItems(string? area = null)
    {
        var r = area is null ? CliProcess.Run("hub", "list", "--hub", Hub, "--format", "json") : CliProcess.Run("hub", "list", "--hub", Hub, "--area", area, "--format", "json");
        Ok(r);
        return r.Json["items"]!.AsArray();
    }

    [Fact]
    public async Task Push_a_model_modules_and_examples_then_list_and_load_them_back()
    {
        var model = Names.Unique("tiny-t5");
        var r = CliProcess.Run("hub", "push", "--hub", Hub, "--model", Fixtures.TinyT5, "--name", model, "--format", "json");
        Ok(r);
        var pushed = Assert.Single(r.Json["pushed"]!.AsArray());
        Assert.Equal("models", pushed!["area"]!.GetValue<string>());
        Assert.Equal(model, pushed["name"]!.GetValue<string>());
        Assert.Equal(6, pushed["files"]!.GetValue<int>());

        var module = Names.Unique("lora");
        Ok(CliProcess.Run("hub", "push", "--hub", Hub, "--module", Fixtures.Adapter(0), "--name", module));

        // A pool: every sub folder with adapter_config.json, under its own name.
        var pool = Temp["pool"];
        Directory.CreateDirectory(pool);
        var poolNames = Enumerable.Range(0, 3).Select(i => Names.Unique($"pool{i}")).ToArray();
        for (var i = 0; i < 3; i++)
        {
            Directory.CreateDirectory(Path.Combine(pool, poolNames[i]));
            foreach (var f in Directory.GetFiles(Fixtures.Adapter(i))) File.Copy(f, Path.Combine(pool, poolNames[i], Path.GetFileName(f)));
        }
        Directory.CreateDirectory(Path.Combine(pool, "notes")); // not a module: skipped
        r = CliProcess.Run("hub", "push", "--hub", Hub, "--modules", pool);
        Ok(r);
        foreach (var n in poolNames) Assert.Contains($"pushed modules/{n} (2 files", r.Stdout);

        // Examples with their settings sidecar.
        var task = Names.Unique("task");
        File.WriteAllText(Temp[$"{task}.jsonl"], "{\"input\":\"1+1\",\"output\":\"2\"}\n{\"input\":\"2+2\",\"output\":\"4\"}\n");
        File.WriteAllText(Temp[$"{task}.json"], "{\"budget\":10}");
        r = CliProcess.Run("hub", "push", "--hub", Hub, "--examples", Temp[$"{task}.jsonl"], "--format", "json");
        Ok(r);
        Assert.Equal([$"{task}.json", $"{task}.jsonl"], r.Json["pushed"]!.AsArray().Select(p => p!["name"]!.GetValue<string>()));

        var items = ListItems();
        Assert.Contains(items, i => i!["area"]!.GetValue<string>() == "models" && i["name"]!.GetValue<string>() == model && i["size"]!.GetValue<long>() > 17_000_000);
        foreach (var n in poolNames.Append(module))
            Assert.Contains(items, i => i!["area"]!.GetValue<string>() == "modules" && i["name"]!.GetValue<string>() == n);
        Assert.Contains(items, i => i!["area"]!.GetValue<string>() == "examples" && i["name"]!.GetValue<string>() == $"{task}.jsonl");
        Assert.DoesNotContain(items, i => i!["name"]!.GetValue<string>() == "notes");
        Assert.All(ListItems("examples"), i => Assert.Equal("examples", i!["area"]!.GetValue<string>()));

        var text = CliProcess.Run("hub", "list", "--hub", Hub, "--area", "models");
        Ok(text);
        Assert.Contains($"models/{model}", text.Stdout);

        // What went in comes back byte for byte.
        var store = HubStoreFactory.Create(Hub, Temp["cache"]);
        var materialized = await store.MaterializeAsync(HubArea.Models, model);
        foreach (var f in Directory.GetFiles(Fixtures.TinyT5))
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(materialized.LocalPath, Path.GetFileName(f))));
        Assert.Equal("{\"budget\":10}", System.Text.Encoding.UTF8.GetString((await store.ReadFileAsync(HubArea.Examples, $"{task}.json"))!.Content));
    }

    [Fact]
    public async Task An_examples_document_is_stored_as_json_lines()
    {
        var task = Names.Unique("bbh");
        File.WriteAllText(Temp[$"{task}.json"], "{\"examples\":[{\"input\":\"a\",\"target\":\"b\"},{\"input\":\"c\",\"target\":\"d\"}]}");
        Ok(CliProcess.Run("hub", "push", "--hub", Hub, "--examples", Temp[$"{task}.json"]));
        var store = HubStoreFactory.Create(Hub, Temp["cache"]);
        var text = System.Text.Encoding.UTF8.GetString((await store.ReadFileAsync(HubArea.Examples, $"{task}.jsonl"))!.Content);
        Assert.Equal("{\"input\":\"a\",\"output\":\"b\"}\n{\"input\":\"c\",\"output\":\"d\"}\n", text);
        Assert.Null(await store.ReadFileAsync(HubArea.Examples, $"{task}.json")); // the document is not its own sidecar
    }

    [Fact]
    public void Pushing_again_replaces_the_item()
    {
        var name = Names.Unique("lora");
        Ok(CliProcess.Run("hub", "push", "--hub", Hub, "--module", Fixtures.Adapter(0), "--name", name));
        var first = ListItems("modules").Single(i => i!["name"]!.GetValue<string>() == name)!["etag"]!.GetValue<string>();
        Ok(CliProcess.Run("hub", "push", "--hub", Hub, "--module", Fixtures.Adapter(1), "--name", name));
        var second = ListItems("modules").Single(i => i!["name"]!.GetValue<string>() == name)!["etag"]!.GetValue<string>();
        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Folders_that_are_not_models_or_modules_are_refused_before_uploading()
    {
        var before = ListItems().ToJsonString();
        var notModel = Temp.Folder("not-a-model", ("weights.bin", "x"));
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--model", notModel), 2, "has no config.json");
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--module", Fixtures.TinyT5), 2, "has no adapter_config.json");
        var noWeights = Temp.Folder("no-weights", ("adapter_config.json", "{}"));
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--module", noWeights), 2, "adapter_model.safetensors");
        var badJson = Temp.Folder("bad-json", ("config.json", "{not json"));
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--model", badJson), 2, "not valid JSON");
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--modules", Temp.Folder("empty-pool")), 2, "holds no module folders");
        Assert.Equal(before, ListItems().ToJsonString());
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("with space")]
    [InlineData("%2e%2e")]
    public void Hostile_names_are_refused_with_one_line(string name)
    {
        // Refused while planning, before the hub is even opened (the stores' own tests check that nothing is written).
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--module", Fixtures.Adapter(0), "--name", name), 1, "invalid hub");
    }

    [Fact]
    public void Usage_errors_are_one_line_with_exit_code_2()
    {
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub), 2, "say what to push");
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--model", Fixtures.TinyT5, "--module", Fixtures.Adapter(0)), 2, "one thing at a time");
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--modules", Fixtures.Adapters, "--name", "x"), 2, "--name does not go with --modules");
        OneLineError(CliProcess.Run("hub", "list", "--hub", Hub, "--area", "nowhere"), 2, "nowhere");
        OneLineError(CliProcess.Run("hub", "list"), 2, "--hub");
    }

    [Fact]
    public void Bad_examples_files_are_refused_naming_the_line()
    {
        var before = ListItems("examples").ToJsonString();
        File.WriteAllText(Temp["bad.jsonl"], "{\"input\":\"a\",\"output\":\"b\"}\n{oops\n");
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--examples", Temp["bad.jsonl"]), 1, "line 2");
        File.WriteAllText(Temp["ok.jsonl"], "{\"input\":\"a\",\"output\":\"b\"}\n");
        File.WriteAllText(Temp["ok.json"], "[1]");
        OneLineError(CliProcess.Run("hub", "push", "--hub", Hub, "--examples", Temp["ok.jsonl"]), 2, "sidecar");
        Assert.Equal(before, ListItems("examples").ToJsonString());
    }

}

public sealed class LocalHubCliTests : HubCliContract
{
    // An existing (empty) folder: `hub list` on a folder that does not exist is an error (HostileHubTests).
    protected override string Hub => Directory.CreateDirectory(Temp["hub"]).FullName;

    [Fact]
    public void An_empty_hub_lists_nothing()
    {
        var r = CliProcess.Run("hub", "list", "--hub", Hub);
        Ok(r);
        Assert.Contains("the hub is empty", r.Stdout);
        r = CliProcess.Run("hub", "list", "--hub", Hub, "--area", "adapters", "--format", "json");
        Ok(r);
        Assert.Equal("{\"hub\":\"local\",\"items\":[]}", r.Stdout.Trim());
    }
}

/// <summary>The same commands against Azurite through a connection string.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class BlobHubCliTests(AzuriteFixture azurite) : HubCliContract
{
    protected override string Hub => azurite.ConnectionString;

    [Fact]
    public void Unreachable_storage_is_one_line()
    {
        var nowhere = azurite.ConnectionString.Replace($":{azurite.BlobPort}/", ":9/");
        OneLineError(CliProcess.Run("hub", "list", "--hub", nowhere, "--area", "models"), 1, "blob storage");
    }
}
