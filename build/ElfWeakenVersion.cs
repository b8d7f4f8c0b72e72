// MSBuild inline task (RoslynCodeTaskFactory). Why: libLibTorchSharp.so from TorchSharp 0.107.0 requires
// GLIBCXX_3.4.32 only for the marker symbol _ZSt21ios_base_library_initv, which has no relocation and is
// never called. Debian 12's libstdc++ stops at 3.4.30, so the loader refuses the library. Marking that one
// version requirement weak (VER_FLG_WEAK in .gnu.version_r) makes the loader accept it; nothing else changes.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class ElfWeakenVersion : Task
{
    [Required] public ITaskItem[] Files { get; set; }
    [Required] public string Version { get; set; }

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            if (!File.Exists(path)) continue;
            try
            {
                var bytes = File.ReadAllBytes(path);
                int changed = Weaken(bytes, Version);
                if (changed > 0)
                {
                    var tmp = path + ".patching";
                    File.WriteAllBytes(tmp, bytes);
                    File.Copy(tmp, path, true);
                    File.Delete(tmp);
                    Log.LogMessage(MessageImportance.High, "Marked " + Version + " weak in " + path);
                }
            }
            catch (Exception e)
            {
                Log.LogError("Could not patch " + path + ": " + e.Message);
                return false;
            }
        }
        return true;
    }

    static int Weaken(byte[] b, string version)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (b[4] != 2 || b[5] != 1) throw new InvalidDataException("only 64-bit little-endian ELF is supported");
        long shoff = BitConverter.ToInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        int changed = 0;
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            uint type = BitConverter.ToUInt32(b, (int)sh + 4);
            if (type != 0x6ffffffe) continue; // SHT_GNU_verneed
            long off = BitConverter.ToInt64(b, (int)sh + 0x18);
            int link = BitConverter.ToInt32(b, (int)sh + 0x28);
            long strOff = BitConverter.ToInt64(b, (int)(shoff + (long)link * shentsize) + 0x18);
            long vn = off;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                uint aux = BitConverter.ToUInt32(b, (int)vn + 8);
                uint next = BitConverter.ToUInt32(b, (int)vn + 12);
                long va = vn + aux;
                for (int k = 0; k < cnt; k++)
                {
                    uint name = BitConverter.ToUInt32(b, (int)va + 8);
                    if (ReadCString(b, strOff + name) == version)
                    {
                        ushort flags = BitConverter.ToUInt16(b, (int)va + 4);
                        if ((flags & 2) == 0)
                        {
                            flags |= 2; // VER_FLG_WEAK
                            b[va + 4] = (byte)(flags & 0xff);
                            b[va + 5] = (byte)(flags >> 8);
                            changed++;
                        }
                    }
                    uint vnext = BitConverter.ToUInt32(b, (int)va + 12);
                    if (vnext == 0) break;
                    va += vnext;
                }
                if (next == 0) break;
                vn += next;
            }
        }
        return changed;
    }

    static string ReadCString(byte[] b, long at)
    {
        int end = (int)at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)at, end - (int)at);
    }
}
