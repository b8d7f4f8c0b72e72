using System.Text.Json;
using System.Text.Json.Nodes;
using LoraHub.Core.Composition;
using LoraHub.Core.Optimization;
using LoraHub.Functions.Contracts;
using LoraHub.Storage;

namespace LoraHub.Functions.Requests;

/// <summary>
/// Composition settings as users write them (the sidecar examples/{task}.json, or the body of POST
/// /api/compositions): snake_case keys, all optional. Unknown keys are errors, so a typo does not silently fall
/// back to a default.
/// </summary>
public static class CompositionSpec
{
    /// <summary>The settings keys: base, modules (list) or k, budget, optimizer, seed, l1 and the finer ones.</summary>
    public static readonly IReadOnlyList<string> SettingKeys =
        ["base", "modules", "k", "selection", "budget", "optimizer", "merge", "seed", "l1", "population", "chunk_size", "max_tokens", "lower", "upper", "initial_step"];

    /// <summary>Reads a sidecar file's JSON text: a JSON object of settings.</summary>
    public static JsonObject ParseSettingsFile(string text, string file)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new RequestException($"{file} is not valid JSON: {e.Message}", file, e.LineNumber is { } l ? (int)l + 1 : null);
        }
        return node as JsonObject ?? throw new RequestException($"{file} must hold a JSON object of settings ({string.Join(", ", SettingKeys)})", file);
    }

    /// <summary>
    /// Builds the request from settings (null: all defaults), checking types and ranges; extraKeys are keys the caller
    /// handles itself (task, examples...). Hub checks (does the model exist?) are <see cref="CheckAgainstHubAsync"/>.
    /// </summary>
    public static CompositionRequest Build(string task, JsonObject? settings, IReadOnlyList<Example> examples, string source, string where,
        LoraHubOptions limits, IReadOnlyCollection<string>? extraKeys = null)
    {
        settings ??= [];
        foreach (var (key, _) in settings)
        {
            if (!SettingKeys.Contains(key) && extraKeys?.Contains(key) != true)
                throw new RequestException($"{where}: unknown setting \"{key}\" (known: {string.Join(", ", SettingKeys.Concat(extraKeys ?? []))})", where);
        }
        if (settings["modules"] is not null && settings["k"] is not null)
            throw new RequestException($"{where}: give either \"modules\" (a list of names) or \"k\" (how many to pick at random), not both", where);
        var modules = StringList(settings, "modules", where);
        if (modules is { Count: 0 }) throw new RequestException($"{where}: \"modules\" is empty", where);
        if (modules is not null)
        {
            foreach (var m in modules) Name(m, "module name", where);
            var duplicate = modules.GroupBy(m => m).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null) throw new RequestException($"{where}: module \"{duplicate.Key}\" is listed twice", where);
        }
        // Types here; ranges and names once, in Core (the CLI checks the same settings the same way).
        var defaults = new CompositionSettings();
        var composition = new CompositionSettings
        {
            // A named list is composed whole, in its order.
            K = modules?.Count ?? Int(settings, "k", where),
            Selection = Str(settings, "selection", where) ?? defaults.Selection,
            Budget = Int(settings, "budget", where) ?? defaults.Budget,
            Optimizer = Str(settings, "optimizer", where) ?? defaults.Optimizer,
            Merge = Str(settings, "merge", where) ?? defaults.Merge,
            Seed = Int(settings, "seed", where) ?? defaults.Seed,
            L1 = Num(settings, "l1", where) ?? defaults.L1,
            Population = Int(settings, "population", where),
            MaxTokens = Int(settings, "max_tokens", where) ?? defaults.MaxTokens,
            Lower = Num(settings, "lower", where) ?? defaults.Lower,
            Upper = Num(settings, "upper", where) ?? defaults.Upper,
            InitialStep = Num(settings, "initial_step", where) ?? defaults.InitialStep,
        };
        try
        {
            composition.Validate();
        }
        catch (CompositionException e)
        {
            throw new RequestException($"{where}: {e.Message}", where);
        }
        if (modules is not null && composition.Selection != "random")
            throw new RequestException($"{where}: \"selection\" picks modules from the pool; it cannot be combined with a \"modules\" list", where);
        if (composition.Budget > limits.MaxBudget)
            throw new RequestException($"{where}: budget = {composition.Budget} is outside [1, {limits.MaxBudget}] (this app's LoraHub:MaxBudget)", where);
        var chunkSize = Int(settings, "chunk_size", where) ?? 4;
        if (chunkSize is < 1 or > 1024) throw new RequestException($"{where}: chunk_size = {chunkSize} is outside [1, 1024]", where);
        if (examples.Count > limits.MaxExamples)
            throw new RequestException($"{where}: {examples.Count} examples (at most {limits.MaxExamples})", where);
        return new CompositionRequest
        {
            Task = task,
            BaseModel = Str(settings, "base", where) is { } b ? Name(b, "base model name", where) : "",
            Modules = modules,
            Settings = composition,
            ChunkSize = chunkSize,
            Examples = examples,
            Source = source,
        };
    }

    /// <summary>
    /// Checks the request against the hub: the base model exists (when none is named and the hub holds exactly one,
    /// that one), the named modules exist, K fits the pool. Returns the request with the base model filled in.
    /// </summary>
    public static async Task<CompositionRequest> CheckAgainstHubAsync(CompositionRequest request, IHubStore store, string where, CancellationToken ct)
    {
        var models = (await store.ListAsync(HubArea.Models, ct)).Select(m => m.Name).Order(StringComparer.Ordinal).ToList();
        if (request.BaseModel.Length == 0)
        {
            if (models.Count != 1)
                throw new RequestException(models.Count == 0
                    ? $"{where}: the hub has no base model (models/ is empty)"
                    : $"{where}: name the base model with \"base\" (the hub has {models.Count}: {string.Join(", ", models)})", where);
            request = request with { BaseModel = models[0] };
        }
        else if (!models.Contains(request.BaseModel, StringComparer.Ordinal))
        {
            throw new RequestException($"{where}: base model \"{request.BaseModel}\" is not in the hub (models/: {Known(models)})", where);
        }

        var pool = (await store.ListAsync(HubArea.Modules, ct)).Select(m => m.Name).Order(StringComparer.Ordinal).ToList();
        if (request.Modules is { } named)
        {
            var missing = named.Where(m => !pool.Contains(m, StringComparer.Ordinal)).ToList();
            if (missing.Count > 0)
                throw new RequestException($"{where}: {(missing.Count == 1 ? "module" : "modules")} {string.Join(", ", missing.Select(m => $"\"{m}\""))} not in the hub (modules/: {Known(pool)})", where);
        }
        else
        {
            if (pool.Count == 0) throw new RequestException($"{where}: the hub has no modules (modules/ is empty)", where);
            if (request.Settings.K > pool.Count) throw new RequestException($"{where}: cannot pick k = {request.Settings.K} modules from a pool of {pool.Count}", where);
        }
        return request;
    }

    private static string Known(IReadOnlyList<string> names) =>
        names.Count == 0 ? "none" : names.Count <= 10 ? string.Join(", ", names) : $"{string.Join(", ", names.Take(10))}, ... ({names.Count} in all)";

    internal static string Name(string name, string what, string where)
    {
        try
        {
            return HubNames.ValidateName(name, what);
        }
        catch (HubNameException e)
        {
            throw new RequestException($"{where}: {e.Message}", where);
        }
    }

    private static string? Str(JsonObject o, string key, string where) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => throw new RequestException($"{where}: \"{key}\" must be a string", where),
    };

    private static IReadOnlyList<string>? StringList(JsonObject o, string key, string where) => o[key] switch
    {
        null => null,
        JsonArray a => a.Select(x => x is JsonValue v && v.TryGetValue(out string? s) ? s
            : throw new RequestException($"{where}: \"{key}\" must be a list of strings", where)).ToList(),
        _ => throw new RequestException($"{where}: \"{key}\" must be a list of strings", where),
    };

    private static int? Int(JsonObject o, string key, string where)
    {
        if (o[key] is null) return null;
        if (o[key] is not JsonValue v || !v.TryGetValue(out double d) || d != Math.Floor(d))
            throw new RequestException($"{where}: \"{key}\" must be a whole number", where);
        if (d < int.MinValue || d > int.MaxValue) throw new RequestException($"{where}: \"{key}\" = {d} is outside [{int.MinValue}, {int.MaxValue}]", where);
        return (int)d;
    }

    private static double? Num(JsonObject o, string key, string where)
    {
        if (o[key] is null) return null;
        if (o[key] is not JsonValue v || !v.TryGetValue(out double d) || !double.IsFinite(d))
            throw new RequestException($"{where}: \"{key}\" must be a number", where);
        return d;
    }
}
