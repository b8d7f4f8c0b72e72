using LoraHub.Core.Tokenization;
using Xunit;
using static LoraHub.Core.Tests.Tokenization.ProtoBytes;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>
/// SentencePieceModelFile on .model files built field by field: every field it reads is read right (and the defaults of
/// sentencepiece_model.proto apply when a field is absent), fields it does not know are skipped whatever their wire
/// type, the bytes handed to Microsoft.ML.Tokenizers differ only in bos_id/bos_piece, and every malformed file is a
/// one-line TokenizerException naming the file and the problem.
/// </summary>
public sealed class SentencePieceModelFormatTests
{
    private const string Path = "/models/bad/spiece.model";

    // TrainerSpec and NormalizerSpec field numbers (sentencepiece_model.proto).
    private const int ModelType = 3, UnkId = 40, BosId = 41, EosId = 42, PadId = 43, UnkPiece = 45, BosPiece = 46, EosPiece = 47;
    private const int NormalizerName = 1, PrecompiledCharsmap = 2, AddDummyPrefix = 3;

    private static readonly byte[] ThreePieces = Concat(Piece("<unk>", 2), Piece("<s>", 3), Piece("</s>", 3));

    private static SentencePieceModelFile Read(byte[] bytes) => SentencePieceModelFile.Read(bytes, Path);

