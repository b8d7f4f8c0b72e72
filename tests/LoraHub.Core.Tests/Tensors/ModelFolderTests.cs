using System.Text.Json;
using LoraHub.Core.Tensors;
using LoraHub.Core.Tests.Hostile;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

/// <summary>
/// Which weights a Hugging Face model folder (or a single tensor file) is read from, how a shard index from a stranger
/// is checked (every shard inside the folder, every name where the index says, no tensor twice), and the Checkpoint that
/// reads them one tensor at a time.
/// </summary>
public class ModelFolderTests
{
    private static void Save(string path, params (string Name, float[] Values)[] tensors)
    {
        using var scope = torch.NewDisposeScope();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        SafeTensors.Save(path, tensors.ToDictionary(t => t.Name, t => torch.tensor(t.Values)));
    }

    private static void SaveBin(string path, params (string Name, float[] Values)[] tensors)
    {
        var views = tensors.Select((t, i) => new TorchArchive.View(t.Name, i.ToString(), "FloatStorage", t.Values.Length, 0, [t.Values.Length], [1]));
        TorchArchive.Write(path, TorchArchive.Pickle(views), tensors.Select((t, i) => (i.ToString(), PickleBuilder.Floats(t.Values))).ToDictionary(p => p.Item1, p => p.Item2));
    }

