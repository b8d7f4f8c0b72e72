using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using Xunit;

namespace LoraHub.Cli.Tests.Training;

public sealed class TrainCommandTests
{
    private static string WriteData(Fixtures.TempDir dir)
    {
        var path = dir["data.jsonl"];
        File.WriteAllLines(path, ["{\"input\":\"black or\",\"output\":\"white\"}", "{\"input\":\"up or\",\"output\":\"down\"}", "{\"input\":\"yes or\",\"output\":\"no\"}"]);
        return path;
    }

    [Fact]
    public void Train_writes_a_peft_module_and_its_record()
    {
        using var dir = new Fixtures.TempDir();
        var data = WriteData(dir);
        var r = CliProcess.Run("train", "--base", Fixtures.TinyT5, "--data", data, "--out", dir["m"], "--rank", "4", "--alpha", "8",
            "--steps", "12", "--lr", "0.01", "--init-seed", "3", "--freeze-a");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("trained 12 layers, 12 steps", r.Stdout);
        Assert.Contains("lorahub: step 12/12", r.Stderr); // stderr is redirected: plain progress lines
        using var module = LoraModule.Load(dir["m"]);
        Assert.Equal(4, module.Rank);
        Assert.Equal(8, module.Config.LoraAlpha);
        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(dir["m"], "lorahub-train.json")))!;
        Assert.Equal(3, record["init_seed"]!.GetValue<int>());
        Assert.True(record["freeze_a"]!.GetValue<bool>());
        Assert.Equal(data, record["data"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("--steps", "0", "steps must be at least 1")]
    [InlineData("--targets", "query", "no Linear layer of the model is named query")]
    [InlineData("--lr", "-1", "learning rate")]
    public void Bad_arguments_fail_with_one_line(string option, string value, string message)
    {
        using var dir = new Fixtures.TempDir();
        string[] steps = option == "--steps" ? [] : ["--steps", "2"];
        var r = CliProcess.Run(["train", "--base", Fixtures.TinyT5, "--data", WriteData(dir), "--out", dir["m"], .. steps, option, value]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir["m"]));
    }

    [Fact]
    public void Missing_data_is_a_clear_error()
    {
        using var dir = new Fixtures.TempDir();
        var r = CliProcess.Run("train", "--base", Fixtures.TinyT5, "--data", dir["none.jsonl"], "--out", dir["m"]);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("lorahub: error:", r.Stderr);
        Assert.Contains("none.jsonl", r.Stderr);
    }
}