    private static string Problem(byte[] bytes)
    {
        var e = Assert.Throws<TokenizerException>(() => Read(bytes));
        Assert.Equal(Path, e.FilePath);
        Assert.StartsWith($"'{Path}' is not a valid SentencePiece model: ", e.Message);
        Assert.EndsWith(".", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message[$"'{Path}' is not a valid SentencePiece model: ".Length..^1];
    }

    [Fact]
    public void Every_field_read_is_the_files_and_unknown_fields_are_skipped()
    {
        byte[] model = Concat(
            Int(15, 7), // an unknown top-level varint
            Piece("<pad>", 3, 0f),
            Bytes(1, Concat(Double(9, 1.5), Text(1, "</s>"), Float(2, -1f), Int(3, 3), Bytes(8, [1, 2]))), // unknown fields around the known ones
            Piece("<unk>", 2),
            Double(14, 2.5), // an unknown top-level fixed64
            Piece("\u2581a"), // no type: NORMAL
            Piece("<0x41>", 6),
            Piece("<user>", 4),
            Piece("<unused>", 5),
            Float(13, 1f), // an unknown top-level fixed32
            TrainerSpec(Int(ModelType, 2), Text(1, "input.txt"), Int(UnkId, 2), Int(BosId, -1), Int(EosId, 1), Int(PadId, 0),
                Text(UnkPiece, "<unk>"), Float(10, 0.5f), Double(11, 0.25), Text(EosPiece, "</s>")),
            NormalizerSpec(Text(NormalizerName, "nmt_nfkc"), Bytes(PrecompiledCharsmap, [0, 1, 2, 3]), Int(AddDummyPrefix, 1), Float(9, 1f)),
            Bytes(5, [9, 9, 9])); // an unknown top-level message

        var m = Read(model);

        Assert.Equal(["<pad>", "</s>", "<unk>", "\u2581a", "<0x41>", "<user>", "<unused>"], m.Pieces);
        Assert.Equal(
            [SentencePieceType.Control, SentencePieceType.Control, SentencePieceType.Unknown, SentencePieceType.Normal,
             SentencePieceType.Byte, SentencePieceType.UserDefined, SentencePieceType.Unused],
            m.Types);
        Assert.Equal((2, 2, -1, 1, 0), (m.ModelType, m.UnkId, m.BosId, m.EosId, m.PadId));
        Assert.Equal("</s>", m.EosPiece);
        Assert.Equal("nmt_nfkc", m.NormalizerName);
    }

    [Theory]
    [InlineData(127)]
    [InlineData(128)] // the first id whose varint takes two bytes
    [InlineData(16383)]
    [InlineData(16384)]
    public void The_bos_alias_is_written_as_a_varint_the_reader_reads_back_at_every_length(int eosId)
    {
        // No BOS, EOS at eosId: the bytes for Microsoft.ML.Tokenizers get bos_id = eosId written by our own encoder.
        var pieces = Enumerable.Range(0, eosId + 1).Select(i => i switch { 0 => Piece("<unk>", 2), _ when i == eosId => Piece("</s>", 3), _ => Piece($"p{i}") });
        byte[] model = Concat([.. pieces, TrainerSpec(Int(UnkId, 0), Int(BosId, -1), Int(EosId, eosId))]);

        var m = Read(model);
        var patched = Read(m.TokenizerBytes);

        Assert.Equal((-1, eosId), (m.BosId, m.EosId));
        Assert.Equal((eosId, eosId, 0), (patched.BosId, patched.EosId, patched.UnkId));
        Assert.Equal(m.Pieces, patched.Pieces);
        var spec = Fields(Fields(m.TokenizerBytes).Single(f => f.Number == 2).Payload);
        Assert.Equal((ulong)eosId, spec.Single(f => f.Number == BosId).Value);
        Assert.Equal("</s>"u8.ToArray(), spec.Single(f => f.Number == BosPiece).Payload);
    }

    [Fact]
    public void Fields_of_an_unexpected_wire_type_are_skipped_not_misread()
    {
        byte[] model = Concat(
            Int(1, 5), // "pieces" as a varint
            Float(2, 1f), // "trainer_spec" as a fixed32
            Int(3, 1), // "normalizer_spec" as a varint
            Bytes(1, Concat(Int(1, 4), Text(1, "<unk>"), Bytes(3, [6]), Int(3, 2), Text(2, "x"))), // text as varint, type as bytes, score as bytes
            Piece("a"),
            Piece("b"),
            TrainerSpec(Text(ModelType, "x"), Float(UnkId, 1f), Double(BosId, 1), Text(EosId, "2"), Float(PadId, 0f), Int(EosPiece, 3), Int(UnkId, 1)),
            NormalizerSpec(Int(NormalizerName, 3), Text(NormalizerName, "identity")));

        var m = Read(model);

        Assert.Equal(["<unk>", "a", "b"], m.Pieces);
        Assert.Equal(SentencePieceType.Unknown, m.Types[0]);
        Assert.Equal((1, 1, 1, 2, -1), (m.ModelType, m.UnkId, m.BosId, m.EosId, m.PadId));
        Assert.Equal("b", m.EosPiece);
        Assert.Equal("identity", m.NormalizerName);
    }

    [Fact]
    public void Without_a_trainer_spec_the_proto_defaults_apply_and_the_bytes_pass_through()
    {
        var m = Read(ThreePieces);

        Assert.Equal((1, 0, 1, 2, -1), (m.ModelType, m.UnkId, m.BosId, m.EosId, m.PadId));
        Assert.Equal("</s>", m.EosPiece);
        Assert.Null(m.NormalizerName);
        Assert.Same(ThreePieces, m.TokenizerBytes);
    }

    [Fact]
    public void The_eos_piece_of_the_trainer_spec_names_eos_and_a_model_without_eos_says_the_usual_one()
    {
        Assert.Equal("[EOS]", Read(Concat(ThreePieces, TrainerSpec(Text(EosPiece, "[EOS]")))).EosPiece);
        Assert.Equal("<s>", Read(Concat(ThreePieces, TrainerSpec(Int(EosId, 1)))).EosPiece);

        var noEos = Read(Concat(Piece("<unk>", 2), Piece("a"), TrainerSpec(Int(EosId, -1), Int(BosId, -1))));
        Assert.Equal((-1, -1), (noEos.EosId, noEos.BosId));
        Assert.Equal("</s>", noEos.EosPiece);
    }

    [Fact]
    public void A_model_without_bos_is_handed_on_with_bos_at_eos_and_every_other_byte_unchanged()
    {
        byte[] pieces = Concat(Piece("<pad>", 3), Piece("</s>", 3), Piece("<unk>", 2), Piece("\u2581x"));
        byte[] normalizer = NormalizerSpec(Text(NormalizerName, "nmt_nfkc"), Bytes(PrecompiledCharsmap, [1, 2, 3]));
        byte[] spec = TrainerSpec(Int(ModelType, 1), Text(BosPiece, "<s>"), Int(UnkId, 2), Int(BosId, -1), Int(EosId, 1), Int(PadId, 0));
        byte[] original = Concat(pieces, spec, normalizer);

        var m = Read(original);
        Assert.Equal(-1, m.BosId);

        var top = Fields(m.TokenizerBytes);
        var originalTop = Fields(original);
        Assert.Equal(originalTop.Select(f => f.Number), top.Select(f => f.Number));
        for (var i = 0; i < top.Count; i++)
        {
            if (top[i].Number != 2) Assert.Equal(originalTop[i].Raw, top[i].Raw);
        }

        var rewritten = Fields(top.Single(f => f.Number == 2).Payload);
        var kept = Fields(originalTop.Single(f => f.Number == 2).Payload).Where(f => f.Number is not (BosId or BosPiece));
        Assert.Equal(kept.Select(f => f.Raw), rewritten.Take(rewritten.Count - 2).Select(f => f.Raw));
        Assert.Equal((BosId, 1UL), (rewritten[^2].Number, rewritten[^2].Value));
        Assert.Equal(BosPiece, rewritten[^1].Number);
        Assert.Equal("</s>", System.Text.Encoding.UTF8.GetString(rewritten[^1].Payload));

        var again = Read(m.TokenizerBytes);
        Assert.Equal((1, 2, 1, 0), (again.BosId, again.UnkId, again.EosId, again.PadId));
        Assert.Equal(m.Pieces, again.Pieces);
    }

    [Fact]
    public void A_long_eos_piece_is_written_whole_into_the_bytes_handed_on()
    {
        // Longer than the slack the rewrite starts with, so its buffers must grow.
        string eos = string.Concat(Enumerable.Repeat("</end-of-sequence>", 20));
        byte[] original = Concat(Piece("<unk>", 2), Piece(eos, 3), Piece("a"),
            TrainerSpec(Int(BosId, -1), Int(EosId, 1), Text(EosPiece, eos)));

        var m = Read(original);
        var spec = Fields(Fields(m.TokenizerBytes).Single(f => f.Number == 2).Payload);
        Assert.Equal(eos, System.Text.Encoding.UTF8.GetString(spec.Single(f => f.Number == BosPiece).Payload));
        Assert.Equal(eos, System.Text.Encoding.UTF8.GetString(spec.Single(f => f.Number == EosPiece).Payload));
        Assert.Equal(1, Read(m.TokenizerBytes).BosId);
        Assert.Equal(m.Pieces, Read(m.TokenizerBytes).Pieces);
    }

    [Fact]
    public void Bos_and_eos_at_id_zero_count_as_present()
    {
        // bos_id 0 is a bos: nothing to rewrite.
        byte[] bosAtZero = Concat(Piece("<s>", 3), Piece("<unk>", 2), Piece("</s>", 3), TrainerSpec(Int(BosId, 0), Int(UnkId, 1)));
        Assert.Same(bosAtZero, Read(bosAtZero).TokenizerBytes);

        // eos_id 0 with no bos: bos is pointed at id 0.
        var m = Read(Concat(Piece("</s>", 3), Piece("<unk>", 2), Piece("a"), TrainerSpec(Int(BosId, -1), Int(EosId, 0), Int(UnkId, 1))));
        Assert.Equal("</s>", m.EosPiece);
        var again = Read(m.TokenizerBytes);
        Assert.Equal((0, 0, 1), (again.BosId, again.EosId, again.UnkId));
    }

    [Fact]
    public void A_model_without_bos_or_eos_is_handed_on_unchanged()
    {
        byte[] original = Concat(Piece("<unk>", 2), Piece("a"), TrainerSpec(Int(BosId, -1), Int(EosId, -1)));
        Assert.Same(original, Read(original).TokenizerBytes);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void Every_piece_type_of_the_proto_is_read(int type)
    {
        var m = Read(Concat(ThreePieces, Piece("x", type)));
        Assert.Equal((SentencePieceType)type, m.Types[3]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(-1)]
    public void An_unknown_piece_type_is_named_with_its_piece(int type) =>
        Assert.Equal($"piece 3 has unknown type {type}", Problem(Concat(ThreePieces, Piece("x", type))));

    [Fact]
    public void An_empty_or_absent_piece_text_is_named()
    {
        Assert.Equal("piece 1 is empty", Problem(Concat(Piece("a"), Piece(""))));
        Assert.Equal("piece 0 is empty", Problem(Bytes(1, Float(2, 1f))));
    }

    [Fact]
    public void Text_that_is_not_utf8_is_refused_wherever_it_is_read()
    {
        byte[] bad = [0x61, 0xC3, 0x28];
        Assert.Equal("a piece is not valid UTF-8", Problem(Bytes(1, Bytes(1, bad))));
        Assert.Equal("a piece is not valid UTF-8", Problem(Concat(ThreePieces, TrainerSpec(Bytes(EosPiece, bad)))));
        Assert.Equal("a piece is not valid UTF-8", Problem(Concat(ThreePieces, NormalizerSpec(Bytes(NormalizerName, bad)))));
    }

    [Fact]
    public void A_file_with_no_pieces_is_refused()
    {
        Assert.Equal("the file is empty", Problem([]));
        Assert.Equal("it holds no sentence pieces", Problem(TrainerSpec(Int(ModelType, 1))));
        Assert.Equal("it holds no sentence pieces", Problem(NormalizerSpec(Text(NormalizerName, "nmt_nfkc"))));
    }

    public static TheoryData<string, byte[], string> MalformedWireFormat() => new()
    {
        { "field number 0", Concat(ThreePieces, Int(0, 1)), "invalid protobuf field number 0 at byte " },
        { "field number 2^29", Concat(ThreePieces, Int(1L << 29, 1)), "invalid protobuf field number 536870912 at byte " },
        { "varint cut off", Concat(ThreePieces, [0x08, 0x80]), "truncated protobuf varint" },
        { "tag cut off", Concat(ThreePieces, [0x80]), "truncated protobuf varint" },
        { "11-byte varint", Concat(ThreePieces, [0x78], Enumerable.Repeat((byte)0xFF, 10).ToArray(), [0x01]), "protobuf varint longer than 10 bytes before byte " },
        { "length past the end", Concat(ThreePieces, [0x12, 0x05, 0x01, 0x02, 0x03, 0x04]), "protobuf field length 5 runs past the end of its message at byte " },
        { "length 2^64 - 1", Concat(ThreePieces, [0x12], Enumerable.Repeat((byte)0xFF, 9).ToArray(), [0x01]), "protobuf field length 18446744073709551615 runs past the end" },
        { "inner length past the end", Bytes(1, [0x0A, 0x04, 0x61]), "protobuf field length 4 runs past the end of its message at byte 2" },
        { "wire type 3", Concat(ThreePieces, [0x7B]), "unsupported protobuf wire type 3 before byte " },
        { "wire type 4", Concat(ThreePieces, [0x7C]), "unsupported protobuf wire type 4" },
        { "wire type 6", Concat(ThreePieces, [0x7E]), "unsupported protobuf wire type 6" },
        { "wire type 7", Concat(ThreePieces, [0x7F]), "unsupported protobuf wire type 7" },
        { "fixed32 cut off", Concat(ThreePieces, [0x7D, 1, 2, 3]), "truncated protobuf fixed-size field" },
        { "fixed64 cut off", Concat(ThreePieces, [0x79, 1, 2, 3, 4, 5, 6, 7]), "truncated protobuf fixed-size field" },
        { "bad field in the trainer spec", Concat(ThreePieces, TrainerSpec([0x0B])), "unsupported protobuf wire type 3" },
        { "bad field in the normalizer spec", Concat(ThreePieces, NormalizerSpec([0x0F])), "unsupported protobuf wire type 7" },
        { "bad field in a piece", Concat(ThreePieces, Bytes(1, [0x0C])), "unsupported protobuf wire type 4" },
    };

    [Theory]
    [MemberData(nameof(MalformedWireFormat))]
    public void Malformed_wire_format_is_named(string what, byte[] bytes, string problem)
    {
        _ = what;
        Assert.StartsWith(problem, Problem(bytes));
    }

    [Fact]
    public void Fields_that_end_exactly_at_the_end_and_the_largest_field_number_are_read()
    {
        // 2^29 - 1 is the largest field number protobuf allows; fixed fields and a length that end on the last byte.
        var m = Read(Concat(ThreePieces, Int((1L << 29) - 1, 1), [0x7D, 1, 2, 3, 4], [0x79, 1, 2, 3, 4, 5, 6, 7, 8], Piece("z")));
        Assert.Equal(4, m.Pieces.Count);
        Assert.Equal("z", m.Pieces[3]);

        // A 10-byte varint (a negative int32) is the longest there is.
        Assert.Equal(-1, Read(Concat(ThreePieces, TrainerSpec(Int(PadId, -1)))).PadId);
    }

    public static TheoryData<string, long, string?> SpecialIds() => new()
    {
        { "unk_id", -1, "trainer_spec.unk_id = -1 is outside its 3 pieces" },
        { "unk_id", 3, "trainer_spec.unk_id = 3 is outside its 3 pieces" },
        { "unk_id", 2, null },
        { "unk_id", 0, null },
        { "eos_id", -2, "trainer_spec.eos_id = -2 is outside its 3 pieces" },
        { "eos_id", 3, "trainer_spec.eos_id = 3 is outside its 3 pieces" },
        { "eos_id", -1, null },
        { "eos_id", 2, null },
        { "pad_id", -2, "trainer_spec.pad_id = -2 is outside its 3 pieces" },
        { "pad_id", 3, "trainer_spec.pad_id = 3 is outside its 3 pieces" },
        { "pad_id", 2, null },
        { "bos_id", 3, "trainer_spec.bos_id = 3 is outside its 3 pieces" },
        { "bos_id", int.MinValue, "trainer_spec.bos_id = -2147483648 is outside its 3 pieces" },
        { "bos_id", 2, null },
    };

    [Theory]
    [MemberData(nameof(SpecialIds))]
    public void Special_ids_outside_the_pieces_are_refused_by_name(string name, long id, string? problem)
    {
        int field = name switch { "unk_id" => UnkId, "bos_id" => BosId, "eos_id" => EosId, _ => PadId };
        byte[] bytes = Concat(ThreePieces, TrainerSpec(Int(field, id)));
        if (problem is null)
        {
            var m = Read(bytes);
            Assert.Equal((int)id, name switch { "unk_id" => m.UnkId, "bos_id" => m.BosId, "eos_id" => m.EosId, _ => m.PadId });
        }
        else
        {
            Assert.Equal(problem, Problem(bytes));
        }
    }

    [Fact]
    public void The_real_spiece_model_read_from_a_file_names_that_file_in_its_errors()
    {
        string spiece = System.IO.Path.Combine(Fixtures.T5, "spiece.model");
        byte[] bytes = File.ReadAllBytes(spiece);
        var e = Assert.Throws<TokenizerException>(() => SentencePieceModelFile.Read(Concat(bytes, [0x7F]), spiece));
        Assert.Equal($"'{spiece}' is not a valid SentencePiece model: unsupported protobuf wire type 7 before byte {bytes.Length + 1}.", e.Message);
        Assert.IsType<FormatException>(e.InnerException);
    }
}
