using System.Text;
using LoraHub.Core.Composition;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>
/// Examples files read from disk: JSON lines streamed, BBH documents read whole, both within the limits (exactly at a
/// limit is fine, one beyond is an error naming the file, the line and the variable that raises it), strict UTF-8.
/// </summary>
public sealed class ExampleFileLimitsTests
{
    private static readonly ExampleLimits Small = new(MaxLineBytes: 64, MaxExamples: 3);

    private static string Write(Fixtures.TempDir dir, string text, string name = "ex.jsonl") => Write(dir, Encoding.UTF8.GetBytes(text), name);

    private static string Write(Fixtures.TempDir dir, byte[] bytes, string name = "ex.jsonl")
    {
        var path = dir[name];
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string Line(string input, string output = "o") => $$"""{"input": "{{input}}", "output": "{{output}}"}""";

    private static string Refused(string path, ExampleLimits? limits = null)
    {
        var e = Assert.Throws<ExampleFormatException>(() => ExampleFile.Load(path, limits ?? Small));
        Assert.StartsWith(path, e.Message);
        return e.Message;
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        using var dir = new Fixtures.TempDir();
        Assert.Equal($"{dir["none.jsonl"]}: examples file does not exist", Refused(dir["none.jsonl"]));
    }

    [Fact]
    public void Json_lines_are_read_with_blank_lines_crlf_a_bom_and_no_final_newline()
    {
        using var dir = new Fixtures.TempDir();
        var bytes = new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes(Line("a", "1") + "\r\n\r\n  \n" + """{"context": "b", "completion": "2"}""" + "\n" + Line("é", "3"))).ToArray();
        var examples = ExampleFile.Load(Write(dir, bytes), Small);
        Assert.Equal([new Example("a", "1"), new Example("b", "2"), new Example("é", "3")], examples);
        // "input" wins over "context", "output" over "target" and "completion" when a line has both.
        var both = ExampleFile.Load(Write(dir, """{"context": "c", "input": "i", "completion": "x", "target": "t", "output": "o"}""", "both.jsonl"), new ExampleLimits(200, 3));
        Assert.Equal([new Example("i", "o")], both);
    }

    [Fact]
    public void A_bbh_document_is_read_whole_from_one_line_or_many()
    {
        using var dir = new Fixtures.TempDir();
        var oneLine = """{"canary": "c", "examples": [{"input": "q1", "target": "t1"}, {"input": "q2", "target": "t2"}]}""";
        Assert.Equal([new Example("q1", "t1"), new Example("q2", "t2")], ExampleFile.Load(Write(dir, oneLine, "one.json"), Small));
        var spread = "\n  {\n  \"examples\": [\n    {\"input\": \"q\", \"target\": \"t\"}\n  ]\n}\n";
        Assert.Equal([new Example("q", "t")], ExampleFile.Load(Write(dir, spread, "spread.json"), Small));
        // A JSON-lines file whose first line is a complete object is not a document, even when it starts with '{'.
        Assert.Equal(2, ExampleFile.Load(Write(dir, Line("a") + "\n" + Line("b") + "\n", "lines.jsonl"), Small).Count);
    }

    [Theory]
    [InlineData("""{"examples": {"input": "q"}}""", "\"examples\" is not an array")]
    [InlineData("""{"examples": []}""", "\"examples\" is empty")]
    [InlineData("""{"examples": [{"input": "q", "target": "t"}, 5]}""", "examples[1] is not a JSON object")]
    [InlineData("""{"examples": [{"input": "q", "target": 5}]}""", "examples[0]: \"target\" is not a string")]
    [InlineData("""{"examples": [{"input": "q"}]}""", "examples[0]: no \"output\" field (also accepted: \"target\", \"completion\")")]
    [InlineData("""{"examples": [{"target": "t"}]}""", "examples[0]: no \"input\" field (also accepted: \"context\")")]
    public void A_bad_document_names_the_example(string text, string problem)
    {
        using var dir = new Fixtures.TempDir();
        Assert.EndsWith(problem, Refused(Write(dir, text, "task.json")));
        var e = Assert.Throws<ExampleFormatException>(() => ExampleFile.Parse(text, "task.json", Small));
        Assert.Equal($"task.json: {problem}", e.Message);
    }

