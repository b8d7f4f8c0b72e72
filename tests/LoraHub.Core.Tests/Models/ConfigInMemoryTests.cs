using System.Text.Json.Nodes;
using LoraHub.Core.Models;
using Xunit;

namespace LoraHub.Core.Tests.Models;

/// <summary>Configs built in code (benchmarks, the toy worlds) hold CLR numbers, not parsed JSON: they read the same.</summary>
public class ConfigInMemoryTests
{
    [Fact]
    public void A_t5_config_built_in_code_reads_as_the_same_config_from_its_file()
    {
        var fromFile = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.TinyT5, "config.json")))!.AsObject();
        var inCode = new JsonObject();
        foreach (var (key, value) in fromFile)
        {
            inCode[key] = value switch
            {
                JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number && v.ToJsonString().All(char.IsDigit) => JsonValue.Create(int.Parse(v.ToJsonString())),
                JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number => JsonValue.Create(double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture)),
                _ => value?.DeepClone(),
            };
        }
        Assert.IsNotType<System.Text.Json.JsonElement>(inCode["vocab_size"]!.GetValue<object>());
        Assert.Equal(T5Config.FromJson(fromFile, "file"), T5Config.FromJson(inCode, "code"));
    }
}
