using Xunit;

namespace LoraHub.Storage.Tests;

public sealed class HubNamesTests
{
    public static TheoryData<string> GoodNames => new()
    {
        "tiny-t5", "flan_t5_large-ag_news_subset", "task.jsonl", "task.error.json", "model-00001-of-00002.safetensors",
        "A", "9lives", "config.json", "v1.2.3", new string('a', 128),
    };

    public static TheoryData<string> HostileNames => new()
    {
        "", ".", "..", "../x", "a/../../b", "/abs", "a\\b", "%2e%2e", "x\0y", "x\ny", "x\ry", "tab\there", new string('a', 129),
        ".hidden", "-dash", "_under", "a..b", "ends.", "con", "NUL", "com1.json", "lpt9", "sp ace", "ü", "a:b", "a*b", "a?b",
        "a\"b", "a<b", "a|b", "name\u2028", "\u202e", "a/b",
    };

    public static TheoryData<string> GoodPaths => new()
    {
        "tiny-t5/config.json", "t/sub/dir/file.bin", "task.jsonl", string.Join('/', Enumerable.Repeat("d", 16)),
    };

    public static TheoryData<string> HostilePaths => new()
    {
        "", "/", "/abs", "/etc/passwd", "a/", "a//b", "a/./b", "a/../b", "../x", "a/../../b", "..\\x", "a\\b", "a/%2e%2e/b",
        "a/b\0", "a/b\nc", "a/.git/config", "C:/x", "a/con/b", string.Join('/', Enumerable.Repeat("d", 17)),
        new string('a', 100) + "/" + string.Join('/', Enumerable.Repeat(new string('b', 100), 10)),
    };

    [Theory]
    [MemberData(nameof(GoodNames))]
    public void Good_names_pass(string name)
    {
        Assert.True(HubNames.IsValidName(name));
        Assert.Equal(name, HubNames.ValidateName(name));
    }

    [Theory]
    [MemberData(nameof(HostileNames))]
    public void Hostile_names_fail_with_a_message_naming_the_input(string name)
    {
        Assert.False(HubNames.IsValidName(name));
        var e = Assert.Throws<HubNameException>(() => HubNames.ValidateName(name, "module name"));
        Assert.Contains("invalid hub module name", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\0', e.Message);
        // The input is quoted (escaped and cut when long).
        var shown = name.Length > 80 ? name[..80] : name;
        if (shown.All(c => !char.IsControl(c) && c != '\'' && c < 0x2000)) Assert.Contains($"'{shown}'", e.Message);
    }

    [Fact]
    public void Control_characters_are_escaped_in_messages()
    {
        var e = Assert.Throws<HubNameException>(() => HubNames.ValidateName("x\ny\0"));
        Assert.Contains("'x\\ny\\0'", e.Message);
        Assert.Contains("control character", e.Message);
    }

    [Fact]
    public void Long_inputs_are_cut_in_messages()
    {
        var e = Assert.Throws<HubNameException>(() => HubNames.ValidateName(new string('z', 5000)));
        Assert.Contains("(5000 characters)", e.Message);
        Assert.True(e.Message.Length < 300, e.Message);
    }

    [Theory]
    [MemberData(nameof(GoodPaths))]
    public void Good_paths_pass(string path) => Assert.Equal(path.Split('/'), HubNames.ValidatePath(path));

    [Theory]
    [MemberData(nameof(HostilePaths))]
    public void Hostile_paths_fail(string path)
    {
        Assert.False(HubNames.IsValidPath(path));
        var e = Assert.Throws<HubNameException>(() => HubNames.ValidatePath(path));
        Assert.StartsWith("invalid hub path", e.Message);
    }

    [Fact]
    public void Paths_are_checked_against_their_area()
    {
        Assert.Equal(["task.jsonl"], HubNames.ValidateAreaPath(HubArea.Examples, "task.jsonl"));
        Assert.Throws<HubNameException>(() => HubNames.ValidateAreaPath(HubArea.Examples, "sub/task.jsonl"));
        Assert.Equal(["m", "config.json"], HubNames.ValidateAreaPath(HubArea.Models, "m/config.json"));
        var e = Assert.Throws<HubNameException>(() => HubNames.ValidateAreaPath(HubArea.Adapters, "lorahub.json"));
        Assert.Contains("item/file", e.Message);
    }

    [Fact]
    public void Areas_markers_and_parsing()
    {
        Assert.Equal(["models", "modules", "examples", "adapters"], HubNames.Areas.Select(HubNames.AreaName));
        Assert.Equal("config.json", HubNames.CommitMarker(HubArea.Models));
        Assert.Equal("adapter_config.json", HubNames.CommitMarker(HubArea.Modules));
        Assert.Equal("lorahub.json", HubNames.CommitMarker(HubArea.Adapters));
        Assert.Null(HubNames.CommitMarker(HubArea.Examples));
        Assert.True(HubNames.TryParseArea("Modules", out var area));
        Assert.Equal(HubArea.Modules, area);
        Assert.False(HubNames.TryParseArea("model", out _));
    }
}
