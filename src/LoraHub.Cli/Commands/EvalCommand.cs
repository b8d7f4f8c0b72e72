using System.CommandLine;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Models;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub eval`: exact match (strip, lower, "." removed on both sides, as the paper) of the base model or
/// the base with an adapter on a data file, with the predictions written as JSON lines.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var baseDir = Common.Base();
        var adapter = new Option<string?>("--adapter") { Description = "adapter folder (a composition or any PEFT LoRA module); none = base model" };
        var data = new Option<string>("--data") { Description = "JSON lines {\"input\",\"output\"} or a BBH task file", Required = true };
        var predictions = new Option<string>("--predictions") { Description = "where to write predictions (JSON lines)", DefaultValueFactory = _ => "predictions.jsonl" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "generation limit per example", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--batch-size") { Description = "examples generated together", DefaultValueFactory = _ => 32 };
        var format = Common.Format();
        var command = new Command("eval", "Exact match of the base model or an adapter on a data file.") { baseDir, adapter, data, predictions, maxNew, batch, format };
        command.SetAction(CliErrors.Guard(parse =>
        {
            OptionChecks.Range("--max-new-tokens", parse.GetValue(maxNew), 1, OptionChecks.MaxNewTokens);
            OptionChecks.Range("--batch-size", parse.GetValue(batch), 1, OptionChecks.MaxBatch);
            var set = ExampleFile.Load(parse.GetValue(data)!);
            var dir = parse.GetValue(baseDir)!;
            using var model = ModelLoader.Load(dir);
            var tokenizer = ModelLoader.LoadTokenizer(dir);
            var adapterDir = parse.GetValue(adapter);
            using var composed = adapterDir is null ? null : Common.Compose(model, [adapterDir], [1.0]);
            var results = Predictor.Predict(model, tokenizer, set, parse.GetValue(maxNew), parse.GetValue(batch));
            var score = results.Count(r => r.Correct) / (double)results.Count;

            var path = parse.GetValue(predictions)!;
            var tmp = path + ".tmp";
            File.WriteAllLines(tmp, results.Select(r => new JsonObject
            {
                ["input"] = r.Input, ["target"] = r.Truth, ["prediction"] = r.Output, ["correct"] = r.Correct,
            }.ToJsonString(Common.Json)));
            File.Move(tmp, path, overwrite: true);

            if (parse.GetValue(format) == "json")
                Common.WriteJson(new JsonObject { ["exact_match"] = score, ["correct"] = results.Count(r => r.Correct), ["total"] = results.Count, ["predictions"] = Path.GetFullPath(path) });
            else
                Console.WriteLine($"exact match {score:P1} ({results.Count(r => r.Correct)}/{results.Count}); predictions in {path}");
            return 0;
        }));
        return command;
    }
}
