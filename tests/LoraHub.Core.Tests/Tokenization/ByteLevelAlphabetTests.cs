using LoraHub.Core.Tokenization;
using Xunit;

namespace LoraHub.Core.Tests.Tokenization;

/// <summary>GPT-2's bytes_to_unicode table as byte-level BPE vocabularies are written in it.</summary>
public sealed class ByteLevelAlphabetTests
{
    [Fact]
    public void Printable_bytes_stand_for_themselves_and_the_other_68_follow_from_U0100_in_byte_order()
    {
        // "h", "é" (C3 A9 -> "Ã©"), space (0x20 -> "Ġ", the 33rd non-printable), newline (0x0A -> "Ċ").
        Assert.Equal("hÃ©lloĠĊ", ByteLevelAlphabet.Encode("héllo \n"));
        Assert.Equal("", ByteLevelAlphabet.Encode(""));

        var bytes = new List<byte>();
        foreach (var c in "Ā!~¡¬®ÿĠġŃ") ByteLevelAlphabet.AppendBytes(c.ToString(), bytes);
        // U+0100 is byte 0; U+0121 is 0x7F (after the 33 control bytes and space); U+0143, the last, is 0xAD.
        Assert.Equal(new byte[] { 0x00, (byte)'!', (byte)'~', 0xA1, 0xAC, 0xAE, 0xFF, 0x20, 0x7F, 0xAD }, bytes);
    }

    [Fact]
    public void A_token_with_a_character_outside_the_alphabet_is_taken_as_its_own_utf8_bytes()
    {
        // As the Rust ByteLevel decoder: an added token such as "<tool call>" (a real space) is its UTF-8 text, and the
        // bytes of its first characters that were already appended are taken back.
        var bytes = new List<byte> { 1, 2 };
        ByteLevelAlphabet.AppendBytes("ab cÃ", bytes);
        Assert.Equal(new byte[] { 1, 2, (byte)'a', (byte)'b', (byte)' ', (byte)'c', 0xC3, 0x83 }, bytes);

        ByteLevelAlphabet.AppendBytes("Ã©", bytes);
        Assert.Equal("ab cÃé", ByteLevelAlphabet.DecodeUtf8(bytes.Skip(2).ToList()));
    }
}
