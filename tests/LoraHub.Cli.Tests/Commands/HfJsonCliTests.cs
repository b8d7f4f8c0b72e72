using LoraHub.Core.Tests.Tokenization;
using Xunit;

namespace LoraHub.Cli.Tests.CommandLine;

/// <summary>`lorahub tokenize` on model folders whose tokenizer is a byte-level BPE tokenizer.json (Llama 3 style, Qwen2.5).</summary>
public sealed class HfJsonCliTests
{
    [Theory]
    [InlineData("llama3-style")]
    [InlineData("qwen2")]
    public void Tokenize_with_base_gives_hugging_face_ids_and_tokens(string model)
    {
        var c = HfBpeFiles.Cases(model)["cases"]!.AsArray().First(x => x!["text"]!.GetValue<string>() == "Hello world, it's 12345 ok .")!;
        var r = CliProcess.Run("tokenize", "--base", HfBpeFiles.Folder(model), "--text", c["text"]!.GetValue<string>(), "--format", "json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(HfBpeFiles.Ids(c["ids"]!), HfBpeFiles.Ids(r.Json["ids"]!));
        Assert.Equal(c["tokens"]!.AsArray().Select(t => t!.GetValue<string>()), r.Json["pieces"]!.AsArray().Select(t => t!.GetValue<string>()));
    }

    [Fact]
    public void Tokenize_reports_an_unsupported_tokenizer_json_on_one_line()
    {
        using var dir = new Fixtures.TempDir();
        File.WriteAllText(dir["tokenizer.json"], """{"model": {"type": "WordPiece", "vocab": {"a": 0}}}""");
        var r = CliProcess.Run("tokenize", "--base", dir.Path, "--text", "a");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("WordPiece", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
