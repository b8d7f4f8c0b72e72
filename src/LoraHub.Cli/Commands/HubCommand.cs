using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Storage;

namespace LoraHub.Cli.Commands;

/// <summary>
/// `lorahub hub push|list`: moves base models, LoRA modules and example files into a hub (a local folder or Azure Blob
/// Storage, e.g. "UseDevelopmentStorage=true" for Azurite) and lists what a hub holds.
/// </summary>
internal static class HubCommand
{
    public static Command Create() => new("hub", "Move models, modules and examples into a hub (a folder or Azure Blob Storage) and list it.")
    {
        Push(),
        List(),
    };

    private static Option<string> Hub() => new("--hub")
    {
        Description = "the hub: a folder, a blob connection string (\"UseDevelopmentStorage=true\" for Azurite), or a blob service URL (https://ACCOUNT.blob.core.windows.net, signed in with Entra ID: az login)",
        Required = true,
    };

    private static Command Push()
    {
        var hub = Hub();
        var model = new Option<string?>("--model") { Description = "a base model folder (config.json, weights, tokenizer) to put in models/" };
        var module = new Option<string?>("--module") { Description = "a PEFT LoRA module folder (adapter_config.json, adapter_model.*) to put in modules/" };
        var pool = new Option<string?>("--modules") { Description = "a folder of module folders: each one with adapter_config.json goes to modules/" };
        var examples = new Option<string?>("--examples") { Description = "an examples file (JSON lines {\"input\",\"output\"}) to put in examples/ as {task}.jsonl, with its {task}.json sidecar if there is one" };
        var name = new Option<string?>("--name") { Description = "name in the hub (default: the folder's or file's name); the task name for --examples" };
        var format = Common.Format();
        var command = new Command("push", "Upload a model, a module, a pool of modules or an examples file into a hub.") { hub, model, module, pool, examples, name, format };
        command.SetAction(CliErrors.Guard(parse =>
        {
            var sources = new (string Flag, string? Value)[] { ("--model", parse.GetValue(model)), ("--module", parse.GetValue(module)), ("--modules", parse.GetValue(pool)), ("--examples", parse.GetValue(examples)) }
                .Where(s => s.Value is not null).ToList();
            if (sources.Count != 1)
                throw new UsageException(sources.Count == 0
                    ? "say what to push: --model DIR, --module DIR, --modules POOLDIR or --examples FILE"
                    : $"push one thing at a time ({string.Join(", ", sources.Select(s => s.Flag))} given)");
            var (flag, path) = (sources[0].Flag, sources[0].Value!);
            var explicitName = parse.GetValue(name);
            if (flag == "--modules" && explicitName is not null)
                throw new UsageException("--name does not go with --modules: each module keeps its folder's name");

            // Everything is checked before the first upload.
            var plan = flag switch
            {
                "--model" => [PlanFolder(HubArea.Models, path, explicitName, "config.json")],
                "--module" => [PlanModule(path, explicitName)],
                "--modules" => PlanPool(path),
                _ => PlanExamples(path, explicitName),
            };
            var store = OpenHub(parse.GetValue(hub)!);
            var pushed = new JsonArray();
            foreach (var step in plan)
            {
                step.Upload(store).GetAwaiter().GetResult();
                pushed.Add(new JsonObject { ["area"] = HubNames.AreaName(step.Area), ["name"] = step.Name, ["files"] = step.Files, ["bytes"] = step.Bytes });
                if (parse.GetValue(format) != "json")
                    Console.WriteLine($"pushed {HubNames.AreaName(step.Area)}/{step.Name} ({step.Files} file{(step.Files == 1 ? "" : "s")}, {Size(step.Bytes)})");
            }
            if (parse.GetValue(format) == "json")
                Common.WriteJson(new JsonObject { ["hub"] = store.Kind, ["pushed"] = pushed });
            return 0;
        }));
        return command;
    }

