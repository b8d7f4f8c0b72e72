using LoraHub.Core.Evaluation;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LoraHub.Core.Composition;
using LoraHub.Core.Optimization;

namespace LoraHub.Experiments.Bbh;

/// <summary>How a BIG-Bench Hard run is done; the paper's protocol by default (5 shots, 5 seeds, K = 20, 40 evaluations).</summary>
public sealed record BbhSettings
{
    public int Shots { get; init; } = 5;
    public IReadOnlyList<int> Seeds { get; init; } = [1, 2, 3, 4, 5];
    public int Select { get; init; } = 20;
    public int Budget { get; init; } = 40;
    public string Optimizer { get; init; } = "cobyla";
    /// <summary>Score only the first N scored examples of each task (quick runs); null scores them all.</summary>
    public int? Limit { get; init; }
    /// <summary>Generation limit; 128 covers the longest BBH target (word_sorting) with the T5 tokenizer.</summary>
    public int MaxNewTokens { get; init; } = 128;
    public int BatchSize { get; init; } = 16;
    /// <summary>Run the in-context-learning baseline too.</summary>
    public bool Icl { get; init; } = true;

    public void Validate(int poolSize, string poolDescription = "the module pool")
    {
        if (Shots < 1) throw new BbhException($"--shots must be at least 1 (got {Shots})");
        if (Seeds.Count == 0) throw new BbhException("--seeds is empty: give at least one seed");
        if (Seeds.Distinct().Count() != Seeds.Count) throw new BbhException($"--seeds repeats a seed ({string.Join(",", Seeds)})");
        if (Budget < 1) throw new BbhException($"--budget must be at least 1 evaluation (got {Budget})");
        if (Select < 1) throw new BbhException($"--select must be at least 1 (got {Select})");
        if (Limit is < 1) throw new BbhException($"--limit must be at least 1 (got {Limit})");
        if (MaxNewTokens < 1) throw new BbhException($"--max-new-tokens must be at least 1 (got {MaxNewTokens})");
        if (BatchSize < 1) throw new BbhException($"--batch-size must be at least 1 (got {BatchSize})");
        if (!Optimizers.Names.Contains(Optimizer))
            throw new BbhException($"unknown optimizer '{Optimizer}' (known: {string.Join(", ", Optimizers.Names)})");
        if (poolSize == 0) throw new CompositionException($"{poolDescription} holds no LoRA modules (folders with adapter_config.json)");
        if (Select > poolSize)
            throw new CompositionException($"--select {Select} is larger than {poolDescription} ({poolSize} module{(poolSize == 1 ? "" : "s")}); pass --select {poolSize} or fewer, or a bigger pool");
    }
}

/// <summary>
/// Everything that decides a task's numbers. Stored in every task file: a finished task is reused on the next run
/// only when its protocol is the same, so a resumed run never mixes settings.
/// </summary>
public sealed record BbhProtocol
{
    public int Shots { get; init; }
    public IReadOnlyList<int> Seeds { get; init; } = [];
    public int Select { get; init; }
    public int Budget { get; init; }
    public string Optimizer { get; init; } = "";
    public int? Limit { get; init; }
    public int MaxNewTokens { get; init; }
    public bool Icl { get; init; }
    public string BaseModel { get; init; } = "";
    public IReadOnlyList<string> Pool { get; init; } = [];
    public string Split { get; init; } = "";
    public string Prompt { get; init; } = "";
    public string Metric { get; init; } = "";

    public static BbhProtocol From(BbhSettings s, string baseModel, IReadOnlyList<ModuleRef> pool) => new()
    {
        Shots = s.Shots,
        Seeds = s.Seeds.ToList(),
        Select = s.Select,
        Budget = s.Budget,
        Optimizer = s.Optimizer,
        Limit = s.Limit,
        MaxNewTokens = s.MaxNewTokens,
        Icl = s.Icl,
        BaseModel = baseModel,
        Pool = pool.Select(m => m.Name).ToList(),
        Split = $"the first {s.Shots} examples of each task file are composed from (and are the ICL shots); the later ones are scored" + (s.Limit is { } n ? $" (the first {n} of them)" : ""),
        Prompt = BbhPrompt.Description,
        Metric = "exact match after strip(), lower() and removing \".\" on both sides",
    };