    [Theory]
    [InlineData("{\"input\": \"a\", \"output\": \"1\"}\n[1]\n", "line 2 is not a JSON object")]
    [InlineData("{\"input\": \"a\", \"output\": \"1\"}\n{\"input\": \"b\", \"output\": 2}\n", "line 2: \"output\" is not a string")]
    [InlineData("{\"input\": \"a\"}\n", "line 1: no \"output\" field (also accepted: \"target\", \"completion\")")]
    [InlineData("{\"output\": \"a\"}\n", "line 1: no \"input\" field (also accepted: \"context\")")]
    [InlineData("\n\n", "the examples file holds no examples")]
    [InlineData("{\n  \"input\": \"a\"\n", "line 1 is not valid JSON")]
    public void A_bad_line_is_named_by_number(string text, string problem)
    {
        using var dir = new Fixtures.TempDir();
        Assert.Contains(problem, Refused(Write(dir, text)));
    }

    [Fact]
    public void The_example_count_limit_allows_exactly_the_limit()
    {
        using var dir = new Fixtures.TempDir();
        var three = string.Join("\n", Enumerable.Range(0, 3).Select(i => Line($"x{i}")));
        Assert.Equal(3, ExampleFile.Load(Write(dir, three, "three.jsonl"), Small).Count);
        Assert.Equal(3, ExampleFile.Parse(three, "three.jsonl", Small).Count);
        var four = three + "\n\n" + Line("x3") + "\n";
        const string tooMany = "holds more than 3 examples, the limit for one file (raise it with LORAHUB_MAX_EXAMPLES)";
        Assert.EndsWith(tooMany, Refused(Write(dir, four, "four.jsonl")));
        Assert.EndsWith(tooMany, Assert.Throws<ExampleFormatException>(() => ExampleFile.Parse(four, "four.jsonl", Small)).Message);

        var doc = (int n) => $$"""{"examples": [{{string.Join(", ", Enumerable.Range(0, n).Select(i => $$"""{"input": "{{i}}", "target": "t"}"""))}}]}""";
        Assert.Equal(3, ExampleFile.Parse(doc(3), "task.json", Small).Count);
        Assert.EndsWith(tooMany, Assert.Throws<ExampleFormatException>(() => ExampleFile.Parse(doc(4), "task.json", Small)).Message);
    }

    [Fact]
    public void The_line_limit_counts_bytes_and_allows_exactly_the_limit()
    {
        using var dir = new Fixtures.TempDir();
        var limit = new ExampleLimits(MaxLineBytes: 40, MaxExamples: 10);
        var fits = Line(new string('a', 40 - Line("").Length));          // exactly 40 bytes
        var over = Line(new string('a', 41 - Line("").Length));          // 41
        var wide = Line(new string('é', (40 - Line("").Length) / 2 + 1)); // 40 or fewer chars, but more than 40 bytes
        Assert.Equal(40, Encoding.UTF8.GetByteCount(fits));
        Assert.True(wide.Length <= 40 && Encoding.UTF8.GetByteCount(wide) > 40);
        const string tooLong = "line 2 is longer than 40 bytes, the limit for one example (raise it with LORAHUB_MAX_LINE_BYTES)";

        Assert.Single(ExampleFile.Load(Write(dir, fits + "\n", "fits.jsonl"), limit));
        Assert.Single(ExampleFile.Parse(fits + "\n", "fits.jsonl", limit));
        foreach (var bad in new[] { over, wide })
        {
            var text = fits + "\n" + bad + "\n";
            Assert.EndsWith(tooLong, Refused(Write(dir, text, "bad.jsonl"), limit));
            Assert.EndsWith(tooLong, Assert.Throws<ExampleFormatException>(() => ExampleFile.Parse(text, "bad.jsonl", limit)).Message);
        }
        // In a document the limit applies to each example's text.
        var doc = $$"""{"examples": [{"input": "{{new string('q', 41)}}", "target": "t"}]}""";
        Assert.EndsWith("examples[0] is longer than 40 characters, the limit for one example (raise it with LORAHUB_MAX_LINE_BYTES)",
            Assert.Throws<ExampleFormatException>(() => ExampleFile.Parse(doc, "task.json", limit)).Message);
        var outputDoc = $$"""{"examples": [{"input": "q", "target": "{{new string('t', 41)}}"}]}""";
        Assert.Throws<ExampleFormatException>(() => ExampleFile.Parse(outputDoc, "task.json", limit));
        Assert.Single(ExampleFile.Parse($$"""{"examples": [{"input": "{{new string('q', 40)}}", "target": "t"}]}""", "task.json", limit));
        Assert.Single(ExampleFile.Parse($$"""{"examples": [{"input": "q", "target": "{{new string('t', 40)}}"}]}""", "task.json", limit));
    }

