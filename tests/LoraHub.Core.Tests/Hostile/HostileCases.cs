using System.Text;
using static TorchSharp.torch;

namespace LoraHub.Core.Tests.Hostile;

/// <summary>
/// One hostile input: how to make it from the real fixtures (Arrange), the command that meets it (Args), and what the
/// one-line error must say: the file or option it names (Names) and the cause (Cause, case-insensitive).
/// Exit 1 is a bad file, exit 2 a bad command line.
/// </summary>
public sealed record HostileCase(
    string Category,
    string Name,
    Action<HostileWorkspace> Arrange,
    Func<HostileWorkspace, string[]> Args,
    string Names,
    string Cause,
    int ExitCode = 1)
{
    public override string ToString() => $"{Category}: {Name}";
}

/// <summary>The catalogue: every case is a row of a Theory, so the count in the test run is the count here.</summary>
public static class HostileCases
{
    public static readonly IReadOnlyList<HostileCase> All = Build();

    public static IReadOnlyDictionary<string, HostileCase> ByKey { get; } = All.ToDictionary(c => c.ToString(), StringComparer.Ordinal);

    private static List<HostileCase> Build()
    {
        var cases = new List<HostileCase>();
        T5Config(cases);
        LlamaConfig(cases);
        AdapterConfig(cases);
        Weights(cases);
        Pickles(cases);
        Examples(cases);
        Options(cases);
        Tokenizers(cases);
        return cases;
    }

    private static string Cfg(HostileWorkspace w) => Path.Combine(w.T5, "config.json");
    private static string LCfg(HostileWorkspace w) => Path.Combine(w.Llama, "config.json");

    // ----- config.json of a T5 model ---------------------------------------------------------------------------------

    private static void T5Config(List<HostileCase> cases)
    {
        void Field(string key, string? raw, string cause) => cases.Add(new("t5 config.json", $"{key} = {raw ?? "(absent)"}",
            w => w.SetJson(Cfg(w), key, raw), w => w.ComposeT5(), "config.json", cause));

        Field("num_heads", "0", "'num_heads' is 0, outside");
        Field("num_heads", "-4", "'num_heads' is -4, outside");
        Field("num_heads", "\"four\"", "'num_heads' is a string \"four\", not an integer");
        Field("num_heads", "4.5", "'num_heads' is 4.5, not an integer");
        Field("num_heads", "1e999", "'num_heads' is Infinity, not a finite integer");
        Field("num_heads", "8", "relative_attention_bias.weight' of shape [32, 8]");
        Field("d_model", "-64", "'d_model' is -64, outside");
        Field("d_model", "0", "'d_model' is 0, outside");
        Field("d_model", "\"64\"", "'d_model' is a string \"64\", not an integer");
        Field("d_model", null, "'d_model' is missing");
        Field("d_model", "1099511627776", "'d_model' is 1099511627776, outside");
        Field("d_model", "[64]", "'d_model' is an array, not an integer");
        Field("d_kv", "0", "'d_kv' is 0, outside");
        Field("d_kv", "32", "'encoder.block.0.layer.0.SelfAttention.q.weight' of shape [128, 64]");
        Field("d_kv", "65536", "of shape [262144, 64]");
        Field("d_ff", "-1", "'d_ff' is -1, outside");
        Field("d_ff", "true", "'d_ff' is true, not an integer");
        Field("d_ff", "256", "DenseReluDense.wi_0.weight' of shape [256, 64]");
        Field("vocab_size", "0", "'vocab_size' is 0, outside");
        Field("vocab_size", "2147483647", "'vocab_size' is 2147483647, outside");
        Field("vocab_size", "33000", "of shape [33000, 64]");
        Field("num_layers", "1000000000", "'num_layers' is 1000000000, outside");
        Field("num_layers", "4096", "the checkpoint is missing 'encoder.block.4095");
        Field("num_layers", "3", "the checkpoint is missing 'encoder.block.2");
        Field("num_decoder_layers", "0", "'num_decoder_layers' is 0, outside");
        Field("num_decoder_layers", "100", "the checkpoint is missing 'decoder.block.99");
        Field("layer_norm_epsilon", "\"tiny\"", "'layer_norm_epsilon' is a string \"tiny\", not a number");
        Field("layer_norm_epsilon", "-1", "'layer_norm_epsilon' is -1, outside (0, 1]");
        Field("layer_norm_epsilon", "0", "'layer_norm_epsilon' is 0, outside (0, 1]");
        Field("layer_norm_epsilon", "1e999", "'layer_norm_epsilon' is Infinity, not a finite number");
        Field("relative_attention_num_buckets", "0", "'relative_attention_num_buckets' is 0, outside");
        Field("relative_attention_num_buckets", "64", "relative_attention_bias.weight' of shape [64, 4]");
        Field("relative_attention_max_distance", "0", "'relative_attention_max_distance' is 0, outside");
        Field("relative_attention_max_distance", "\"far\"", "'relative_attention_max_distance' is a string \"far\"");
        Field("eos_token_id", "40000", "'eos_token_id' is 40000, outside [0, 32127]");
        Field("eos_token_id", "-1", "'eos_token_id' is -1, outside");
        Field("pad_token_id", "1e10", "'pad_token_id' is 10000000000, outside");
        Field("decoder_start_token_id", "\"x\"", "'decoder_start_token_id' is a string \"x\", not an integer");
        Field("feed_forward_proj", "5", "'feed_forward_proj' is the number 5, not a string");
        Field("tie_word_embeddings", "\"yes\"", "'tie_word_embeddings' is a string \"yes\", not true or false");
        cases.Add(new("t5 config.json", "an array, not an object", w => HostileWorkspace.Replace(Cfg(w), "[1]"), w => w.ComposeT5(), "config.json", "not a JSON object"));
        cases.Add(new("t5 config.json", "truncated", w => HostileWorkspace.Truncate(Cfg(w), 0.5), w => w.ComposeT5(), "config.json", "not a JSON object"));
        cases.Add(new("t5 config.json", "model_type 7", w => w.SetJson(Cfg(w), "model_type", "7"), w => w.ComposeT5(), "config.json", "model_type '(none)' is not supported"));
    }