    private static string Index(string dir, object weightMap, string file = "model.safetensors.index.json")
    {
        var path = Path.Combine(dir, file);
        File.WriteAllText(path, weightMap is string raw ? raw : JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
        return path;
    }

    private static float[] Values(Dictionary<string, torch.Tensor> loaded, string name) => loaded[name].data<float>().ToArray();

    [Fact]
    public void The_folder_is_read_from_the_first_of_the_hugging_face_file_names_it_holds()
    {
        using var dir = new TempDir();
        SaveBin(dir.Path("pytorch_model-00001-of-00001.bin"), ("w", [4]));
        Index(dir.Root, new Dictionary<string, string> { ["w"] = "pytorch_model-00001-of-00001.bin" }, "pytorch_model.bin.index.json");
        using (var t = new Loaded(StateDict.LoadModelFolder(dir.Root))) Assert.Equal([4f], Values(t.Tensors, "w"));

        SaveBin(dir.Path("pytorch_model.bin"), ("w", [3]));
        using (var t = new Loaded(StateDict.LoadModelFolder(dir.Root))) Assert.Equal([3f], Values(t.Tensors, "w"));

        Save(dir.Path("model-00001-of-00001.safetensors"), ("w", [2]));
        Index(dir.Root, new Dictionary<string, string> { ["w"] = "model-00001-of-00001.safetensors" });
        using (var t = new Loaded(StateDict.LoadModelFolder(dir.Root))) Assert.Equal([2f], Values(t.Tensors, "w"));

        Save(dir.Path("model.safetensors"), ("w", [1]));
        using (var t = new Loaded(StateDict.LoadModelFolder(dir.Root))) Assert.Equal([1f], Values(t.Tensors, "w"));
    }

    [Fact]
    public void A_missing_folder_is_named()
    {
        using var dir = new TempDir();
        var missing = dir.Path("no-such-model");
        Assert.Equal("model folder not found", TensorAssert.Throws(missing, () => StateDict.LoadModelFolder(missing)).Problem);
    }

    [Fact]
    public void Shards_in_subfolders_load_and_a_folder_path_may_end_with_a_separator()
    {
        using var dir = new TempDir();
        Save(dir.Path("weights/part-1.safetensors"), ("a", [1, 2]), ("b", [3]));
        Save(dir.Path("part-2.safetensors"), ("c", [4]));
        Index(dir.Root, new Dictionary<string, string> { ["a"] = "weights/part-1.safetensors", ["b"] = "weights/../weights/part-1.safetensors", ["c"] = "./part-2.safetensors" });

        using var checkpoint = StateDict.OpenModelFolder(dir.Root + Path.DirectorySeparatorChar);
        Assert.Equal(["a", "b", "c"], checkpoint.Tensors.Select(t => t.Name));
        Assert.Equal(dir.Path("weights/part-1.safetensors"), checkpoint.Find("b")!.File);
        Assert.Equal([1L], checkpoint.Find("b")!.Shape);
        Assert.Equal(torch.ScalarType.Float32, checkpoint.Find("c")!.Type);
        using var all = new Loaded(checkpoint.ReadAll(castTo: null));
        Assert.Equal([1f, 2f], Values(all.Tensors, "a"));
        Assert.Equal([4f], Values(all.Tensors, "c"));
    }

    [Fact]
    public void A_shard_in_a_sibling_folder_whose_name_starts_like_the_model_folder_is_outside_it()
    {
        using var dir = new TempDir();
        var model = dir.Path("model");
        Save(dir.Path("model-evil/shard.safetensors"), ("w", [1]));
        Directory.CreateDirectory(model);
        var index = Index(model, new Dictionary<string, string> { ["w"] = "../model-evil/shard.safetensors" });
        Assert.Equal("weight_map entry for 'w' points outside the model folder: '../model-evil/shard.safetensors'",
            TensorAssert.Throws(index, () => StateDict.LoadModelFolder(model)).Problem);
    }

    [Theory]
    [InlineData("{\"weight_map\": {\"w\": \"a.safetensors\"", "index is not valid JSON (")]
    [InlineData("{\"weight_map\": {\"w\": \"a.safetensors\", \"w\": \"b.safetensors\"}}", "index is not valid JSON (")]
    [InlineData("[{\"weight_map\": {}}]", "index has no \"weight_map\" object")]
    [InlineData("{\"metadata\": {}}", "index has no \"weight_map\" object")]
    [InlineData("{\"weight_map\": [\"a.safetensors\"]}", "index has no \"weight_map\" object")]
    [InlineData("{\"weight_map\": {\"w\": 1}}", "weight_map entry for 'w' is not a file name")]
    [InlineData("{\"weight_map\": {\"w\": \"\"}}", "weight_map entry for 'w' is not a file name")]
    [InlineData("{\"weight_map\": {\"w\": null}}", "weight_map entry for 'w' is not a file name")]
    [InlineData("{\"weight_map\": {}}", "weight_map is empty")]
    public void A_malformed_index_is_refused_naming_the_index(string json, string problem)
    {
        using var dir = new TempDir();
        Save(dir.Path("a.safetensors"), ("w", [1]));
        var index = Index(dir.Root, json);
        var e = TensorAssert.Throws(index, () => StateDict.OpenModelFolder(dir.Root));
        Assert.StartsWith(problem, e.Problem);
        if (problem.EndsWith('(')) Assert.IsAssignableFrom<JsonException>(e.InnerException);
    }

    [Fact]
    public void A_tensor_stored_in_two_shards_is_refused_naming_the_second()
    {
        using var dir = new TempDir();
        Save(dir.Path("one.safetensors"), ("a", [1]), ("b", [2]));
        Save(dir.Path("two.safetensors"), ("c", [3]), ("a", [9]));
        var index = Index(dir.Root, new Dictionary<string, string> { ["a"] = "one.safetensors", ["b"] = "one.safetensors", ["c"] = "two.safetensors" });
        Assert.Equal("tensor 'a' appears in more than one shard (again in 'two.safetensors')",
            TensorAssert.Throws(index, () => StateDict.LoadModelFolder(dir.Root)).Problem);
    }

    [Fact]
    public void A_broken_shard_is_refused_naming_the_shard_itself()
    {
        using var dir = new TempDir();
        Save(dir.Path("one.safetensors"), ("a", [1]));
        var broken = dir.Path("two.safetensors");
        RawSafetensors.Write(broken, "{\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4);
        Index(dir.Root, new Dictionary<string, string> { ["a"] = "one.safetensors", ["b"] = "two.safetensors" });
        TensorAssert.Throws(broken, () => StateDict.LoadModelFolder(dir.Root), "tensor 'b'");
    }

    [Fact]
    public void A_single_file_is_read_by_its_content_and_refused_by_its_extension()
    {
        using var dir = new TempDir();
        // A torch.save archive named .safetensors is read as what it is.
        var zipped = dir.Path("adapter_model.safetensors");
        SaveBin(zipped, ("w", [5, 6]));
        using (var t = new Loaded(StateDict.LoadFile(zipped))) Assert.Equal([5f, 6f], Values(t.Tensors, "w"));

        // Unrecognisable content: the extension says which reader explains the problem.
        var cases = new (string Name, byte[] Bytes, string Problem)[]
        {
            ("weights.safetensors", "{\"w\": 1}"u8.ToArray(), "header length "),
            ("short.safetensors", "{}"u8.ToArray(), "file is 2 bytes, too short for the 8-byte header length"),
            ("weights.BIN", "not a tensor file"u8.ToArray(), "not a zip archive"),
            ("weights.pth", "not a tensor file"u8.ToArray(), "not a zip archive"),
            ("weights.pt", "PK"u8.ToArray(), "not a zip archive"),
            ("weights.dat", "PK\u0005\u0006"u8.ToArray(), "not a recognised tensor file: neither a safetensors header nor a torch.save zip archive (expected .safetensors, .bin, .pt or .pth)"),
            ("weights.dat", "PK\u0003\u0005 more"u8.ToArray(), "not a recognised tensor file"),
            ("weights", "PK"u8.ToArray(), "not a recognised tensor file"),
        };
        foreach (var (name, bytes, problem) in cases)
        {
            var path = dir.Path(name);
            File.WriteAllBytes(path, bytes);
            var e = TensorAssert.Throws(path, () => StateDict.LoadFile(path));
            Assert.True(e.Problem.StartsWith(problem, StringComparison.Ordinal), $"{name}: {e.Problem}");
            File.Delete(path);
        }
        var missing = dir.Path("adapter_model.bin");
        Assert.Equal("file not found", TensorAssert.Throws(missing, () => StateDict.OpenFile(missing)).Problem);
    }

    [Fact]
    public void A_checkpoint_answers_what_it_holds_and_reads_one_tensor_into_any_destination()
    {
        using var dir = new TempDir();
        var path = dir.Path("model.safetensors");
        using (var scope = torch.NewDisposeScope())
            SafeTensors.Save(path, new Dictionary<string, torch.Tensor> { ["m"] = torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3), ["v"] = torch.ones(2) });

        using var checkpoint = StateDict.OpenModelFolder(dir.Root);
        Assert.True(checkpoint.Contains("m"));
        Assert.False(checkpoint.Contains("M"));
        Assert.Null(checkpoint.Find("missing"));
        var m = checkpoint.Find("m")!;
        Assert.Equal(("m", torch.ScalarType.Float32, path), (m.Name, m.Type, m.File));
        Assert.Equal([2L, 3], m.Shape);
        Assert.Equal(["m", "v"], checkpoint.Tensors.Select(t => t.Name));

        var unknown = Assert.Throws<KeyNotFoundException>(() => checkpoint.ReadInto("missing", torch.empty(1)));
        Assert.Equal("the checkpoint has no tensor 'missing'", unknown.Message);
        using var wrong = torch.empty(3, 2);
        var shape = Assert.Throws<ArgumentException>(() => checkpoint.ReadInto("m", wrong));
        Assert.StartsWith("tensor 'm' is [2, 3] but the destination is [3, 2]", shape.Message);

        // A non-contiguous destination of the stored dtype is filled through a temporary, in its own layout.
        using var storage = torch.full(3, 2, -1f);
        using var transposedView = storage.t();
        checkpoint.ReadInto("m", transposedView);
        TensorAssert.Values([0, 3, 1, 4, 2, 5], storage);
        // So is one of another dtype, converted on the way.
        using var ints = torch.zeros(2, 3, dtype: torch.ScalarType.Int64);
        checkpoint.ReadInto("m", ints);
        Assert.Equal([0L, 1, 2, 3, 4, 5], ints.data<long>().ToArray());
    }
}