    private static Command List()
    {
        var hub = Hub();
        var area = new Option<string?>("--area") { Description = "only this area: models, modules, examples or adapters" };
        var format = Common.Format();
        var command = new Command("list", "List the models, modules, examples and adapters of a hub.") { hub, area, format };
        command.SetAction(CliErrors.Guard(parse =>
        {
            IReadOnlyList<HubArea> areas = HubNames.Areas;
            if (parse.GetValue(area) is { } only)
            {
                if (!HubNames.TryParseArea(only, out var a)) throw new UsageException($"--area '{only}' is not one of models, modules, examples, adapters");
                areas = [a];
            }
            var location = parse.GetValue(hub)!;
            var store = OpenHub(location);
            // Listing a folder that is not there is a mistake (a typo), not an empty hub; push creates the folder.
            if (!HubStoreFactory.IsBlobConnectionString(location) && !Directory.Exists(location))
                throw new DirectoryNotFoundException($"--hub {location} does not exist (push something to create a hub there)");
            var items = new JsonArray();
            var lines = new List<string>();
            foreach (var current in areas)
            {
                foreach (var item in store.ListAsync(current).GetAwaiter().GetResult())
                {
                    items.Add(new JsonObject
                    {
                        ["area"] = HubNames.AreaName(current),
                        ["name"] = item.Name,
                        ["size"] = item.Size,
                        ["lastModified"] = item.LastModified.ToUniversalTime().ToString("O"),
                        ["etag"] = item.ETag,
                    });
                    lines.Add($"{HubNames.AreaName(current) + "/" + item.Name,-60} {Size(item.Size),10}  {item.LastModified.ToUniversalTime():yyyy-MM-dd HH:mm:ss}Z");
                }
            }
            if (parse.GetValue(format) == "json")
                Common.WriteJson(new JsonObject { ["hub"] = store.Kind, ["items"] = items });
            else if (lines.Count == 0)
                Console.WriteLine("the hub is empty" + (areas.Count == 1 ? $" in {HubNames.AreaName(areas[0])}" : ""));
            else
                foreach (var line in lines) Console.WriteLine(line);
            return 0;
        }));
        return command;
    }

    private sealed record Step(HubArea Area, string Name, int Files, long Bytes, Func<IHubStore, Task> Upload);

    private static IHubStore OpenHub(string location)
    {
        if (string.IsNullOrWhiteSpace(location)) throw new UsageException("--hub is empty: give a folder or a blob connection string");
        if (!HubStoreFactory.IsBlobConnectionString(location) && File.Exists(location))
            throw new IOException($"--hub {location} is a file, not a hub folder");
        // A person is waiting: give up on an unreachable account after a few seconds, not the SDK's half minute.
        var options = new Azure.Storage.Blobs.BlobClientOptions();
        options.Retry.MaxRetries = 3;
        options.Retry.Delay = TimeSpan.FromSeconds(0.5);
        return HubStoreFactory.Create(location, HubStoreFactory.DefaultCacheRoot, options);
    }