    // ----- config.json of a Llama model -------------------------------------------------------------------------------

    private static void LlamaConfig(List<HostileCase> cases)
    {
        void Field(string key, string? raw, string cause) => cases.Add(new("llama config.json", $"{key} = {raw ?? "(absent)"}",
            w => w.SetJson(LCfg(w), key, raw), w => w.ComposeLlama(), "config.json", cause));

        Field("num_key_value_heads", "0", "'num_key_value_heads' is 0, outside [1, 4]");
        Field("num_key_value_heads", "3", "'num_attention_heads' 4 is not a multiple of num_key_value_heads 3");
        Field("num_key_value_heads", "8", "'num_key_value_heads' is 8, outside [1, 4]");
        Field("num_key_value_heads", "4", "implies 'model.layers.0.self_attn.k_proj.weight' of shape [64, 64]");
        Field("num_attention_heads", "0", "'num_attention_heads' is 0, outside");
        Field("num_attention_heads", "3", "'num_attention_heads' 3 is not a multiple of num_key_value_heads 2");
        Field("num_attention_heads", "6", "'hidden_size' 64 is not a multiple of num_attention_heads 6");
        Field("hidden_size", "-64", "'hidden_size' is -64, outside");
        Field("hidden_size", "\"64\"", "'hidden_size' is a string \"64\", not an integer");
        Field("head_dim", "0", "'head_dim' is 0, outside");
        Field("head_dim", "15", "head dimension 15 is odd");
        Field("intermediate_size", "0", "'intermediate_size' is 0, outside");
        Field("intermediate_size", "1e999", "'intermediate_size' is Infinity, not a finite integer");
        Field("num_hidden_layers", "1000000000", "'num_hidden_layers' is 1000000000, outside");
        Field("num_hidden_layers", "7", "the checkpoint is missing 'model.layers.6");
        Field("vocab_size", "-1", "'vocab_size' is -1, outside");
        Field("vocab_size", "16777216", "'model.embed_tokens.weight' of shape [16777216, 64]");
        Field("rms_norm_eps", "\"tiny\"", "'rms_norm_eps' is a string \"tiny\", not a number");
        Field("rms_norm_eps", "0", "'rms_norm_eps' is 0, outside (0, 1]");
        Field("rope_theta", "-10000", "'rope_theta' is -10000, outside");
        Field("rope_theta", "\"NaN\"", "'rope_theta' is a string \"NaN\", not a number");
        Field("max_position_embeddings", "0", "'max_position_embeddings' is 0, outside");
        Field("eos_token_id", "99999", "'eos_token_id' is 99999, outside [0, 31999]");
        Field("eos_token_id", "[]", "'eos_token_id' is an empty list");
        Field("eos_token_id", "[\"</s>\"]", "'eos_token_id'[0] is a string \"</s>\", not an integer");
        Field("bos_token_id", "1e300", "'bos_token_id' is 1E+300, outside");
        Field("pad_token_id", "1000000000", "'pad_token_id' is 1000000000, outside");
        Field("rope_scaling", "\"linear\"", "rope_scaling is not an object");
        Field("rope_scaling", """{"type": "linear", "factor": 0}""", "'factor' is 0, outside");
        Field("rope_scaling", """{"type": "linear", "factor": "big"}""", "'factor' is a string \"big\", not a number");
        Field("rope_scaling", """{"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4}""", "'high_freq_factor' 4 must be larger than low_freq_factor 4");
        Field("attention_bias", "\"false\"", "'attention_bias' is a string \"false\", not true or false");
        Field("tie_word_embeddings", "1", "'tie_word_embeddings' is the number 1, not true or false");
        Field("hidden_act", "[\"silu\"]", "'hidden_act' is an array, not a string");
    }

