using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using Xunit;

namespace LoraHub.Core.Tests.Models;

/// <summary>
/// ConfigFields, the typed reads every config file goes through: each number is checked for type, finiteness and range
/// at the exact bounds, a bad one is one "&lt;file&gt;: &lt;field&gt; &lt;reason&gt;" message through the caller's exception
/// type, and configs built in code read like the same text parsed from a file.
/// </summary>
public sealed class ConfigFieldsTests
{
    private static ConfigFields Fields(string json) =>
        new(JsonNode.Parse(json, documentOptions: ConfigFields.StrictJson)!.AsObject(), "/m/config.json", m => new InvalidDataException(m));

    private static string Refused(Action read) => Assert.Throws<InvalidDataException>(read).Message;

    [Theory]
    [InlineData("1", 1)]
    [InlineData("8", 8)]
    [InlineData("1.0", 1)]
    [InlineData("8e0", 8)]
    [InlineData("-0.0", 0)]
    public void Integers_within_bounds_are_read_exactly(string raw, int expected) =>
        Assert.Equal(expected, Fields($$"""{"n": {{raw}}}""").Int("n", 0, 8));

    [Theory]
    [InlineData("9", "'n' is 9, outside [0, 8]")]
    [InlineData("-1", "'n' is -1, outside [0, 8]")]
    [InlineData("4.5", "'n' is 4.5, not an integer")]
    [InlineData("1e999", "'n' is Infinity, not a finite integer")]
    [InlineData("-1e999", "'n' is -Infinity, not a finite integer")]
    [InlineData("1e19", "'n' is 1E+19, outside [0, 8]")]
    [InlineData("-1e19", "'n' is -1E+19, outside [0, 8]")]
    [InlineData("9223372036854775807", "'n' is 9223372036854775807, outside [0, 8]")]
    [InlineData("\"4\"", "'n' is a string \"4\", not an integer")]
    [InlineData("true", "'n' is true, not an integer")]
    [InlineData("false", "'n' is false, not an integer")]
    [InlineData("[4]", "'n' is an array, not an integer")]
    [InlineData("{}", "'n' is an object, not an integer")]
    public void Integers_that_are_not_in_bounds_or_not_integers_are_named(string raw, string problem) =>
        Assert.Equal($"/m/config.json: {problem}", Refused(() => Fields($$"""{"n": {{raw}}}""").Int("n", 0, 8)));

    [Fact]
    public void Absent_and_null_integers_take_the_fallback_or_are_required()
    {
        var f = Fields("""{"n": null}""");
        Assert.Equal(5, f.Int("n", 0, 8, fallback: 5));
        Assert.Equal(5, f.Int("absent", 0, 8, fallback: 5));
        Assert.Null(f.OptInt("n", 0, 8));
        Assert.Null(f.OptInt("absent", 0, 8));
        Assert.Equal("/m/config.json: 'absent' is missing (an integer is required)", Refused(() => f.Int("absent", 0, 8)));
        Assert.False(f.Has("n"));
        Assert.False(f.Has("absent"));
        Assert.True(Fields("""{"n": 0}""").Has("n"));
        Assert.Equal("/m/config.json", f.Source);
    }

    [Fact]
    public void An_integer_read_from_a_list_is_named_by_the_callers_field()
    {
        var f = Fields("""{"ids": [3, "x", 2.5]}""");
        var list = f.Json["ids"]!.AsArray();
        Assert.Equal(3, f.IntValue(list[0]!, "'ids'[0]", 0, 10));
        Assert.Equal("/m/config.json: 'ids'[1] is a string \"x\", not an integer", Refused(() => f.IntValue(list[1]!, "'ids'[1]", 0, 10)));
        Assert.Equal("/m/config.json: 'ids'[2] is 2.5, not an integer", Refused(() => f.IntValue(list[2]!, "'ids'[2]", 0, 10)));
        Assert.Equal("/m/config.json: 'ids' is an array, not an integer", Refused(() => f.IntValue(f.Json["ids"]!, "'ids'", 0, 10)));
    }

    [Fact]
    public void Numbers_built_in_code_read_as_their_json_text()
    {
        var json = new JsonObject { ["i"] = 7, ["l"] = 7L, ["d"] = 7.0, ["f"] = 0.5f, ["big"] = 1e300, ["m"] = 2.5m };
        var f = new ConfigFields(json, "code", m => new InvalidDataException(m));
        Assert.Equal(7, f.Int("i", 0, 8));
        Assert.Equal(7, f.Int("l", 0, 8));
        Assert.Equal(7, f.Int("d", 0, 8));
        Assert.Equal(0.5, f.Double("f", 0, 1, fallback: 9));
        Assert.Equal(2.5, f.Double("m", 0, 8, fallback: 9));
        Assert.Equal(7.0, f.Double("i", 0, 8, fallback: 9));
        Assert.Equal("code: 'big' is 1E+300, outside [0, 8]", Refused(() => f.Int("big", 0, 8)));
        Assert.Equal("code: 'f' is 0.5, not an integer", Refused(() => f.Int("f", 0, 8)));
    }