    /// <summary>The fields whose values differ from another protocol, as "name: theirs -> ours".</summary>
    public IReadOnlyList<string> Differences(BbhProtocol other)
    {
        var mine = JsonSerializer.SerializeToNode(this, BbhJson.Options)!.AsObject();
        var theirs = JsonSerializer.SerializeToNode(other, BbhJson.Options)!.AsObject();
        var diffs = new List<string>();
        foreach (var (key, value) in mine)
        {
            var old = theirs[key];
            if (JsonNode.DeepEquals(value, old)) continue;
            diffs.Add(key == "pool"
                ? $"pool: {other.Pool.Count} modules -> {Pool.Count} modules{(other.Pool.Count == Pool.Count ? " (different names)" : "")}"
                : $"{key}: {Show(old)} -> {Show(value)}");
        }
        return diffs;
    }

    private static string Show(JsonNode? node) => node switch
    {
        null => "none",
        JsonArray a => string.Join(",", a.Select(x => x?.ToJsonString())),
        _ => node.ToJsonString(),
    };
}

/// <summary>One scored example's prediction; <see cref="Index"/> is its position in the task file.</summary>
public sealed record BbhPrediction(int Index, string Target, string Output, bool Correct);

/// <summary>Exact match of one method on a task's scored examples.</summary>
public sealed record BbhScore
{
    public double ExactMatch { get; init; }
    public int Correct { get; init; }
    public int Total { get; init; }
    public double Seconds { get; init; }
    public IReadOnlyList<BbhPrediction> Predictions { get; init; } = [];
}

/// <summary>LoraHub with one seed: the seed chose the module subset (and seeds the optimizer).</summary>
public sealed record BbhSeedResult
{
    public int Seed { get; init; }
    public IReadOnlyList<string> Modules { get; init; } = [];
    public double[] Weights { get; init; } = [];
    public double BestObjective { get; init; }
    public double BestLoss { get; init; }
    public int Evaluations { get; init; }
    public double ComposeSeconds { get; init; }
    public IReadOnlyList<string> Warnings { get; init; } = [];
    public BbhScore Score { get; init; } = new();
}

/// <summary>LoraHub over the seeds: the paper's "average" and "best" columns are the mean and the maximum of the per-seed exact match.</summary>
public sealed record BbhLoraHubResult
{
    public IReadOnlyList<BbhSeedResult> Seeds { get; init; } = [];
    public double Mean { get; init; }
    public double Best { get; init; }
    public int BestSeed { get; init; }

    public static BbhLoraHubResult Of(IReadOnlyList<BbhSeedResult> seeds)
    {
        var best = seeds.MaxBy(s => s.Score.ExactMatch)!; // ties: the first seed
        return new BbhLoraHubResult { Seeds = seeds, Mean = seeds.Average(s => s.Score.ExactMatch), Best = best.Score.ExactMatch, BestSeed = best.Seed };
    }
}

/// <summary>Tokens per scored example for LoraHub (the input alone) and ICL (the few-shot prompt and the input).</summary>
public sealed record BbhTokens
{
    public int Examples { get; init; }
    [JsonPropertyName("lorahub")] public double LoraHub { get; init; }
    public double Icl { get; init; }

    public static BbhTokens Of(BbhTokenCount c) => new() { Examples = c.Examples, LoraHub = c.LoraHub, Icl = c.Icl };
}

/// <summary>OUT/tasks/{task}.json: one finished task. Written atomically, last, so its presence means "done".</summary>
public sealed record BbhTaskResult
{
    public string Format { get; init; } = "lorahub.net/bbh-task@1";
    public string Task { get; init; } = "";
    public BbhProtocol Protocol { get; init; } = new();
    public int Examples { get; init; }
    public int[] FewShotIndices { get; init; } = [];
    public int FirstScored { get; init; }
    public int Scored { get; init; }
    public BbhTokens Tokens { get; init; } = new();
    public BbhScore ZeroShot { get; init; } = new();
    public BbhScore? Icl { get; init; }
    [JsonPropertyName("lorahub")] public BbhLoraHubResult LoraHub { get; init; } = new();
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset FinishedAt { get; init; }
    public double Seconds { get; init; }

