using System.Text;

namespace LoraHub.Core.Tokenization;

/// <summary>Piece types of sentencepiece_model.proto (ModelProto.SentencePiece.Type).</summary>
internal enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>
/// A SentencePiece <c>.model</c> file read with a minimal protobuf reader: the piece table, the special ids of
/// its trainer spec, and the file's bytes adjusted so that Microsoft.ML.Tokenizers 2.0.1 accepts them.
/// </summary>
/// <remarks>
/// Field numbers are those of google/sentencepiece src/sentencepiece_model.proto:
/// ModelProto { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3; }
/// SentencePiece { string piece = 1; float score = 2; Type type = 3 [default NORMAL]; }
/// TrainerSpec { ModelType model_type = 3 [default UNIGRAM]; int32 unk_id = 40 [default 0]; int32 bos_id = 41 [default 1];
///               int32 eos_id = 42 [default 2]; int32 pad_id = 43 [default -1]; string unk_piece = 45; string bos_piece = 46;
///               string eos_piece = 47; string pad_piece = 48; }
/// NormalizerSpec { string name = 1; bytes precompiled_charsmap = 2; bool add_dummy_prefix = 3; bool remove_extra_whitespaces = 4; }
/// </remarks>
internal sealed class SentencePieceModelFile
{
    private const int ModelPiecesField = 1;
    private const int ModelTrainerSpecField = 2;
    private const int ModelNormalizerSpecField = 3;

    private const int PieceTextField = 1;
    private const int PieceScoreField = 2;
    private const int PieceTypeField = 3;

    private const int TrainerModelTypeField = 3;
    private const int TrainerUnkIdField = 40;
    private const int TrainerBosIdField = 41;
    private const int TrainerEosIdField = 42;
    private const int TrainerPadIdField = 43;
    private const int TrainerUnkPieceField = 45;
    private const int TrainerBosPieceField = 46;
    private const int TrainerEosPieceField = 47;
    private const int TrainerPadPieceField = 48;

    private const int NormalizerNameField = 1;

    private const int WireVarint = 0;
    private const int WireFixed64 = 1;
    private const int WireLengthDelimited = 2;
    private const int WireFixed32 = 5;

    private const int ModelTypeUnigram = 1;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private SentencePieceModelFile(
        string[] pieces,
        SentencePieceType[] types,
        int modelType,
        int unkId,
        int bosId,
        int eosId,
        int padId,
        string eosPiece,
        string? normalizerName,
        byte[] tokenizerBytes)
    {
        Pieces = pieces;
        Types = types;
        ModelType = modelType;
        UnkId = unkId;
        BosId = bosId;
        EosId = eosId;
        PadId = padId;
        EosPiece = eosPiece;
        NormalizerName = normalizerName;
        TokenizerBytes = tokenizerBytes;
    }

    /// <summary>The pieces, indexed by id.</summary>
    public IReadOnlyList<string> Pieces { get; }

    /// <summary>The piece types, indexed by id.</summary>
    public IReadOnlyList<SentencePieceType> Types { get; }

    /// <summary>TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char.</summary>
    public int ModelType { get; }

    public int UnkId { get; }

    /// <summary>The bos id as stored in the file (-1 for T5: no BOS).</summary>
    public int BosId { get; }

    public int EosId { get; }

    public int PadId { get; }

    public string EosPiece { get; }

    /// <summary>NormalizerSpec.name, e.g. "nmt_nfkc".</summary>
    public string? NormalizerName { get; }

    /// <summary>The model file's bytes, adjusted for Microsoft.ML.Tokenizers (see <see cref="Read"/>).</summary>
    public byte[] TokenizerBytes { get; }

    /// <summary>Reads a SentencePiece model; <paramref name="path"/> only names the file in error messages.</summary>
    /// <exception cref="TokenizerException">The bytes are not a SentencePiece model.</exception>
    public static SentencePieceModelFile Read(byte[] bytes, string path)
    {
        if (bytes.Length == 0)
        {
            throw Corrupt(path, "the file is empty");
        }

        try
        {
            return ReadCore(bytes, path);
        }
        catch (FormatException e)
        {
            throw Corrupt(path, e.Message, e);
        }
        catch (DecoderFallbackException e)
        {
            throw Corrupt(path, "a piece is not valid UTF-8", e);
        }
    }

