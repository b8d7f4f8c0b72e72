using System.Text;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>
/// Protocol buffer wire format written and read by hand, to build SentencePiece .model files field by field (good and
/// hostile ones) and to look inside the bytes the reader hands to Microsoft.ML.Tokenizers.
/// </summary>
internal static class ProtoBytes
{
    public const int Varint = 0, Fixed64 = 1, Delimited = 2, Fixed32 = 5;

    public static byte[] RawVarint(ulong value)
    {
        var bytes = new List<byte>();
        while (value >= 0x80)
        {
            bytes.Add((byte)(value | 0x80));
            value >>= 7;
        }
        bytes.Add((byte)value);
        return [.. bytes];
    }

    public static byte[] Tag(long field, int wire) => RawVarint(((ulong)field << 3) | (uint)wire);

    /// <summary>An int32 field (negative values as 10-byte sign-extended varints, as protobuf writes them).</summary>
    public static byte[] Int(long field, long value) => [.. Tag(field, Varint), .. RawVarint(unchecked((ulong)value))];

    public static byte[] Bytes(int field, byte[] data) => [.. Tag(field, Delimited), .. RawVarint((ulong)data.Length), .. data];

    public static byte[] Text(int field, string text) => Bytes(field, Encoding.UTF8.GetBytes(text));

    public static byte[] Float(int field, float value) => [.. Tag(field, Fixed32), .. BitConverter.GetBytes(value)];

    public static byte[] Double(int field, double value) => [.. Tag(field, Fixed64), .. BitConverter.GetBytes(value)];

    public static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];

    /// <summary>A ModelProto.SentencePiece: piece = 1, score = 2, type = 3 (absent: NORMAL).</summary>
    public static byte[] Piece(string text, int? type = null, float score = 0f) =>
        Bytes(1, Concat(Text(1, text), Float(2, score), type is int t ? Int(3, t) : []));

    public static byte[] TrainerSpec(params byte[][] fields) => Bytes(2, Concat(fields));

    public static byte[] NormalizerSpec(params byte[][] fields) => Bytes(3, Concat(fields));

    /// <summary>One field as read back: its number, wire type, varint value (wire 0) and bytes (the payload of wire 2).</summary>
    public sealed record Field(int Number, int Wire, ulong Value, byte[] Payload, byte[] Raw);

    /// <summary>The top-level fields of a message, in file order.</summary>
    public static List<Field> Fields(byte[] message)
    {
        var fields = new List<Field>();
        var at = 0;
        while (at < message.Length)
        {
            var start = at;
            var tag = ReadVarint(message, ref at);
            int number = (int)(tag >> 3), wire = (int)(tag & 7);
            ulong value = 0;
            byte[] payload = [];
            switch (wire)
            {
                case Varint:
                    value = ReadVarint(message, ref at);
                    break;
                case Delimited:
                    var length = (int)ReadVarint(message, ref at);
                    payload = message[at..(at + length)];
                    at += length;
                    break;
                case Fixed32:
                    payload = message[at..(at + 4)];
                    at += 4;
                    break;
                case Fixed64:
                    payload = message[at..(at + 8)];
                    at += 8;
                    break;
                default:
                    throw new InvalidOperationException($"wire type {wire}");
            }
            fields.Add(new Field(number, wire, value, payload, message[start..at]));
        }
        return fields;
    }

    /// <summary>The model with <paramref name="extra"/> appended to its trainer spec (the last value of a field wins).</summary>
    public static byte[] AppendToTrainerSpec(byte[] model, params byte[][] extra) => AppendTo(model, 2, extra);

    /// <summary>The model with <paramref name="extra"/> appended to its normalizer spec.</summary>
    public static byte[] AppendToNormalizerSpec(byte[] model, params byte[][] extra) => AppendTo(model, 3, extra);

    private static byte[] AppendTo(byte[] model, int section, byte[][] extra) =>
        Concat([.. Fields(model).Select(f => f.Number == section && f.Wire == Delimited ? Bytes(section, Concat([f.Payload, .. extra])) : f.Raw)]);

    private static ulong ReadVarint(byte[] data, ref int at)
    {
        ulong result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = data[at++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
    }
}