    public BbhRow Row() => new()
    {
        Task = Task,
        Scored = Scored,
        ZeroShot = ZeroShot.ExactMatch,
        Icl = Icl?.ExactMatch,
        LoraHubMean = LoraHub.Mean,
        LoraHubBest = LoraHub.Best,
        Seeds = LoraHub.Seeds.Select(s => new BbhSeedSummary(s.Seed, s.Score.ExactMatch, s.Modules, s.Weights)).ToList(),
        TokensLoraHub = Tokens.LoraHub,
        TokensIcl = Tokens.Icl,
    };
}

public sealed record BbhSeedSummary(int Seed, double ExactMatch, IReadOnlyList<string> Modules, double[] Weights);

/// <summary>One line of the results table (exact match as a fraction in [0, 1]).</summary>
public sealed record BbhRow
{
    public string Task { get; init; } = "";
    public int Scored { get; init; }
    public double ZeroShot { get; init; }
    public double? Icl { get; init; }
    [JsonPropertyName("lorahub_mean")] public double LoraHubMean { get; init; }
    [JsonPropertyName("lorahub_best")] public double LoraHubBest { get; init; }
    public IReadOnlyList<BbhSeedSummary>? Seeds { get; init; }
    [JsonPropertyName("tokens_lorahub")] public double TokensLoraHub { get; init; }
    public double TokensIcl { get; init; }

    /// <summary>The average row: each column's mean over the tasks (each task counts once, as in the paper's table).</summary>
    public static BbhRow Average(IReadOnlyList<BbhRow> rows) => new()
    {
        Task = "average",
        Scored = rows.Sum(r => r.Scored),
        ZeroShot = rows.Average(r => r.ZeroShot),
        Icl = rows.All(r => r.Icl is not null) ? rows.Average(r => r.Icl!.Value) : null,
        LoraHubMean = rows.Average(r => r.LoraHubMean),
        LoraHubBest = rows.Average(r => r.LoraHubBest),
        TokensLoraHub = rows.Average(r => r.TokensLoraHub),
        TokensIcl = rows.Average(r => r.TokensIcl),
    };
}

/// <summary>OUT/results.json: the table over the tasks of the run, with the average row.</summary>
public sealed record BbhResults
{
    public string Format { get; init; } = "lorahub.net/bbh@1";
    public BbhProtocol Protocol { get; init; } = new();
    /// <summary>False while tasks of the run are still to do (results are rewritten after every task).</summary>
    public bool Complete { get; init; }
    public IReadOnlyList<string> Pending { get; init; } = [];
    public IReadOnlyList<BbhRow> Tasks { get; init; } = [];
    public BbhRow? Average { get; init; }

    public static BbhResults Of(BbhProtocol protocol, IReadOnlyList<BbhTaskResult> done, IReadOnlyList<string> pending)
    {
        var rows = done.Select(t => t.Row()).ToList();
        return new BbhResults
        {
            Protocol = protocol,
            Complete = pending.Count == 0,
            Pending = pending,
            Tasks = rows,
            Average = rows.Count == 0 ? null : BbhRow.Average(rows),
        };
    }
}

public static class BbhJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    public static T Load<T>(string path) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), Options) ?? throw new BbhException($"{path}: empty file");
        }
        catch (JsonException e)
        {
            throw new BbhException($"{path}: not a readable {typeof(T).Name} ({e.Message}); delete it to redo that task");
        }
    }

    /// <summary>Writes to a temporary sibling and renames it into place: readers see the old file or the new one, never half.</summary>
    public static void WriteAtomic(string path, string text) => WriteAtomic(path, System.Text.Encoding.UTF8.GetBytes(text));

    public static void WriteAtomic(string path, byte[] bytes)
    {
        var tmp = $"{path}.tmp-{Guid.NewGuid():N}";
        try
        {
            File.WriteAllBytes(tmp, bytes);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
