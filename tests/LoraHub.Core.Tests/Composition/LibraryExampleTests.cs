using System.Runtime.CompilerServices;
using LoraHub.Core.Composition;
using LoraHub.Core.Models;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>The README's "LoraHub as a C# library" example, compiled here and run on the tiny fixtures.</summary>
public class LibraryExampleTests
{
    // README:begin
    static CompositionRecord ComposeTask(string baseDir, string moduleDir, string examplesFile, string outDir)
    {
        using var model = ModelLoader.Load(baseDir);                   // config.json + model.safetensors
        var tokenizer = ModelLoader.LoadTokenizer(baseDir);
        var pool = ModuleRef.Scan(moduleDir);                          // every PEFT LoRA folder inside
        var examples = ExampleFile.Load(examplesFile);                 // {"input": ..., "output": ...} per line
        var settings = new CompositionSettings { Seed = 1 };           // K = 20, 40 evaluations, L1 0.05
        using var result = new Composer(model, tokenizer).Compose(pool, examples, settings, Path.GetFileName(baseDir));
        CompositionOutput.Write(outDir, result, force: false);         // adapter_config.json, adapter_model.safetensors, lorahub.json
        return result.Record;
    }
    // README:end

    [Fact]
    public void The_readme_example_composes_and_writes_a_peft_adapter()
    {
        var root = Directory.CreateTempSubdirectory("lorahub-library-").FullName;
        try
        {
            var examples = Path.Combine(root, "task.jsonl");
            File.WriteAllLines(examples, [
                """{"input": "Is the sky blue? yes or no", "output": "yes"}""",
                """{"input": "Name a color: ", "output": "red"}""",
                """{"input": "question: what is two plus two? answer:", "output": "four"}""",
            ]);
            var output = Path.Combine(root, "adapter");
            var record = ComposeTask(Fixtures.TinyT5, Path.Combine(Fixtures.T5, "adapters"), examples, output);
            Assert.Equal(["lora_0", "lora_1", "lora_2"], record.Modules.Select(m => m.Name)); // a pool of 3 < K: composed whole, in order
            Assert.Equal(40, record.History.Count);
            Assert.True(record.Best!.Objective < record.History[0].Objective);
            foreach (var file in new[] { "adapter_config.json", "adapter_model.safetensors", "lorahub.json" })
                Assert.True(File.Exists(Path.Combine(output, file)), file);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void The_readme_shows_exactly_the_code_this_test_runs()
    {
        var code = ExampleCode();
        Assert.Contains(code, Normalize(File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"))));
        Assert.Contains(code, Normalize(File.ReadAllText(Path.Combine(RepositoryRoot(), "src", "LoraHub.Core", "README.md"))));
    }

    private static string ExampleCode([CallerFilePath] string self = "")
    {
        var lines = File.ReadAllLines(self);
        var begin = Array.FindIndex(lines, l => l.Trim() == "// README:begin");
        var end = Array.FindIndex(lines, l => l.Trim() == "// README:end");
        return Normalize(string.Join("\n", lines[(begin + 1)..end]));
    }

    /// <summary>Indentation aside: the README's block sits at column 0, the method here inside a class.</summary>
    private static string Normalize(string text) =>
        string.Join("\n", text.Replace("\r", "").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));

    private static string RepositoryRoot([CallerFilePath] string self = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(self)!, "..", "..", ".."));
}