    // ----- adapter_config.json of a LoRA module -----------------------------------------------------------------------

    private static void AdapterConfig(List<HostileCase> cases)
    {
        static string Path0(HostileWorkspace w) => Path.Combine(w.T5Module0, "adapter_config.json");
        void Field(string key, string? raw, string cause) => cases.Add(new("adapter_config.json", $"{key} = {raw ?? "(absent)"}",
            w => w.SetJson(Path0(w), key, raw), w => w.ComposeT5(), "adapter_config.json", cause));

        Field("lora_alpha", "1e999", "'lora_alpha' is Infinity, not a finite number");
        Field("lora_alpha", "\"NaN\"", "'lora_alpha' is a string \"NaN\", not a number");
        Field("lora_alpha", "\"thirty-two\"", "'lora_alpha' is a string \"thirty-two\", not a number");
        Field("lora_alpha", "-32", "'lora_alpha' is -32, outside (0, 1000000]");
        Field("lora_alpha", "0", "'lora_alpha' is 0, outside (0, 1000000]");
        Field("lora_alpha", "[32]", "'lora_alpha' is an array, not a number");
        Field("r", "0", "'r' is 0, outside [1, 65536]");
        Field("r", "-4", "'r' is -4, outside");
        Field("r", "\"4\"", "'r' is a string \"4\", not an integer");
        Field("r", "4.5", "'r' is 4.5, not an integer");
        Field("r", "2147483648", "'r' is 2147483648, outside");
        Field("r", "1e999", "'r' is Infinity, not a finite integer");
        Field("r", null, "no positive integer 'r'");
        Field("r", "8", "but adapter_config.json says r = 8");
        Field("target_modules", "[1]", "'target_modules'[0] is the number 1, not a module name");
        Field("target_modules", "5", "'target_modules' is the number 5, not a list of module names");
        Field("target_modules", "[null]", "'target_modules'[0] is null, not a module name");
        Field("use_rslora", "\"yes\"", "'use_rslora' is a string \"yes\", not true or false");
        Field("fan_in_fan_out", "\"no\"", "'fan_in_fan_out' is a string \"no\", not true or false");
        Field("peft_type", "3", "'peft_type' is the number 3, not a string");
        Field("bias", "7", "'bias' is the number 7, not a string");
        cases.Add(new("adapter_config.json", "not JSON", w => HostileWorkspace.Replace(Path0(w), "{\"r\": 4,"), w => w.ComposeT5(), "adapter_config.json", "not a JSON object"));
    }

