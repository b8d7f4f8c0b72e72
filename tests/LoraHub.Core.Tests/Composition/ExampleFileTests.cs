using LoraHub.Core.Composition;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

public sealed class ExampleFileTests
{
    [Fact]
    public void Json_lines_accept_the_output_target_and_completion_aliases()
    {
        var examples = ExampleFile.Parse(
            "{\"input\": \"a\", \"output\": \"1\"}\n\n{\"input\": \"b\", \"target\": \"2\"}\r\n{\"context\": \"c\", \"completion\": \"3\"}\n", "x.jsonl");
        Assert.Equal([new Example("a", "1"), new Example("b", "2"), new Example("c", "3")], examples);
    }

    [Fact]
    public void A_bbh_task_file_is_read_as_its_examples()
    {
        var examples = ExampleFile.Parse("{\"canary\": \"x\", \"examples\": [{\"input\": \"q\", \"target\": \"t\"}]}", "task.json");
        Assert.Equal([new Example("q", "t")], examples);
    }

    [Theory]
    [InlineData("{\"input\": \"a\", \"output\": \"1\"}\n{\"input\": \"b\", \"output\": \n", "line 2 is not valid JSON")]
    [InlineData("{\"input\": \"a\", \"output\": \"1\"}\n\n{\"input\": \"b\"}\n", "line 3: no \"output\" field")]
    [InlineData("[1, 2]\n", "line 1 is not a JSON object")]
    [InlineData("{\"input\": 5, \"output\": \"1\"}\n", "line 1: \"input\" is not a string")]
    [InlineData("", "the examples file is empty")]
    [InlineData("  \n\n", "the examples file is empty")]
    [InlineData("{\"examples\": []}", "\"examples\" is empty")]
    public void Malformed_files_name_the_file_and_the_line(string text, string expected)
    {
        var e = Assert.Throws<ExampleFormatException>(() => ExampleFile.Parse(text, "task.jsonl"));
        Assert.StartsWith("task.jsonl: ", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