    [Fact]
    public void A_bom_before_a_one_line_document_and_a_blank_first_line_are_read_as_written()
    {
        using var dir = new Fixtures.TempDir();
        var doc = new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes("""{"examples": [{"input": "q", "target": "t"}]}""")).ToArray();
        Assert.Equal([new Example("q", "t")], ExampleFile.Load(Write(dir, doc, "bom.json"), Small));
        Assert.Equal([new Example("a", "o"), new Example("b", "o")], ExampleFile.Load(Write(dir, "\n" + Line("a") + "\n" + Line("b") + "\n", "blank.jsonl"), Small));
    }

    [Fact]
    public void A_document_whose_first_line_is_over_the_line_limit_is_still_read_whole()
    {
        using var dir = new Fixtures.TempDir();
        var limit = new ExampleLimits(MaxLineBytes: 50, MaxExamples: 10);
        var doc = """{"examples": [{"input": "q1", "target": "t1"}, {"input": "q2", "target": "t2"}]}""" + "\n";
        Assert.Equal(2, ExampleFile.Load(Write(dir, doc, "task.json"), limit).Count);
    }

    [Fact]
    public void Invalid_utf8_names_its_line_and_byte()
    {
        using var dir = new Fixtures.TempDir();
        var lines = Encoding.UTF8.GetBytes(Line("a") + "\n" + Line("b") + "\n");
        var bad = lines.ToArray();
        bad[Array.LastIndexOf(bad, (byte)'b')] = 0xFF;
        Assert.EndsWith("line 2 is not valid UTF-8 (invalid byte 0xff); save the file as UTF-8", Refused(Write(dir, bad)));

        var doc = Encoding.UTF8.GetBytes("{\"examples\": [\n{\"input\": \"q\", \"target\": \"t\"},\n{\"input\": \"X\", \"target\": \"t\"}\n]}\n");
        doc[Array.IndexOf(doc, (byte)'X')] = 0xFE;
        Assert.EndsWith("line 3 is not valid UTF-8 (invalid byte 0xfe); save the file as UTF-8", Refused(Write(dir, doc, "task.json")));
    }
}

/// <summary>The limits' environment variables are process-wide: these tests set them, so they run alone.</summary>
[CollectionDefinition(nameof(ExampleLimitsEnvironment), DisableParallelization = true)]
public sealed class ExampleLimitsEnvironment;

[Collection(nameof(ExampleLimitsEnvironment))]
public sealed class ExampleLimitsEnvironmentTests
{
    [Fact]
    public void The_environment_raises_or_lowers_the_limits_and_a_bad_value_is_named()
    {
        var (oldExamples, oldLine) = (Environment.GetEnvironmentVariable("LORAHUB_MAX_EXAMPLES"), Environment.GetEnvironmentVariable("LORAHUB_MAX_LINE_BYTES"));
        try
        {
            Environment.SetEnvironmentVariable("LORAHUB_MAX_EXAMPLES", null);
            Environment.SetEnvironmentVariable("LORAHUB_MAX_LINE_BYTES", null);
            Assert.Equal(new ExampleLimits(1 << 20, 100_000), ExampleLimits.Default);
            Environment.SetEnvironmentVariable("LORAHUB_MAX_EXAMPLES", "7");
            Environment.SetEnvironmentVariable("LORAHUB_MAX_LINE_BYTES", "123");
            Assert.Equal(new ExampleLimits(123, 7), ExampleLimits.Default);
            foreach (var bad in new[] { "0", "-5", "+5", "1e3", "many", " 5" })
            {
                Environment.SetEnvironmentVariable("LORAHUB_MAX_EXAMPLES", bad);
                Assert.Equal($"environment variable LORAHUB_MAX_EXAMPLES='{bad}' is not a positive integer",
                    Assert.Throws<ExampleFormatException>(() => ExampleLimits.Default).Message);
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("LORAHUB_MAX_EXAMPLES", oldExamples);
            Environment.SetEnvironmentVariable("LORAHUB_MAX_LINE_BYTES", oldLine);
        }
    }
}
