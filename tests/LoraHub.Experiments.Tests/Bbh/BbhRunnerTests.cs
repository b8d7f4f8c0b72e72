using LoraHub.Experiments.Bbh;
using LoraHub.Core.Composition;
using LoraHub.Core.Evaluation;
using LoraHub.Core.Lora;
using LoraHub.Core.Models;
using Xunit;

namespace LoraHub.Experiments.Tests.Bbh;

/// <summary>The runner in-process on tiny-t5: what is attached for scoring is the optimizer's winner, and resume does no work.</summary>
[Collection("tiny-t5")]
public sealed class BbhRunnerTests(TinyT5Fixture fx)
{
    private sealed class Recorder : IProgress<BbhProgress>
    {
        public List<BbhProgress> Events { get; } = [];
        public void Report(BbhProgress value) => Events.Add(value);
    }

    [Fact]
    public void The_scored_composition_is_the_best_one_found_and_a_second_run_does_no_work()
    {
        using var dir = new Fixtures.TempDir();
        var pool = ModuleRef.Scan(Path.Combine(Fixtures.T5, "adapters"));
        var tokenizer = ModelLoader.LoadTokenizer(Fixtures.TinyT5);
        var settings = new BbhSettings { Seeds = [3], Select = 2, Budget = 3, Limit = 2, MaxNewTokens = 3, Icl = false };
        var split = BbhTasks.Load(BbhTasks.Resolve(BbhTasksTests.Shipped, "navigate")[0], settings.Shots);
        try
        {
            var runner = new BbhRunner(settings, pool, "tiny-t5");
            var recorder = new Recorder();
            var results = runner.Run(fx.Model, tokenizer, runner.Plan([split], dir.Path), recorder);
            Assert.True(results.Complete);
            Assert.Contains(recorder.Events, e => e is { Stage: "composed", Seed: 3 });
            var task = BbhJson.Load<BbhTaskResult>(BbhRunner.TaskFile(dir.Path, "navigate"));
            Assert.Null(task.Icl);
            var seed = Assert.Single(task.LoraHub.Seeds);

            // The modules and weights recorded for the seed give back its best few-shot loss: that is what was scored.
            var modules = seed.Modules.Select(n => LoraModule.Load(pool.Single(m => m.Name == n).Directory, n)).ToList();
            try
            {
                using var composed = new ComposedModel(fx.Model, modules);
                composed.SetWeights(seed.Weights);
                var loss = Seq2Seq.ExampleLosses(fx.Model, ExampleTokenizer.Tokenize(FewShotFormat.EncoderDecoder, tokenizer, split.FewShot, out _)).Average();
                Assert.InRange(Math.Abs(loss - seed.BestLoss), 0, 1e-4);
            }
            finally
            {
                foreach (var m in modules) m.Dispose();
            }

            // Again on the same folder: the task is planned as finished, and running does no work at all.
            var plan = runner.Plan([split], dir.Path);
            Assert.Empty(plan.Pending);
            var again = new Recorder();
            runner.Run(fx.Model, tokenizer, plan, again);
            Assert.Equal(["skip"], again.Events.Select(e => e.Stage));
            Assert.Equal(task.FinishedAt, BbhJson.Load<BbhTaskResult>(BbhRunner.TaskFile(dir.Path, "navigate")).FinishedAt);
        }
        finally
        {
            fx.Use("base");
        }
    }
}

[CollectionDefinition("tiny-t5")]
public sealed class TinyT5Collection : ICollectionFixture<TinyT5Fixture>;
