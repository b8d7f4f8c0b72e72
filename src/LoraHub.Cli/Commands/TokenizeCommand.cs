using System.CommandLine;
using System.Text.Json.Nodes;
using LoraHub.Core.Models;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub tokenize --model DIR --text TEXT` (--base is the same option, as the other verbs name the model folder):
/// the ids and pieces of a text with the model's own special tokens (T5 appends eos, Llama and Llama 3 prepend bos,
/// Qwen2 adds none).
/// </summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "--base")
        {
            Description = "model folder holding the tokenizer (spiece.model, tokenizer.model or tokenizer.json)",
            Required = true,
        };
        var text = new Option<string>("--text") { Description = "text to tokenize", Required = true };
        var format = Common.Format();
        var command = new Command("tokenize", "Tokenize a text with the model's tokenizer.") { model, text, format };
        command.SetAction(CliErrors.Guard(parse =>
        {
            var tokenizer = ModelLoader.LoadTokenizer(parse.GetValue(model)!);
            var encoding = tokenizer.Encode(parse.GetValue(text)!);
            if (parse.GetValue(format) == "json")
            {
                Common.WriteJson(new JsonObject
                {
                    ["ids"] = new JsonArray(encoding.Ids.Select(i => (JsonNode)i).ToArray()),
                    ["pieces"] = new JsonArray(encoding.Pieces.Select(p => (JsonNode)p).ToArray()),
                });
            }
            else
            {
                for (var i = 0; i < encoding.Ids.Count; i++) Console.WriteLine($"{encoding.Ids[i],6}  {encoding.Pieces[i]}");
            }
            return 0;
        }));
        return command;
    }
}
