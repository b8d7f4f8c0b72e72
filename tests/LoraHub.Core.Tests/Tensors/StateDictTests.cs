using System.Text.Json;
using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

public class StateDictTests
{
    [Fact]
    public void LoadFile_picks_the_reader_by_content()
    {
        using var fromSafetensors = new Loaded(StateDict.LoadFile(TensorFixtures.Lora0Safetensors));
        using var fromBin = new Loaded(StateDict.LoadFile(TensorFixtures.Lora0Bin));
        foreach (var (name, t) in fromSafetensors.Tensors) TensorAssert.Equal(t, fromBin[name]);

        // A safetensors file saved under a .bin name still loads (content wins over extension).
        using var dir = new TempDir();
        var renamed = dir.Path("adapter_model.bin");
        File.Copy(TensorFixtures.Lora0Safetensors, renamed);
        using var fromRenamed = new Loaded(StateDict.LoadFile(renamed));
        Assert.Equal(fromSafetensors.Tensors.Count, fromRenamed.Tensors.Count);
    }

    [Fact]
    public void LoadFile_reports_unrecognised_content()
    {
        using var dir = new TempDir();
        var path = dir.Path("weights.dat");
        File.WriteAllText(path, "hello, not tensors");
        TensorAssert.Throws(path, () => StateDict.LoadFile(path), "not a recognised tensor file");

        var bin = dir.Path("weights.pt");
        File.WriteAllText(bin, "hello, not tensors");
        TensorAssert.Throws(bin, () => StateDict.LoadFile(bin), "not a zip archive");
    }

    [Theory]
    [InlineData("bin", "strided_and_shared.bin")]
    [InlineData("bin", "lora_0", "adapter_model.bin")]
    [InlineData("t5", "adapters", "lora_0", "adapter_model.safetensors")]
    public void Reading_one_tensor_at_a_time_gives_what_loading_the_file_gives(params string[] file)
    {
        var path = TensorFixtures.Path(file);
        using var all = new Loaded(StateDict.LoadFile(path, castTo: null));
        using var checkpoint = StateDict.OpenFile(path);
        Assert.Equal(all.Tensors.Keys.Order(), checkpoint.Tensors.Select(t => t.Name).Order());
        foreach (var stored in checkpoint.Tensors)
        {
            Assert.Equal(all[stored.Name].dtype, stored.Type);
            Assert.Equal(all[stored.Name].shape, stored.Shape);
            // Into a tensor of the stored type (read in place) and into one of another type (converted on the way).
            using var same = torch.empty(stored.Shape, stored.Type);
            checkpoint.ReadInto(stored.Name, same);
            TensorAssert.Equal(all[stored.Name], same);
            if (!torch.is_floating_point(same)) continue;
            using var other = torch.empty(stored.Shape, stored.Type == torch.ScalarType.Float64 ? torch.ScalarType.Float32 : torch.ScalarType.Float64);
            checkpoint.ReadInto(stored.Name, other);
            using var expected = all[stored.Name].to(other.dtype);
            TensorAssert.Equal(expected, other);
        }
        using var wrong = torch.empty(1);
        Assert.Throws<ArgumentException>(() => checkpoint.ReadInto(checkpoint.Tensors[0].Name, wrong));
    }

    [Fact]
    public void Sharded_folder_loads_to_the_same_tensors_as_the_single_file()
    {
        using var single = new Loaded(StateDict.LoadModelFolder(TensorFixtures.TinyT5Dir));
        using var dir = new TempDir();
        WriteShards(dir.Root, single.Tensors, out _);

        using var sharded = new Loaded(StateDict.LoadModelFolder(dir.Root));

        Assert.Equal(single.Tensors.Keys.Order(), sharded.Tensors.Keys.Order());
        foreach (var (name, t) in single.Tensors) TensorAssert.Equal(t, sharded[name]);
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../outside.safetensors")]
    public void Shard_index_pointing_outside_the_folder_is_refused(string shardName)
    {
        using var dir = new TempDir();
        var index = WriteIndex(dir.Root, "model.safetensors.index.json", new() { ["w"] = shardName });
        TensorAssert.Throws(index, () => StateDict.LoadModelFolder(dir.Root), "weight_map entry for 'w' points outside the model folder", shardName);
    }

    [Fact]
    public void Shard_index_naming_a_missing_shard_is_refused()
    {
        using var dir = new TempDir();
        var index = WriteIndex(dir.Root, "model.safetensors.index.json", new() { ["w"] = "model-00001-of-00002.safetensors" });
        TensorAssert.Throws(index, () => StateDict.LoadModelFolder(dir.Root), "shard 'model-00001-of-00002.safetensors'", "does not exist");
    }

    [Fact]
    public void Shard_index_naming_a_tensor_its_shard_lacks_is_refused()
    {
        using var dir = new TempDir();
        using (var scope = torch.NewDisposeScope())
            SafeTensors.Save(Path.Combine(dir.Root, "shard.safetensors"), new Dictionary<string, torch.Tensor> { ["a"] = torch.ones(2) });
        var index = WriteIndex(dir.Root, "model.safetensors.index.json", new() { ["a"] = "shard.safetensors", ["b"] = "shard.safetensors" });
        TensorAssert.Throws(index, () => StateDict.LoadModelFolder(dir.Root), "weight_map places 'b' in 'shard.safetensors', but that shard does not contain it");
    }

    [Fact]
    public void Pytorch_model_bin_folders_load()
    {
        using var dir = new TempDir();
        File.Copy(TensorFixtures.Lora0Bin, dir.Path("pytorch_model.bin"));
        using var fromFolder = new Loaded(StateDict.LoadModelFolder(dir.Root));
        using var expected = new Loaded(SafeTensors.Load(TensorFixtures.Lora0Safetensors));
        foreach (var (name, t) in expected.Tensors) TensorAssert.Equal(t, fromFolder[name]);
    }

    [Fact]
    public void Empty_folder_says_what_was_looked_for()
    {
        using var dir = new TempDir();
        TensorAssert.Throws(dir.Root, () => StateDict.LoadModelFolder(dir.Root),
            "no model weights found", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin");
    }

    /// <summary>Splits tensors over two shards with an index, as save_pretrained does for large models.</summary>
    private static void WriteShards(string dir, Dictionary<string, torch.Tensor> tensors, out string indexPath)
    {
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var shards = new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
        var map = new Dictionary<string, string>();
        for (int s = 0; s < 2; s++)
        {
            var part = names.Where((_, i) => i % 2 == s).ToDictionary(n => n, n => tensors[n]);
            SafeTensors.Save(Path.Combine(dir, shards[s]), part, new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var n in part.Keys) map[n] = shards[s];
        }
        indexPath = WriteIndex(dir, "model.safetensors.index.json", map);
    }

    private static string WriteIndex(string dir, string fileName, Dictionary<string, string> weightMap)
    {
        var path = Path.Combine(dir, fileName);
        File.WriteAllText(path, JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
        return path;
    }
}