    private static SentencePieceModelFile ReadCore(byte[] bytes, string path)
    {
        var pieces = new List<string>();
        var types = new List<SentencePieceType>();
        ReadOnlyMemory<byte> trainerSpec = default;
        bool hasTrainerSpec = false;
        string? normalizerName = null;

        var reader = new ProtoReader(bytes);
        while (!reader.AtEnd)
        {
            (int field, int wire) = reader.ReadTag();
            switch (field)
            {
                case ModelPiecesField when wire == WireLengthDelimited:
                    (string piece, SentencePieceType type) = ReadPiece(reader.ReadLengthDelimited(), pieces.Count);
                    pieces.Add(piece);
                    types.Add(type);
                    break;
                case ModelTrainerSpecField when wire == WireLengthDelimited:
                    (int start, int length) = reader.ReadLengthDelimitedRange();
                    trainerSpec = bytes.AsMemory(start, length);
                    hasTrainerSpec = true;
                    break;
                case ModelNormalizerSpecField when wire == WireLengthDelimited:
                    normalizerName = ReadNormalizerName(reader.ReadLengthDelimited()) ?? normalizerName;
                    break;
                default:
                    reader.SkipField(wire);
                    break;
            }
        }

        if (pieces.Count == 0)
        {
            throw Corrupt(path, "it holds no sentence pieces");
        }

        // Defaults of sentencepiece_model.proto for fields the file does not set.
        int modelType = ModelTypeUnigram, unkId = 0, bosId = 1, eosId = 2, padId = -1;
        string? eosPiece = null;
        if (hasTrainerSpec)
        {
            var spec = new ProtoReader(trainerSpec.Span);
            while (!spec.AtEnd)
            {
                (int field, int wire) = spec.ReadTag();
                switch (field)
                {
                    case TrainerModelTypeField when wire == WireVarint:
                        modelType = spec.ReadInt32();
                        break;
                    case TrainerUnkIdField when wire == WireVarint:
                        unkId = spec.ReadInt32();
                        break;
                    case TrainerBosIdField when wire == WireVarint:
                        bosId = spec.ReadInt32();
                        break;
                    case TrainerEosIdField when wire == WireVarint:
                        eosId = spec.ReadInt32();
                        break;
                    case TrainerPadIdField when wire == WireVarint:
                        padId = spec.ReadInt32();
                        break;
                    case TrainerEosPieceField when wire == WireLengthDelimited:
                        eosPiece = StrictUtf8.GetString(spec.ReadLengthDelimited());
                        break;
                    default:
                        spec.SkipField(wire);
                        break;
                }
            }
        }

        CheckId(path, "unk_id", unkId, pieces.Count, allowAbsent: false);
        CheckId(path, "eos_id", eosId, pieces.Count, allowAbsent: true);
        CheckId(path, "pad_id", padId, pieces.Count, allowAbsent: true);
        CheckId(path, "bos_id", bosId, pieces.Count, allowAbsent: true);

        byte[] tokenizerBytes = bytes;
        if (bosId < 0 && eosId >= 0)
        {
            // Microsoft.ML.Tokenizers 2.0.1 indexes its id->piece table with trainer_spec.bos_id unconditionally,
            // so a model without BOS (T5: bos_id = -1) throws IndexOutOfRangeException. We point BOS at the
            // existing EOS control piece (same id and same piece text, so the library's vocab maps receive the
            // very entries EOS already puts there). This changes no encoding: the segmentation trie is built from
            // normal pieces only, before control ids are added, and we never ask the library to add BOS. Decode
            // of that id stays "</s>" because BOS and EOS now name the same piece.
            string aliasPiece = eosPiece ?? pieces[eosId];
            tokenizerBytes = RewriteTrainerSpec(bytes, trainerSpec, hasTrainerSpec, eosId, aliasPiece);
        }

        return new SentencePieceModelFile(
            pieces.ToArray(),
            types.ToArray(),
            modelType,
            unkId,
            bosId,
            eosId,
            padId,
            eosPiece ?? (eosId >= 0 ? pieces[eosId] : "</s>"),
            normalizerName,
            tokenizerBytes);
    }