    // ----- weights: non-finite values, integer dtypes -------------------------------------------------------------------

    private static void Weights(List<HostileCase> cases)
    {
        static string St(HostileWorkspace w) => Path.Combine(w.T5Module0, "adapter_model.safetensors");
        cases.Add(new("weights", "module lora_A holds NaN", w => HostileWorkspace.Poison(St(w), "lora_A", float.NaN), w => w.ComposeT5(), "adapter_model.safetensors", "holds 1 NaN and 0 infinite value(s)"));
        cases.Add(new("weights", "module lora_B holds +Inf", w => HostileWorkspace.Poison(St(w), "lora_B", float.PositiveInfinity), w => w.ComposeT5(), "adapter_model.safetensors", "holds 0 NaN and 1 infinite value(s)"));
        cases.Add(new("weights", "module lora_B holds -Inf", w => HostileWorkspace.Poison(St(w), "decoder.block.1", float.NegativeInfinity), w => w.ComposeT5(), "adapter_model.safetensors", "infinite value(s)"));
        cases.Add(new("weights", "module in F16 holds NaN", w =>
        {
            HostileWorkspace.EditTensors(St(w), t => t.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float16)));
            HostileWorkspace.Poison(St(w), "lora_A", float.NaN);
        }, w => w.ComposeT5(), "adapter_model.safetensors", "NaN"));
        cases.Add(new("weights", "module in I32", w => HostileWorkspace.EditTensors(St(w), t =>
        {
            var first = t.Keys.Order(StringComparer.Ordinal).First();
            t[first] = t[first].to_type(ScalarType.Int32);
            return t;
        }), w => w.ComposeT5(), "adapter_model.safetensors", "is Int32; LoRA weights must be floating point"));
        cases.Add(new("weights", "module in I64", w => HostileWorkspace.EditTensors(St(w), t => t.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Int64))),
            w => w.ComposeT5(), "adapter_model.safetensors", "is Int64; LoRA weights must be floating point"));
        cases.Add(new("weights", "llama module holds NaN", w => HostileWorkspace.Poison(Path.Combine(w.LlamaModule0, "adapter_model.safetensors"), "lora_B", float.NaN),
            w => w.ComposeLlama(), "adapter_model.safetensors", "NaN"));
        cases.Add(new("weights", "t5 model holds NaN", w =>
        {
            var path = Path.Combine(w.T5, "model.safetensors");
            HostileWorkspace.Materialize(path);
            HostileWorkspace.Poison(path, "encoder.block.1.layer.1.DenseReluDense.wo", float.NaN);
        }, w => w.ComposeT5(), "model.safetensors", "checkpoint tensor 'encoder.block.1.layer.1.DenseReluDense.wo.weight' holds 1 NaN"));
        cases.Add(new("weights", "llama model holds Inf", w =>
        {
            var path = Path.Combine(w.Llama, "model.safetensors");
            HostileWorkspace.Materialize(path);
            HostileWorkspace.Poison(path, "model.norm", float.PositiveInfinity);
        }, w => w.ComposeLlama(), "model.safetensors", "checkpoint tensor 'model.norm.weight' holds 0 NaN and 1 infinite"));
    }

    // ----- adapter_model.bin: pickles and zips ----------------------------------------------------------------------------

    private static string BinModule(HostileWorkspace w)
    {
        // Replace module 0's safetensors by the .bin fixture of the same adapter.
        File.Delete(Path.Combine(w.T5Module0, "adapter_model.safetensors"));
        File.Copy(Path.Combine(Fixtures.Root, "bin", "lora_0", "adapter_model.bin"), Path.Combine(w.T5Module0, "adapter_model.bin"));
        return Path.Combine(w.T5Module0, "adapter_model.bin");
    }

    private static void Pickles(List<HostileCase> cases)
    {
        void Bin(string name, Action<string> make, string cause) => cases.Add(new("adapter_model.bin", name,
            w => make(BinModule(w)), w => w.ComposeT5(), "adapter_model.bin", cause));
        void Fixture(string file, string cause) => Bin(file, p => File.Copy(Path.Combine(Fixtures.Root, "bin", file), p, overwrite: true), cause);

        Fixture("evil_os_system.bin", "refusing pickle global 'os.system'");
        Fixture("evil_builtins_eval.bin", "refusing pickle global 'builtins.eval'");
        Fixture("not_a_zip.bin", "not a zip archive");
        Fixture("truncated_pickle.bin", "truncated");
        Bin("truncated archive", p => HostileWorkspace.Truncate(p, 0.6), "zip");
        Bin("many views of one deflated storage", p => ManyViews(p, views: 100, numel: 1 << 22), "its tensors claim more than");
        Bin("member claims 2 GiB", p => ClaimsTwoGiB(p), "its tensors claim more than");
        Bin("100 dimensions", p => TorchArchive.Write(p, TorchArchive.Pickle([new("base_model.model.x.lora_A.weight", "0", "FloatStorage", 1, 0, [.. Enumerable.Repeat(1L, 100)], [.. Enumerable.Repeat(1L, 100)])]),
            new Dictionary<string, byte[]> { ["0"] = new byte[4] }), "100 dimensions, more than 64");
        Bin("5000 nested MARKs", p => TorchArchive.Write(p, [0x80, 2, .. Enumerable.Repeat((byte)'(', 5000), (byte)'.'], new Dictionary<string, byte[]>()), "nested MARKs (budget)");
        Bin("int32 storage", p =>
        {
            var views = new[] { new TorchArchive.View("base_model.model.decoder.block.0.layer.0.SelfAttention.q.lora_A.weight", "0", "IntStorage", 256, 0, [4, 64], [64, 1]) };
            TorchArchive.Write(p, TorchArchive.Pickle(views), new Dictionary<string, byte[]> { ["0"] = new byte[1024] });
        }, "is Int32; LoRA weights must be floating point");
        Bin("NaN storage", p =>
        {
            var data = new byte[1024];
            BitConverter.TryWriteBytes(data.AsSpan(8), float.NaN);
            var views = new[] { new TorchArchive.View("base_model.model.decoder.block.0.layer.0.SelfAttention.q.lora_A.weight", "0", "FloatStorage", 256, 0, [4, 64], [64, 1]) };
            TorchArchive.Write(p, TorchArchive.Pickle(views), new Dictionary<string, byte[]> { ["0"] = data });
        }, "holds 1 NaN");
        Bin("view past its storage", p =>
        {
            var views = new[] { new TorchArchive.View("base_model.model.decoder.block.0.layer.0.SelfAttention.q.lora_A.weight", "0", "FloatStorage", 256, 10, [4, 64], [64, 1]) };
            TorchArchive.Write(p, TorchArchive.Pickle(views), new Dictionary<string, byte[]> { ["0"] = new byte[1024] });
        }, "needs 266 elements but storage '0' has 256");
    }

    /// <summary>views tensors, each the whole of one storage of numel zeros (deflated to a few KB): the copies claim views x numel x 4 bytes.</summary>
    public static void ManyViews(string path, int views, int numel)
    {
        var list = Enumerable.Range(0, views).Select(i => new TorchArchive.View($"base_model.model.decoder.block.0.layer.0.SelfAttention.q.lora_A.weight.{i}", "0", "FloatStorage", numel, 0, [numel], [1]));
        TorchArchive.Write(path, TorchArchive.Pickle(list), new Dictionary<string, byte[]> { ["0"] = new byte[numel * 4L] });
    }

    /// <summary>One 2 GiB float storage whose zip header claims 2 GiB over 2 MB of deflated random bytes (within deflate's ratio).</summary>
    public static void ClaimsTwoGiB(string path)
    {
        const long numel = 1L << 29;
        var noise = new byte[2 << 20];
        new Random(13).NextBytes(noise);
        var views = new[] { new TorchArchive.View("base_model.model.decoder.block.0.layer.0.SelfAttention.q.lora_A.weight", "0", "FloatStorage", numel, 0, [numel], [1]) };
        TorchArchive.Write(path, TorchArchive.Pickle(views), new Dictionary<string, byte[]> { ["0"] = noise });
        TorchArchive.ClaimSize(path, "archive/data/0", (uint)(numel * 4));
    }

    // ----- examples files ------------------------------------------------------------------------------------------------

    private static void Examples(List<HostileCase> cases)
    {
        void Bytes(string name, Func<byte[]> content, string cause) => cases.Add(new("examples", name,
            w => File.WriteAllBytes(w.Examples, content()), w => w.ComposeT5(), "examples.jsonl", cause));
        byte[] Line(string json) => Encoding.UTF8.GetBytes(json + "\n");
        var good = Line("""{"input": "a", "output": "b"}""");

        Bytes("invalid byte 0xFF on line 2", () => [.. good, .. "{\"input\": \"x"u8, 0xFF, .. "\", \"output\": \"y\"}\n"u8], "line 2 is not valid UTF-8 (invalid byte 0xff)");
        Bytes("overlong encoding on line 1", () => [.. "{\"input\": \""u8, 0xC0, 0x80, .. "\", \"output\": \"y\"}\n"u8], "line 1 is not valid UTF-8");
        Bytes("truncated sequence at the end", () => [.. good, .. "{\"input\": \"x\", \"output\": \""u8, 0xE2, 0x82], "line 2 is not valid UTF-8");
        Bytes("encoded surrogate on line 3", () => [.. good, .. good, .. "{\"input\": \""u8, 0xED, 0xA0, 0x80, .. "\", \"output\": \"y\"}\n"u8], "line 3 is not valid UTF-8");
        Bytes("BOM then an invalid byte", () => [0xEF, 0xBB, 0xBF, .. "{\"input\": \"x"u8, 0xFE, .. "\", \"output\": \"y\"}\n"u8], "line 1 is not valid UTF-8");
        Bytes("BBH document with an invalid byte", () => [.. "{\"examples\": [\n{\"input\": \"a\", \"target\": \"b\"},\n{\"input\": \""u8, 0xFF, .. "\", \"target\": \"c\"}]}"u8], "line 3 is not valid UTF-8");
        Bytes("a 2 MiB line", () => [.. good, .. Line($$"""{"input": "{{new string('a', 2 << 20)}}", "output": "b"}""")], "line 2 is longer than 1048576 bytes");
        Bytes("100001 examples", () => [.. Enumerable.Range(0, 100_001).SelectMany(_ => good)], "more than 100000 examples");
        Bytes("BBH document of 100001 examples", () => Encoding.UTF8.GetBytes("{\"examples\": [" + string.Join(",", Enumerable.Repeat("""{"input": "a", "target": "b"}""", 100_001)) + "]}"), "more than 100000 examples");
        Bytes("BBH document with a 2M-character input", () => Encoding.UTF8.GetBytes("{\"examples\": [{\"input\": \"" + new string('a', 2 << 20) + "\", \"target\": \"b\"}]}"), "examples[0] is longer than 1048576 characters");
        Bytes("input is a number", () => Line("""{"input": 5, "output": "b"}"""), "\"input\" is not a string");
        Bytes("a line that is not JSON", () => [.. good, .. Line("{\"input\": \"a\", ")], "line 2 is not valid JSON");
        Bytes("empty file", () => [], "the examples file holds no examples");
        Bytes("only whitespace", () => "  \n\n\t\n"u8.ToArray(), "the examples file holds no examples");
        Bytes("examples is an object", () => Line("""{"examples": {"input": "a"}}"""), "\"examples\" is not an array");
        Bytes("an array line", () => Line("""["a", "b"]"""), "line 1 is not a JSON object");
        Bytes("no output field", () => Line("""{"input": "a"}"""), "no \"output\" field");
        Bytes("duplicate keys in a BBH document", () => "{\"examples\": [{\"input\": \"a\", \"input\": \"b\", \"target\": \"c\"}]}"u8.ToArray(), "duplicate");
        Bytes("a JSON document nested 10000 deep", () => Encoding.UTF8.GetBytes(new string('[', 10_000) + new string(']', 10_000)), "line 1 is not valid JSON");
    }

    // ----- command-line options --------------------------------------------------------------------------------------------

    private static void Options(List<HostileCase> cases)
    {
        void Compose(string option, string value, string cause) => cases.Add(new("options", $"compose {option} {value}",
            _ => { }, w => w.ComposeT5(option, value), option, cause, ExitCode: 2));
        Compose("--max-tokens", "0", "must be at least 2 (got 0)");
        Compose("--max-tokens", "1", "(got 1)");
        Compose("--max-tokens", "2147483647", "must be at most 1048576 (got 2147483647)");
        Compose("--population", "0", "must be at least 1 (got 0)");
        Compose("--population", "-5", "(got -5)");
        Compose("--budget", "0", "must be at least 1 (got 0)");
        Compose("--budget", "-1", "(got -1)");
        Compose("--budget", "2000000000", "must be at most 1000000 (got 2000000000)");
        Compose("--select", "0", "must be at least 1 (got 0)");
        Compose("--l1", "NaN", "must be a finite number in [0, 1000000] (got NaN)");
        Compose("--l1", "Infinity", "(got Infinity)");
        Compose("--l1", "-1", "(got -1)");
        Compose("--l1", "1e300", "(got 1E+300)");
        void Other(string command, string option, string value, string cause) => cases.Add(new("options", $"{command} {option} {value}", _ => { },
            w => command switch
            {
                "score" => ["score", "--base", w.T5, "--examples", w.Examples, option, value],
                "eval" => ["eval", "--base", w.T5, "--data", w.Examples, "--predictions", w["predictions.jsonl"], option, value],
                _ => ["generate", "--base", w.T5, "--input", "hello", option, value],
            }, option, cause, ExitCode: 2));
        Other("score", "--l1", "NaN", "(got NaN)");
        Other("score", "--l1", "-0.5", "(got -0.5)");
        Other("score", "--batch-size", "0", "must be at least 1 (got 0)");
        Other("score", "--batch-size", "2000000000", "(got 2000000000)");
        Other("score", "--weights", "NaN", "'NaN' is not a number");
        Other("eval", "--max-new-tokens", "0", "must be at least 1 (got 0)");
        Other("eval", "--max-new-tokens", "2147483647", "(got 2147483647)");
        Other("eval", "--batch-size", "-3", "(got -3)");
        Other("generate", "--max-new-tokens", "0", "(got 0)");
        Other("generate", "--max-new-tokens", "100000000", "(got 100000000)");
        cases.Add(new("options", "score with weights that overflow", _ => { },
            w => ["score", "--base", w.T5, "--examples", w.Examples, "--module", w.T5Module0, "--weights", "1e300"], "loss", "the loss is not finite"));
    }

    // ----- tokenizer files -----------------------------------------------------------------------------------------------

    private static void Tokenizers(List<HostileCase> cases)
    {
        static string Spiece(HostileWorkspace w) => Path.Combine(w.T5, "spiece.model");
        static string LlamaSpm(HostileWorkspace w) => Path.Combine(w.Llama, "tokenizer.model");
        cases.Add(new("tokenizer", "spiece.model truncated to 100 bytes", w => HostileWorkspace.Replace(Spiece(w), File.ReadAllBytes(Spiece(w))[..100]), w => w.ComposeT5(), "spiece.model", "protobuf"));
        cases.Add(new("tokenizer", "spiece.model empty", w => HostileWorkspace.Replace(Spiece(w), []), w => w.ComposeT5(), "spiece.model", "empty"));
        cases.Add(new("tokenizer", "spiece.model random bytes", w =>
        {
            var noise = new byte[4096];
            new Random(7).NextBytes(noise);
            HostileWorkspace.Replace(Spiece(w), noise);
        }, w => w.ComposeT5(), "spiece.model", "protobuf"));
        cases.Add(new("tokenizer", "tokenizer.model truncated to half", w => HostileWorkspace.Truncate(LlamaSpm(w), 0.5), w => w.ComposeLlama(), "tokenizer.model", "protobuf"));
        cases.Add(new("tokenizer", "llama tokenizer_config.json not JSON", w => HostileWorkspace.Replace(Path.Combine(w.Llama, "tokenizer_config.json"), "{\"eos_token\": "),
            w => w.ComposeLlama(), "tokenizer_config.json", "is not valid JSON"));
        cases.Add(new("tokenizer", "llama special_tokens_map.json not JSON", w => HostileWorkspace.Replace(Path.Combine(w.Llama, "special_tokens_map.json"), "[[["),
            w => w.ComposeLlama(), "special_tokens_map.json", "is not valid JSON"));

        // tokenizer.json (byte-level BPE), met by `lorahub tokenize`.
        void Json(string name, Action<string> mutate, string names, string cause) => cases.Add(new("tokenizer.json", name,
            w => mutate(w.BpeTokenizerFolder()), w => ["tokenize", "--model", w["bpe"], "--text", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"], names, cause));
        void Vocab(string name, string token, string rawId, string cause) => Json(name, folder =>
        {
            var path = Path.Combine(folder, "tokenizer.json");
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
            json["model"]!["vocab"]![token] = System.Text.Json.Nodes.JsonNode.Parse(rawId);
            HostileWorkspace.Replace(path, json.ToJsonString());
        }, "tokenizer.json", cause);
        void Edit(string name, Action<System.Text.Json.Nodes.JsonNode> edit, string cause) => Json(name, folder =>
        {
            var path = Path.Combine(folder, "tokenizer.json");
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
            edit(json);
            HostileWorkspace.Replace(path, json.ToJsonString());
        }, "tokenizer.json", cause);

        Vocab("vocab id 2^31 - 1", "zzz", "2147483647", "token id 2147483647 is larger than the 16777215 allowed");
        Vocab("vocab id 2^31", "zzz", "2147483648", "vocab entry 'zzz' has no valid id");
        Vocab("vocab id -1", "zzz", "-1", "vocab entry 'zzz' has no valid id");
        Vocab("vocab id \"5\"", "zzz", "\"5\"", "vocab entry 'zzz' has no valid id");
        Vocab("vocab id 16777215 (sparse)", "zzz", "16777215", "is far beyond its");
        Edit("added token id near 2^31", j => j["added_tokens"]!.AsArray().Add(System.Text.Json.Nodes.JsonNode.Parse("""{"id": 2147483600, "content": "<big>", "special": true}""")), "token id 2147483600 is larger than");
        Edit("added token id 1e10", j => j["added_tokens"]!.AsArray().Add(System.Text.Json.Nodes.JsonNode.Parse("""{"id": 1e10, "content": "<big>"}""")), "malformed added token");
        Edit("template ids not numbers", j => j["post_processor"]!["special_tokens"]!["<s>"]!["ids"] = System.Text.Json.Nodes.JsonNode.Parse("[\"x\"]"), "template special token '<s>' has id \"x\"");
        Edit("template id outside the vocab", j => j["post_processor"]!["special_tokens"]!["<s>"]!["ids"] = System.Text.Json.Nodes.JsonNode.Parse("[99999]"), "post_processor template token id 99999 is not a token");
        Edit("catastrophic split pattern", j => j["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse(
            """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(a|aa)+$"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}"""),
            "took longer than 1 s");
        Edit("model type WordPiece", j => j["model"]!["type"] = "WordPiece", "model type 'WordPiece' is not supported");
        Edit("BPE dropout", j => j["model"]!["dropout"] = 0.5, "dropout is not supported");
        Json("tokenizer.json not JSON", folder => HostileWorkspace.Replace(Path.Combine(folder, "tokenizer.json"), "{\"model\": "), "tokenizer.json", "not valid JSON");
        Json("tokenizer_config.json names no eos", folder => HostileWorkspace.Replace(Path.Combine(folder, "tokenizer_config.json"), "{\"eos_token\": \"<nope>\"}"), "tokenizer.json", "no eos token");
        Json("tokenizer_config.json eos is a number", folder => HostileWorkspace.Replace(Path.Combine(folder, "tokenizer_config.json"), "{\"eos_token\": 5}"), "tokenizer.json", "no eos token");
    }
}
