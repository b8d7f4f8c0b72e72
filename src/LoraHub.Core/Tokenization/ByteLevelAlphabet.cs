namespace LoraHub.Core.Tokenization;

/// <summary>
/// The byte ↔ character table of byte-level BPE (GPT-2's bytes_to_unicode, used by Llama 3 and Qwen2): printable
/// bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves, the other 68 bytes for U+0100.. in byte order, so
/// 0x20 (space) is 'Ġ' and 0x0A is 'Ċ'. Vocabulary entries are written in these characters.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildTable();
    private static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    private static char[] BuildTable()
    {
        var table = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }

    /// <summary>The text's UTF-8 bytes written in the alphabet.</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (span, b) =>
        {
            for (var i = 0; i < b.Length; i++) span[i] = ByteToChar[b[i]];
        });
    }

    /// <summary>
    /// Appends a token's bytes: each character's byte when every character is in the alphabet, else the token's own
    /// UTF-8 bytes (an added token such as "&lt;tool_call&gt;" or one with spaces), as the Rust ByteLevel decoder does.
    /// </summary>
    public static void AppendBytes(string token, List<byte> bytes)
    {
        var start = bytes.Count;
        foreach (var c in token)
        {
            if (!CharToByte.TryGetValue(c, out var b))
            {
                bytes.RemoveRange(start, bytes.Count - start);
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(token));
                return;
            }
            bytes.Add(b);
        }
    }

    /// <summary>UTF-8 to text with invalid sequences replaced by U+FFFD (maximal subparts, as Rust's from_utf8_lossy).</summary>
    public static string DecodeUtf8(List<byte> bytes) => System.Text.Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
}
