using System.CommandLine;
using System.Text.Json.Nodes;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using LoraHub.Core.Tokenization;

namespace LoraHub.Cli.Commands;

/// <summary>`lorahub generate`: greedy output of the base model or a composition for one input.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var baseDir = Common.Base();
        var modules = Common.Modules();
        var weights = Common.Weights();
        var input = new Option<string>("--input") { Description = "input text", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "stop after this many tokens (EOS stops earlier)", DefaultValueFactory = _ => 64 };
        var format = Common.Format();
        var dtype = Common.DType();
        var merge = Common.Merge();
        var command = new Command("generate", "Greedy generation with the base model or a composition of LoRA modules.")
        {
            baseDir, modules, weights, input, maxNew, format, dtype, merge,
        };
        command.SetAction(CliErrors.Guard(parse =>
        {
            var moduleDirs = parse.GetValue(modules) ?? [];
            var w = Common.ResolveWeights(moduleDirs, parse.GetValue(weights));
            OptionChecks.Range("--max-new-tokens", parse.GetValue(maxNew), 1, OptionChecks.MaxNewTokens);
            var dir = parse.GetValue(baseDir)!;
            var dt = Common.ParseDType(parse.GetValue(dtype)!);
            var mode = MergeModes.Parse(parse.GetValue(merge)!);
            ITextTokenizer tokenizer;
            int[] ids;
            using (var model = ModelLoader.Load(dir, dt)) // reads config.json first: a wrong folder is reported as such
            using (Common.Compose(model, moduleDirs, w, mode))
            {
                tokenizer = ModelLoader.LoadTokenizer(dir);
                // Decoder-only models continue after bos + tokens(input); the prompt is not part of the output.
                ids = model.Greedy(model.Format.PromptIds(tokenizer, parse.GetValue(input)!), parse.GetValue(maxNew));
            }
            // The embedding may have rows past the tokenizer's vocabulary (32100..32127 in T5); they carry no text.
            var text = tokenizer.Decode(ids.Where(i => i < tokenizer.VocabSize));
            if (parse.GetValue(format) == "json")
                Common.WriteJson(new JsonObject { ["text"] = text, ["token_ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) });
            else
                Console.WriteLine(text);
            return 0;
        }));
        return command;
    }
}
