using System.Text.Json;
using LoraHub.Core.Composition;
using LoraHub.Core.Optimization;
using Xunit;

namespace LoraHub.Core.Tests.Composition;

/// <summary>
/// The one settings record every host validates: each range is checked at its exact edges (the edge is accepted, one
/// step beyond is refused with a message that starts with the setting's name and states the limit and the value).
/// </summary>
public sealed class CompositionSettingsTests
{
    private static string Refused(CompositionSettings s) => Assert.Throws<CompositionException>(s.Validate).Message;

    [Theory]
    [InlineData("budget", 1, 1_000_000)]
    [InlineData("k", 1, 100_000)]
    [InlineData("population", 1, 100_000)]
    [InlineData("max_tokens", 2, 1 << 20)]
    public void Integer_settings_accept_their_edges_and_refuse_one_beyond(string name, int min, int max)
    {
        CompositionSettings With(int v) => name switch
        {
            "budget" => new() { Budget = v },
            "k" => new() { K = v },
            "population" => new() { Population = v },
            _ => new() { MaxTokens = v },
        };
        With(min).Validate();
        With(max).Validate();
        Assert.Equal($"{name} must be at least {min} (got {min - 1})", Refused(With(min - 1)));
        Assert.Equal($"{name} must be at most {max} (got {max + 1})", Refused(With(max + 1)));
    }

    [Fact]
    public void Real_settings_accept_their_edges_and_refuse_beyond_or_non_finite()
    {
        new CompositionSettings { L1 = 0 }.Validate();
        new CompositionSettings { L1 = 1e6 }.Validate();
        Assert.Equal("l1 must be at least 0 (got -1E-09)", Refused(new() { L1 = -1e-9 }));
        Assert.Equal("l1 must be at most 1000000 (got 1000000.5)", Refused(new() { L1 = 1e6 + 0.5 }));
        Assert.Equal("l1 must be a finite number in [0, 1000000] (got Infinity)", Refused(new() { L1 = double.PositiveInfinity }));
        Assert.Equal("l1 must be a finite number in [0, 1000000] (got NaN)", Refused(new() { L1 = double.NaN }));

        new CompositionSettings { Lower = -100, Upper = 100 }.Validate();
        Assert.Equal("lower must be at least -100 (got -100.5)", Refused(new() { Lower = -100.5 }));
        Assert.Equal("upper must be at most 100 (got 100.5)", Refused(new() { Upper = 100.5 }));
        Assert.Equal("upper must be at least -100 (got -100.5)", Refused(new() { Lower = -100, Upper = -100.5 }));
        Assert.Equal("lower must be at most 100 (got 100.5)", Refused(new() { Lower = 100.5, Upper = 100 }));
        Assert.StartsWith("upper must be a finite number", Refused(new() { Upper = double.NaN }));

        new CompositionSettings { InitialStep = 1e-9 }.Validate();
        new CompositionSettings { InitialStep = 100 }.Validate();
        Assert.StartsWith("initial_step must be at least 1E-09", Refused(new() { InitialStep = 1e-10 }));
        Assert.StartsWith("initial_step must be at most 100", Refused(new() { InitialStep = 100.5 }));
    }

    [Theory]
    [InlineData(0.5, 0.5)]
    [InlineData(1, -1)]
    public void Empty_weight_bounds_are_refused(double lower, double upper) =>
        Assert.Equal($"weight bounds [{lower}, {upper}] are empty", Refused(new() { Lower = lower, Upper = upper }));

    [Fact]
    public void Unknown_names_are_refused_listing_the_known_ones()
    {
        Assert.Equal($"unknown optimizer 'nelder-mead' (known: {string.Join(", ", Optimizers.Names)})", Refused(new() { Optimizer = "nelder-mead" }));
        Assert.Equal("unknown selection 'best' (known: random, loss)", Refused(new() { Selection = "best" }));
        Assert.Equal("unknown merge 'ties' (known: lorahub, linear)", Refused(new() { Merge = "ties" }));
        foreach (var name in Optimizers.Names) new CompositionSettings { Optimizer = name }.Validate();
        new CompositionSettings { Selection = "loss", Merge = "linear" }.Validate();
    }

    [Fact]
    public void The_pool_must_hold_k_modules()
    {
        Assert.Equal("the module pool is empty", Assert.Throws<CompositionException>(() => new CompositionSettings().Validate(0)).Message);
        new CompositionSettings { K = 3 }.Validate(3);
        Assert.Equal("cannot select 4 modules from a pool of 3", Assert.Throws<CompositionException>(() => new CompositionSettings { K = 4 }.Validate(3)).Message);
        // The pool check comes after the settings' own: a bad budget is named even with an empty pool.
        Assert.StartsWith("budget", Assert.Throws<CompositionException>(() => new CompositionSettings { Budget = 0 }.Validate(0)).Message);
        Assert.Equal(20, new CompositionSettings().ResolveK(21));
        Assert.Equal(20, new CompositionSettings().ResolveK(20));
        Assert.Equal(19, new CompositionSettings().ResolveK(19));
        Assert.Equal(5, new CompositionSettings { K = 5 }.ResolveK(196));
    }

    [Fact]
    public void The_optimizer_gets_every_search_setting()
    {
        var s = new CompositionSettings { Optimizer = "cmaes", Budget = 17, Lower = -0.5, Upper = 2, InitialStep = 0.3, Seed = 9, Population = 6 };
        Assert.Equal(new OptimizerSettings("cmaes", 7, 17, -0.5, 2, 0.3, 9, 6), s.ForOptimizer(7));
        Assert.Null(new CompositionSettings().ForOptimizer(3).Population);
        Assert.Null(new CompositionSettings().ForOptimizer(3).Start);
    }

    [Fact]
    public void The_json_names_are_the_requests_snake_case_and_defaults_fill_the_rest()
    {
        var s = JsonSerializer.Deserialize<CompositionSettings>("""
            {"budget": 12, "optimizer": "cobyla", "k": 3, "selection": "loss", "merge": "linear", "seed": 4, "l1": 0.1,
             "lower": -1, "upper": 1, "initial_step": 0.25, "population": 5, "max_tokens": 64, "batch_candidates": true}
            """)!;
        Assert.Equal(new CompositionSettings
        {
            Budget = 12, Optimizer = "cobyla", K = 3, Selection = "loss", Merge = "linear", Seed = 4, L1 = 0.1,
            Lower = -1, Upper = 1, InitialStep = 0.25, Population = 5, MaxTokens = 64, BatchCandidates = true,
        }, s);
        var d = JsonSerializer.Deserialize<CompositionSettings>("{}")!;
        Assert.Equal(new CompositionSettings(), d);
        Assert.Equal((Optimizers.Default, 0.5, 2048, false, (int?)null, (int?)null), (d.Optimizer, d.InitialStep, d.MaxTokens, d.BatchCandidates, d.K, d.Population));
    }
}