    private static (string Piece, SentencePieceType Type) ReadPiece(ReadOnlySpan<byte> message, int index)
    {
        string? piece = null;
        var type = SentencePieceType.Normal;
        var reader = new ProtoReader(message);
        while (!reader.AtEnd)
        {
            (int field, int wire) = reader.ReadTag();
            switch (field)
            {
                case PieceTextField when wire == WireLengthDelimited:
                    piece = StrictUtf8.GetString(reader.ReadLengthDelimited());
                    break;
                case PieceScoreField when wire == WireFixed32:
                    reader.SkipField(wire);
                    break;
                case PieceTypeField when wire == WireVarint:
                    int value = reader.ReadInt32();
                    if (value < (int)SentencePieceType.Normal || value > (int)SentencePieceType.Byte)
                    {
                        throw new FormatException($"piece {index} has unknown type {value}");
                    }

                    type = (SentencePieceType)value;
                    break;
                default:
                    reader.SkipField(wire);
                    break;
            }
        }

        if (string.IsNullOrEmpty(piece))
        {
            throw new FormatException($"piece {index} is empty");
        }

        return (piece, type);
    }

    private static string? ReadNormalizerName(ReadOnlySpan<byte> message)
    {
        string? name = null;
        var reader = new ProtoReader(message);
        while (!reader.AtEnd)
        {
            (int field, int wire) = reader.ReadTag();
            if (field == NormalizerNameField && wire == WireLengthDelimited)
            {
                name = StrictUtf8.GetString(reader.ReadLengthDelimited());
            }
            else
            {
                reader.SkipField(wire);
            }
        }

        return name;
    }

    /// <summary>
    /// Copies the model, replacing the trainer spec with one whose bos_id and bos_piece are set to the given values.
    /// Every other byte is copied unchanged.
    /// </summary>
    private static byte[] RewriteTrainerSpec(byte[] model, ReadOnlyMemory<byte> trainerSpec, bool hasTrainerSpec, int bosId, string bosPiece)
    {
        var spec = new ProtoWriter(trainerSpec.Length + 32);
        if (hasTrainerSpec)
        {
            var reader = new ProtoReader(trainerSpec.Span);
            while (!reader.AtEnd)
            {
                int fieldStart = reader.Position;
                (int field, int wire) = reader.ReadTag();
                reader.SkipField(wire);
                if (field is TrainerBosIdField or TrainerBosPieceField)
                {
                    continue;
                }

                spec.WriteRaw(trainerSpec.Span[fieldStart..reader.Position]);
            }
        }

        spec.WriteTag(TrainerBosIdField, WireVarint);
        spec.WriteInt32(bosId);
        spec.WriteTag(TrainerBosPieceField, WireLengthDelimited);
        spec.WriteBytes(StrictUtf8.GetBytes(bosPiece));

        var output = new ProtoWriter(model.Length + 64);
        var top = new ProtoReader(model);
        bool written = false;
        while (!top.AtEnd)
        {
            int fieldStart = top.Position;
            (int field, int wire) = top.ReadTag();
            top.SkipField(wire);
            if (field == ModelTrainerSpecField && wire == WireLengthDelimited)
            {
                if (!written)
                {
                    output.WriteTag(ModelTrainerSpecField, WireLengthDelimited);
                    output.WriteBytes(spec.AsSpan());
                    written = true;
                }

                continue;
            }

            output.WriteRaw(model.AsSpan(fieldStart, top.Position - fieldStart));
        }

        if (!written)
        {
            output.WriteTag(ModelTrainerSpecField, WireLengthDelimited);
            output.WriteBytes(spec.AsSpan());
        }

        return output.ToArray();
    }

    private static void CheckId(string path, string name, int id, int pieceCount, bool allowAbsent)
    {
        if ((id < 0 && !allowAbsent) || id >= pieceCount || id < -1)
        {
            throw Corrupt(path, $"trainer_spec.{name} = {id} is outside its {pieceCount} pieces");
        }
    }

