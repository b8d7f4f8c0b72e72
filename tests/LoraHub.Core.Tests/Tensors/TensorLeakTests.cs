using LoraHub.Core.Tensors;
using TorchSharp;
using Xunit;

namespace LoraHub.Core.Tests.Tensors;

[CollectionDefinition(nameof(TensorLeakTests), DisableParallelization = true)]
public class TensorLeakCollection;

/// <summary>
/// Loading and disposing must leave no tensor behind, on success and on failure. Runs alone (no parallel
/// tests create tensors meanwhile), so the global tensor count is meaningful; finalizers of tensors other
/// tests leaked can only lower it, hence "at most".
/// </summary>
[Collection(nameof(TensorLeakTests))]
public class TensorLeakTests
{
    [Fact]
    public void Loading_and_failing_leave_no_tensors_behind()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var before = torch.Tensor.TotalCount;

        for (int i = 0; i < 3; i++)
        {
            foreach (var path in new[] { TensorFixtures.Lora0Bin, TensorFixtures.Path("bin", "strided_and_shared.bin"), TensorFixtures.Lora0Safetensors })
                new Loaded(StateDict.LoadFile(path)).Dispose();
            new Loaded(StateDict.LoadModelFolder(TensorFixtures.TinyT5Dir)).Dispose();
            using (var checkpoint = StateDict.OpenFile(TensorFixtures.Path("bin", "strided_and_shared.bin")))
            {
                foreach (var stored in checkpoint.Tensors)
                {
                    using var into = torch.empty(stored.Shape, torch.ScalarType.Float64);
                    checkpoint.ReadInto(stored.Name, into);
                }
            }
            Assert.Throws<TensorFileException>(() => PyTorchBin.Load(TensorFixtures.Path("bin", "truncated_pickle.bin")));
        }

        Assert.True(torch.Tensor.TotalCount <= before, $"{torch.Tensor.TotalCount - before} tensors leaked");
    }
}
