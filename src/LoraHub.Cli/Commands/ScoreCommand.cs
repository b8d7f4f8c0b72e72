using System.CommandLine;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub score`: the LoraHub objective of a composition on examples. loss = mean over examples of each
/// example's mean token cross-entropy (EOS included); l1 = coefficient * mean |w| over the weight vector used
/// (a single --module without --weights is w = [1]; no modules means no weights and l1 = 0).
/// </summary>
internal static class ScoreCommand
{
    public static Command Create()
    {
        var baseDir = Common.Base();
        var examples = new Option<string>("--examples") { Description = "examples file: JSON lines {\"input\",\"output\"} or a BBH task file", Required = true };
        var modules = Common.Modules();
        var weights = Common.Weights();
        var l1 = new Option<double>("--l1") { Description = "L1 coefficient of the objective", DefaultValueFactory = _ => 0.05 };
        var batch = new Option<int>("--batch-size") { Description = "examples per forward pass", DefaultValueFactory = _ => 16 };
        var format = Common.Format();
        var dtype = Common.DType();
        var merge = Common.Merge();
        var command = new Command("score", "Score a composition of LoRA modules on examples (the LoraHub objective).")
        {
            baseDir, examples, modules, weights, l1, batch, format, dtype, merge,
        };
        command.SetAction(CliErrors.Guard(parse =>
        {
            var moduleDirs = parse.GetValue(modules) ?? [];
            var w = Common.ResolveWeights(moduleDirs, parse.GetValue(weights));
            OptionChecks.Range("--batch-size", parse.GetValue(batch), 1, OptionChecks.MaxBatch);
            OptionChecks.Finite("--l1", parse.GetValue(l1), 0, 1e6);
            var set = ExampleFile.Load(parse.GetValue(examples)!);
            var dir = parse.GetValue(baseDir)!;
            double[] losses;
            // The folder's model_type picks the family; each tokenizes examples its own way (FewShotFormat).
            using (var model = ModelLoader.Load(dir, Common.ParseDType(parse.GetValue(dtype)!)))
            {
                var tokenizer = ModelLoader.LoadTokenizer(dir);
                using var composed = Common.Compose(model, moduleDirs, w, MergeModes.Parse(parse.GetValue(merge)!));
                var tokenized = set.Select(e => model.Format.Tokenize(tokenizer, e.Input, e.Output)).ToList();
                losses = tokenized.Chunk(parse.GetValue(batch)).SelectMany(c => model.ExampleLosses(c)).ToArray();
            }
            // A composition that overflows gives NaN/Inf: an error saying so, never "loss NaN" with exit 0 (or a JSON crash).
            var nonFinite = losses.Select((x, i) => (Loss: x, Example: i + 1)).Where(p => !double.IsFinite(p.Loss)).ToList();
            if (nonFinite.Count > 0)
                throw new CompositionException($"the loss is not finite ({nonFinite[0].Loss}) for {nonFinite.Count} of {losses.Length} examples (first: example {nonFinite[0].Example}); the composition overflows (weights too large?)");
            var loss = losses.Average();
            var reg = w is null ? 0.0 : parse.GetValue(l1) * w.Average(Math.Abs);
            if (parse.GetValue(format) == "json")
            {
                Common.WriteJson(new JsonObject
                {
                    ["loss"] = loss,
                    ["l1"] = reg,
                    ["objective"] = loss + reg,
                    ["examples"] = new JsonArray(losses.Select(x => (JsonNode)new JsonObject { ["loss"] = x }).ToArray()),
                });
            }
            else
            {
                for (var i = 0; i < losses.Length; i++) Console.WriteLine($"example {i + 1,3}: loss {losses[i]:F6}");
                Console.WriteLine($"loss {loss:F6}  l1 {reg:F6}  objective {loss + reg:F6}");
            }
            return 0;
        }));
        return command;
    }
}