    private static TokenizerException Corrupt(string path, string problem, Exception? inner = null)
    {
        string message = $"'{path}' is not a valid SentencePiece model: {problem}.";
        return inner is null
            ? new TokenizerException(message) { FilePath = path }
            : new TokenizerException(message, inner) { FilePath = path };
    }

    /// <summary>Reads protobuf wire format; throws <see cref="FormatException"/> on malformed input.</summary>
    private ref struct ProtoReader
    {
        private readonly ReadOnlySpan<byte> _data;

        public ProtoReader(ReadOnlySpan<byte> data)
        {
            _data = data;
            Position = 0;
        }

        public int Position { get; private set; }

        public readonly bool AtEnd => Position >= _data.Length;

        public (int Field, int Wire) ReadTag()
        {
            ulong tag = ReadVarint();
            int wire = (int)(tag & 7);
            ulong field = tag >> 3;
            if (field == 0 || field > 536_870_911)
            {
                throw new FormatException($"invalid protobuf field number {field} at byte {Position}");
            }

            return ((int)field, wire);
        }

        public ulong ReadVarint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (Position >= _data.Length)
                {
                    throw new FormatException("truncated protobuf varint");
                }

                byte b = _data[Position++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return result;
                }
            }

            throw new FormatException($"protobuf varint longer than 10 bytes before byte {Position}");
        }

        /// <summary>An int32 field: negative values are written as 10-byte sign-extended varints.</summary>
        public int ReadInt32() => unchecked((int)ReadVarint());

        public ReadOnlySpan<byte> ReadLengthDelimited()
        {
            (int start, int length) = ReadLengthDelimitedRange();
            return _data.Slice(start, length);
        }

        public (int Start, int Length) ReadLengthDelimitedRange()
        {
            ulong length = ReadVarint();
            if (length > (ulong)(_data.Length - Position))
            {
                throw new FormatException($"protobuf field length {length} runs past the end of its message at byte {Position}");
            }

            int start = Position;
            Position += (int)length;
            return (start, (int)length);
        }

        public void SkipField(int wire)
        {
            switch (wire)
            {
                case WireVarint:
                    ReadVarint();
                    break;
                case WireFixed64:
                    Advance(8);
                    break;
                case WireLengthDelimited:
                    ReadLengthDelimitedRange();
                    break;
                case WireFixed32:
                    Advance(4);
                    break;
                default:
                    throw new FormatException($"unsupported protobuf wire type {wire} before byte {Position}");
            }
        }

        private void Advance(int count)
        {
            if (_data.Length - Position < count)
            {
                throw new FormatException("truncated protobuf fixed-size field");
            }

            Position += count;
        }
    }

    /// <summary>Writes protobuf wire format into a growable buffer.</summary>
    private sealed class ProtoWriter
    {
        private byte[] _buffer;
        private int _length;

        public ProtoWriter(int capacity) => _buffer = new byte[Math.Max(capacity, 16)];

        public void WriteTag(int field, int wire) => WriteVarint(((ulong)field << 3) | (uint)wire);

        public void WriteInt32(int value) => WriteVarint(unchecked((ulong)(long)value));

        public void WriteBytes(ReadOnlySpan<byte> bytes)
        {
            WriteVarint((ulong)bytes.Length);
            WriteRaw(bytes);
        }

        public void WriteRaw(ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length);
            bytes.CopyTo(_buffer.AsSpan(_length));
            _length += bytes.Length;
        }

        public ReadOnlySpan<byte> AsSpan() => _buffer.AsSpan(0, _length);

        public byte[] ToArray() => _buffer.AsSpan(0, _length).ToArray();

        private void WriteVarint(ulong value)
        {
            Ensure(10);
            while (value >= 0x80)
            {
                _buffer[_length++] = (byte)(value | 0x80);
                value >>= 7;
            }

            _buffer[_length++] = (byte)value;
        }

        private void Ensure(int extra)
        {
            if (_length + extra > _buffer.Length)
            {
                Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + extra));
            }
        }
    }
}