    private static Step PlanFolder(HubArea area, string folder, string? name, string marker)
    {
        var full = Path.GetFullPath(folder);
        if (!Directory.Exists(full)) throw new UsageException($"{folder} is not a folder");
        var itemName = HubNames.ValidateItemName(area, name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(full)));
        var markerPath = Path.Combine(full, marker);
        if (!File.Exists(markerPath))
            throw new UsageException($"{folder} has no {marker}: it is not a {(area == HubArea.Models ? "model" : "module")} folder");
        try
        {
            using var _ = JsonDocument.Parse(File.ReadAllBytes(markerPath));
        }
        catch (JsonException e)
        {
            throw new UsageException($"{markerPath} is not valid JSON ({e.Message})");
        }
        // Refuses symbolic links and special files inside the folder (naming them) before anything is uploaded.
        var files = PushableFolder.Files(full);
        return new Step(area, itemName, files.Count, files.Sum(f => f.Size),
            store => store.PublishFolderAsync(area, itemName, full, marker));
    }

    private static Step PlanModule(string folder, string? name)
    {
        var step = PlanFolder(HubArea.Modules, folder, name, "adapter_config.json");
        if (!File.Exists(Path.Combine(folder, "adapter_model.safetensors")) && !File.Exists(Path.Combine(folder, "adapter_model.bin")))
            throw new UsageException($"{folder} has no adapter_model.safetensors or adapter_model.bin: it is not a module folder");
        return step;
    }

    private static List<Step> PlanPool(string pool)
    {
        if (!Directory.Exists(pool)) throw new UsageException($"{pool} is not a folder");
        var modules = Directory.EnumerateDirectories(pool)
            .Where(d => !HubNames.IsHidden(Path.GetFileName(d)) && File.Exists(Path.Combine(d, "adapter_config.json")))
            .Order(StringComparer.Ordinal)
            .ToList();
        // A module folder in the pool that is a link may lead anywhere: push it with --module if that is meant.
        if (modules.FirstOrDefault(d => new DirectoryInfo(d).LinkTarget is not null) is { } link)
            throw new UsageException($"{link} is a symbolic link (to {new DirectoryInfo(link).LinkTarget}): --modules does not follow links out of {pool}; push it with --module");
        if (modules.Count == 0) throw new UsageException($"{pool} holds no module folders (sub folders with adapter_config.json)");
        return modules.Select(d => PlanModule(d, null)).ToList();
    }

    private static List<Step> PlanExamples(string file, string? task)
    {
        PushableFolder.CheckFile(file); // a fifo would block the read below
        if (!File.Exists(file)) throw new UsageException($"{file} does not exist");
        var stem = Path.GetFileNameWithoutExtension(file);
        var taskName = task ?? stem;
        if (taskName.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)) taskName = taskName[..^".jsonl".Length];
        HubNames.ValidateName(taskName, "task name");
        var examples = ExampleFile.Load(file); // checks it: ExampleFormatException names the file, the line and the problem
        var bytes = File.ReadAllBytes(file);
        var isDocument = IsExamplesDocument(bytes);
        if (isDocument)
        {
            // A BIG-Bench Hard style {"examples": [...]} document: the hub holds JSON lines.
            var lines = examples.Select(e => new JsonObject { ["input"] = e.Input, ["output"] = e.Output }.ToJsonString(Common.Json) + "\n");
            bytes = System.Text.Encoding.UTF8.GetBytes(string.Concat(lines));
        }
        var steps = new List<Step>();
        // The sidecar (settings) goes first: a blob trigger on {task}.jsonl reads it when the examples arrive.
        var sidecar = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, stem + ".json");
        if (!isDocument && File.Exists(sidecar) && !string.Equals(Path.GetFullPath(sidecar), Path.GetFullPath(file), StringComparison.Ordinal))
        {
            PushableFolder.CheckFile(sidecar);
            var settings = File.ReadAllBytes(sidecar);
            try
            {
                if (JsonNode.Parse(settings) is not JsonObject) throw new UsageException($"{sidecar} (the settings sidecar) is not a JSON object");
            }
            catch (JsonException e)
            {
                throw new UsageException($"{sidecar} (the settings sidecar) is not valid JSON ({e.Message})");
            }
            steps.Add(new Step(HubArea.Examples, $"{taskName}.json", 1, settings.Length, store => store.WriteFileAsync(HubArea.Examples, $"{taskName}.json", settings)));
        }
        steps.Add(new Step(HubArea.Examples, $"{taskName}.jsonl", 1, bytes.Length, store => store.WriteFileAsync(HubArea.Examples, $"{taskName}.jsonl", bytes)));
        return steps;
    }

    private static bool IsExamplesDocument(byte[] bytes)
    {
        try
        {
            return JsonNode.Parse(bytes) is JsonObject obj && obj.ContainsKey("examples");
        }
        catch (JsonException)
        {
            return false; // JSON lines
        }
    }

    private static string Size(long bytes) => bytes switch
    {
        < 1024 => FormattableString.Invariant($"{bytes} B"),
        < 1024 * 1024 => FormattableString.Invariant($"{bytes / 1024.0:0.0} KiB"),
        < 1024L * 1024 * 1024 => FormattableString.Invariant($"{bytes / (1024.0 * 1024):0.0} MiB"),
        _ => FormattableString.Invariant($"{bytes / (1024.0 * 1024 * 1024):0.00} GiB"),
    };
}
