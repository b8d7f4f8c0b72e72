using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Core.Tests.Tokenization;

public sealed class SentencePieceModelFileTests
{
    private static readonly string SpiecePath = Path.Combine(AppContext.BaseDirectory, "fixtures", "t5", "spiece.model");

    [Fact]
    public void Reads_t5s_trainer_spec_and_pieces()
    {
        SentencePieceModelFile model = SentencePieceModelFile.Read(File.ReadAllBytes(SpiecePath), SpiecePath);

        Assert.Equal(32000, model.Pieces.Count);
        Assert.Equal(1, model.ModelType);
        Assert.Equal(2, model.UnkId);
        Assert.Equal(-1, model.BosId);
        Assert.Equal(1, model.EosId);
        Assert.Equal(0, model.PadId);
        Assert.Equal("nmt_nfkc", model.NormalizerName);
        Assert.Equal(["<pad>", "</s>", "<unk>", "\u2581"], model.Pieces.Take(4));
        Assert.Equal(
            [SentencePieceType.Control, SentencePieceType.Control, SentencePieceType.Unknown, SentencePieceType.Normal],
            model.Types.Take(4));
    }

    [Fact]
    public void Rewrite_points_bos_at_eos_and_changes_nothing_else()
    {
        byte[] original = File.ReadAllBytes(SpiecePath);
        SentencePieceModelFile model = SentencePieceModelFile.Read(original, SpiecePath);
        Assert.NotSame(original, model.TokenizerBytes);

        SentencePieceModelFile patched = SentencePieceModelFile.Read(model.TokenizerBytes, "patched");
        Assert.Equal(model.EosId, patched.BosId);
        Assert.Equal(model.UnkId, patched.UnkId);
        Assert.Equal(model.EosId, patched.EosId);
        Assert.Equal(model.PadId, patched.PadId);
        Assert.Equal(model.Pieces, patched.Pieces);
        Assert.Equal(model.Types, patched.Types);
        Assert.Equal(model.NormalizerName, patched.NormalizerName);

        // A model that already has a usable bos_id is passed through untouched.
        Assert.Same(model.TokenizerBytes, patched.TokenizerBytes);
    }
}