    [Theory]
    [InlineData("0.5", 0.5)]
    [InlineData("1", 1.0)]
    [InlineData("1e-6", 1e-6)]
    [InlineData("null", 0.25)]
    public void Doubles_within_bounds_are_read(string raw, double expected) =>
        Assert.Equal(expected, Fields($$"""{"x": {{raw}}}""").Double("x", 0, 1, fallback: 0.25, exclusiveMin: true));

    [Theory]
    [InlineData("0", true, "'x' is 0, outside (0, 1]")]
    [InlineData("-1e-300", false, "'x' is -1E-300, outside [0, 1]")]
    [InlineData("1.0000001", false, "'x' is 1.0000001, outside [0, 1]")]
    [InlineData("1e999", false, "'x' is Infinity, not a finite number")]
    [InlineData("\"NaN\"", false, "'x' is a string \"NaN\", not a number")]
    [InlineData("[0.5]", false, "'x' is an array, not a number")]
    [InlineData("true", false, "'x' is true, not a number")]
    public void Doubles_out_of_bounds_or_not_numbers_are_named(string raw, bool exclusiveMin, string problem) =>
        Assert.Equal($"/m/config.json: {problem}", Refused(() => Fields($$"""{"x": {{raw}}}""").Double("x", 0, 1, fallback: 0.5, exclusiveMin)));

    [Fact]
    public void Zero_is_inside_an_inclusive_lower_bound()
    {
        Assert.Equal(0.0, Fields("""{"x": 0}""").Double("x", 0, 1, fallback: 0.5));
        Assert.Null(Fields("""{}""").OptDouble("x", 0, 1));
    }

    [Fact]
    public void Booleans_and_strings_are_only_what_they_say()
    {
        var f = Fields("""{"t": true, "f": false, "s": "silu", "n": null, "one": 1, "word": "yes"}""");
        Assert.True(f.Bool("t", false));
        Assert.False(f.Bool("f", true));
        Assert.True(f.Bool("n", true));
        Assert.False(f.Bool("absent", false));
        Assert.Equal("/m/config.json: 'one' is the number 1, not true or false", Refused(() => f.Bool("one", false)));
        Assert.Equal("/m/config.json: 'word' is a string \"yes\", not true or false", Refused(() => f.Bool("word", false)));

        Assert.Equal("silu", f.String("s"));
        Assert.Null(f.String("n"));
        Assert.Null(f.String("absent"));
        Assert.Equal("/m/config.json: 't' is true, not a string", Refused(() => f.String("t")));
        Assert.Equal("/m/config.json: 'one' is the number 1, not a string", Refused(() => f.String("one")));
    }

    [Fact]
    public void Kinds_describe_the_value_briefly()
    {
        Assert.Equal("null", ConfigFields.Kind(null));
        Assert.Equal("an array", ConfigFields.Kind(new JsonArray()));
        Assert.Equal("an object", ConfigFields.Kind(new JsonObject()));
        Assert.Equal("a string \"abc\"", ConfigFields.Kind(JsonValue.Create("abc")));
        var forty = new string('x', 40);
        Assert.Equal($"a string \"{forty}\"", ConfigFields.Kind(JsonValue.Create(forty)));
        Assert.Equal($"a string \"{forty}…\"", ConfigFields.Kind(JsonValue.Create(forty + "y")));
        Assert.Equal("true", ConfigFields.Kind(JsonValue.Create(true)));
        Assert.Equal("false", ConfigFields.Kind(JsonValue.Create(false)));
        Assert.Equal("the number 2.5", ConfigFields.Kind(JsonNode.Parse("2.5")));
        Assert.Equal("the number 1E+300", ConfigFields.Kind(JsonNode.Parse("1e300")));
    }

    [Fact]
    public void Repeated_keys_and_deep_nesting_are_refused_when_parsed()
    {
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => JsonNode.Parse("""{"a": 1, "a": 2}""", documentOptions: ConfigFields.StrictJson));
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => JsonNode.Parse(new string('[', 65) + new string(']', 65), documentOptions: ConfigFields.StrictJson));
        Assert.NotNull(JsonNode.Parse(new string('[', 64) + new string(']', 64), documentOptions: ConfigFields.StrictJson));
    }
}
