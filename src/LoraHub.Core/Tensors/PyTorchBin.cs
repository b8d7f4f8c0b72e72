using System.IO.Compression;
using System.Text;
using TorchSharp;
using static LoraHub.Core.Tensors.RestrictedUnpickler;

namespace LoraHub.Core.Tensors;

/// <summary>
/// Reader for state dicts written by <c>torch.save</c> (PyTorch 1.6 and later): a zip archive holding
/// <c>&lt;root&gt;/data.pkl</c> (a pickle describing the dict and each tensor as a strided view of a storage)
/// and <c>&lt;root&gt;/data/&lt;key&gt;</c> (each storage's raw little-endian bytes). This is the format of PEFT's
/// adapter_model.bin and of pytorch_model.bin. The pickle is read by <see cref="RestrictedUnpickler"/>,
/// which never runs code: a pickle naming anything but the tensor-rebuild globals is refused.
/// </summary>
public static class PyTorchBin
{
    // data.pkl only describes structure (a few bytes per tensor); anything this large is not a state dict.
    private const long MaxPickleBytes = 256L << 20;

    /// <summary>Fixed part of the budget on the bytes an archive's tensors may claim (see <see cref="ClaimBudget"/>).</summary>
    public const long ClaimBudgetBase = 64L << 20;

    /// <summary>Claimed bytes allowed per byte of archive on top of <see cref="ClaimBudgetBase"/>.</summary>
    public const long ClaimBudgetPerByte = 8;

    /// <summary>
    /// The most bytes an archive of this size may make the reader allocate: its storages plus every copy its views
    /// need. torch.save stores entries uncompressed, so a real state dict claims about its own size; a deflated entry of
    /// zeros, or a hundred views copying one storage, would otherwise turn a few KB into gigabytes (issue 13).
    /// </summary>
    public static long ClaimBudget(long archiveLength) => ClaimBudgetBase + ClaimBudgetPerByte * archiveLength;

    /// <summary>
    /// Loads a torch.save state dict (name → tensor) onto the CPU. Floating tensors are cast to
    /// <paramref name="castTo"/> (null keeps the stored dtype); integer and bool tensors keep theirs.
    /// Each returned tensor owns its memory (no two share a storage) and belongs to no dispose scope:
    /// the caller disposes them.
    /// </summary>
    public static Dictionary<string, torch.Tensor> Load(string path, torch.ScalarType? castTo = torch.ScalarType.Float32)
    {
        using var archive = Open(path);
        return archive.ReadAll(castTo);
    }

    /// <summary>Opens an archive and validates its pickle, storages and views; data is read later.</summary>
    internal static Archive Open(string path)
    {
        // Stryker disable once Statement : every supported host is little-endian; the check is for the others
        TensorIO.EnsureLittleEndianHost();
        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath)) throw new TensorFileException(fullPath, "file not found");

        var zip = OpenZip(fullPath);
        try
        {
            return Corrupt(fullPath, () => new Archive(fullPath, zip));
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>Corrupt local headers, CRC mismatches and the like surface while reading entries: name the file.</summary>
    private static T Corrupt<T>(string fullPath, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (InvalidDataException e)
        {
            throw new TensorFileException(fullPath, $"corrupt zip archive ({e.Message})", e);
        }
    }

    private static ZipArchive OpenZip(string fullPath)
    {
        // Stryker disable once Bitwise : a buffer size (0 = unbuffered): the same bytes, speed only
        var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            Span<byte> magic = stackalloc byte[4];
            if (stream.Length < 4 || stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4
                || magic[0] != (byte)'P' || magic[1] != (byte)'K')
            {
                throw new TensorFileException(fullPath,
                    "not a zip archive; torch.save files are zip archives since PyTorch 1.6 " +
                    "(the older raw-pickle format is not supported)");
            }
            stream.Position = 0;
            return new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false);
        }
        catch (InvalidDataException e)
        {
            stream.Dispose();
            throw new TensorFileException(fullPath, $"not a readable zip archive ({e.Message})", e);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>An open torch.save archive whose pickle, storages and views have been validated.</summary>
    internal sealed class Archive : ITensorFile
    {
        private readonly string fullPath;
        private readonly ZipArchive zip;
        private readonly List<(string Name, TensorRef Tensor)> tensors;
        private readonly Dictionary<string, TensorRef> byName;
        private readonly Dictionary<string, (StorageRef Storage, ZipArchiveEntry Entry, int Users)> storages;

        internal Archive(string fullPath, ZipArchive zip)
        {
            this.fullPath = fullPath;
            this.zip = zip;
            // The archive has one top folder (named "archive" by current torch, the file's stem by older ones).
            var pickles = zip.Entries
                .Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                .ToList();
            if (pickles.Count == 0)
                throw new TensorFileException(fullPath, "zip archive has no '<root>/data.pkl' entry, so it is not a torch.save file");
            if (pickles.Count > 1)
                throw new TensorFileException(fullPath, $"zip archive has several data.pkl entries ({string.Join(", ", pickles.Select(p => p.FullName))})");
            var pickleEntry = pickles[0];
            var root = pickleEntry.FullName[..^"data.pkl".Length];

            if (zip.GetEntry(root + "byteorder") is { } byteOrderEntry)
            {
                var order = Encoding.ASCII.GetString(ReadSmallEntry(fullPath, byteOrderEntry, 64)).Trim();
                if (order != "little")
                    throw new TensorFileException(fullPath, $"{byteOrderEntry.FullName} says '{order}'; only little-endian archives are supported");
            }

            var pickle = ReadSmallEntry(fullPath, pickleEntry, MaxPickleBytes);
            var top = RestrictedUnpickler.Load(pickle, fullPath, pickleEntry.FullName);
            tensors = ToTensorList(fullPath, pickleEntry.FullName, top);
            byName = tensors.ToDictionary(t => t.Name, t => t.Tensor, StringComparer.Ordinal);

            // Validate every storage and view before reading any data, so a bad file fails fast and cheaply.
            long archiveLength = new FileInfo(fullPath).Length;
            storages = new Dictionary<string, (StorageRef Storage, ZipArchiveEntry Entry, int Users)>(StringComparer.Ordinal);
            foreach (var (name, t) in tensors)
            {
                var s = t.Storage;
                if (storages.TryGetValue(s.Key, out var known))
                {
                    if (known.Storage.Type != s.Type || known.Storage.Numel != s.Numel)
                        throw new TensorFileException(fullPath, $"tensor '{name}': storage '{s.Key}' is described as {s.Numel} x {s.Type} here but as {known.Storage.Numel} x {known.Storage.Type} elsewhere");
                    storages[s.Key] = known with { Users = known.Users + 1 };
                }
                else
                {
                    var entryName = $"{root}data/{s.Key}";
                    var entry = zip.GetEntry(entryName)
                        ?? throw new TensorFileException(fullPath, $"tensor '{name}': storage entry '{entryName}' is missing from the archive");
                    long? bytes = TensorIO.CheckedNumel([s.Numel, TensorIO.ElementSize(s.Type)]);
                    if (entry.Length != bytes)
                        throw new TensorFileException(fullPath, $"tensor '{name}': storage entry '{entryName}' holds {entry.Length} bytes but {s.Numel} x {s.Type} needs {(bytes is { } b ? b.ToString() : "more than 2^63")}");
                    // The zip directory's sizes are not trusted: deflate cannot expand more than ~1032:1, and a
                    // stored entry cannot be larger than the archive. This stops a tiny file from demanding a huge allocation.
                    if (entry.CompressedLength > archiveLength || entry.Length / 1100 > entry.CompressedLength)
                        throw new TensorFileException(fullPath, $"storage entry '{entryName}' claims {entry.Length} bytes from {entry.CompressedLength} compressed bytes in a {archiveLength}-byte archive (corrupt zip)");
                    storages[s.Key] = (s, entry, 1);
                }
                ValidateView(fullPath, name, t);
            }
            // Budget what reading will build, from the headers alone: a zip member claiming 2 GiB is refused before any read.
            long claimed = 0;
            foreach (var stored in storages.Values) claimed += stored.Entry.Length;
            foreach (var (_, t) in tensors)
            {
                var (storageRef, _, users) = storages[t.Storage.Key];
                if (users != 1 || !IsWhole(t, storageRef)) claimed += TensorIO.CheckedNumel([.. t.Size, TensorIO.ElementSize(storageRef.Type)]) ?? long.MaxValue / 4;
                if (claimed > ClaimBudget(archiveLength)) break;
            }
            if (claimed > ClaimBudget(archiveLength))
                throw new TensorFileException(fullPath, $"its tensors claim more than {ClaimBudget(archiveLength)} bytes, the budget for a {archiveLength}-byte archive ({ClaimBudgetPerByte} x its size + {ClaimBudgetBase >> 20} MiB); refused before reading");
            Tensors = tensors.Select(t => new StoredTensor(t.Name, t.Tensor.Storage.Type, t.Tensor.Size, fullPath)).ToList();
        }

        public string FilePath => fullPath;

        public IReadOnlyList<StoredTensor> Tensors { get; }

        public void ReadInto(string name, torch.Tensor destination)
        {
            var t = byName[name];
            var (storageRef, entry, users) = storages[t.Storage.Key];
            if (users == 1 && IsWhole(t, storageRef))
            {
                // The tensor is its storage: stream the entry into the destination (no copy when the dtype matches).
                Corrupt(fullPath, () => ReadEntry(entry, stream =>
                {
                    Checkpoint.ReadInto(stream, storageRef.Type, storageRef.Numel, destination);
                    return true;
                }));
                return;
            }
            using var noGrad = torch.no_grad();
            using var storage = ReadStorage(storageRef, entry);
            using var view = storage.as_strided(t.Size, t.Stride, t.Offset);
            destination.copy_(view);
        }

        public Dictionary<string, torch.Tensor> ReadAll(torch.ScalarType? castTo) => Corrupt(fullPath, () =>
        {
            using var scope = torch.NewDisposeScope();
            var built = new Dictionary<string, torch.Tensor>(tensors.Count, StringComparer.Ordinal);
            // One storage at a time: peak memory is the result plus the largest storage, not twice the model.
            foreach (var group in tensors.GroupBy(t => t.Tensor.Storage.Key, StringComparer.Ordinal))
            {
                var (storageRef, entry, users) = storages[group.Key];
                var storage = ReadStorage(storageRef, entry);
                foreach (var (name, t) in group)
                {
                    var view = storage.as_strided(t.Size, t.Stride, t.Offset);
                    torch.Tensor owned;
                    if (users == 1 && IsWhole(t, storageRef))
                        owned = view; // sole user of the whole storage: take it over instead of copying
                    else
                        owned = view.is_contiguous() ? view.clone() : view.contiguous(); // own copy, dense layout
                    built[name] = TensorIO.CastIfFloating(owned, castTo);
                }
                storage.Dispose(); // views built from it keep the memory they still need alive
            }

            var result = new Dictionary<string, torch.Tensor>(tensors.Count, StringComparer.Ordinal);
            foreach (var (name, _) in tensors) result[name] = built[name];
            scope.Detach(result.Values);
            return result;
        });

        /// <summary>A view of the whole storage in its natural layout.</summary>
        private static bool IsWhole(TensorRef t, StorageRef storage) =>
            t.Offset == 0 && TensorIO.CheckedNumel(t.Size) == storage.Numel && IsContiguousStride(t.Size, t.Stride);

        private static bool IsContiguousStride(long[] size, long[] stride)
        {
            long expected = 1;
            for (var i = size.Length - 1; i >= 0; i--)
            {
                if (size[i] != 1 && stride[i] != expected) return false;
                expected *= size[i];
            }
            return true;
        }

        private torch.Tensor ReadStorage(StorageRef storageRef, ZipArchiveEntry entry) =>
            Corrupt(fullPath, () => ReadEntry(entry, stream => TensorIO.ReadFlat(stream, storageRef.Type, storageRef.Numel)));

        private T ReadEntry<T>(ZipArchiveEntry entry, Func<Stream, T> read)
        {
            using var stream = entry.Open();
            try
            {
                return read(stream);
            }
            catch (EndOfStreamException e)
            {
                throw new TensorFileException(fullPath, $"storage entry '{entry.FullName}' ends early", e);
            }
        }

        public void Dispose() => zip.Dispose();
    }

    private static List<(string Name, TensorRef Tensor)> ToTensorList(string fullPath, string entryName, object top)
    {
        if (top is not PyDict dict)
            throw new TensorFileException(fullPath, $"{entryName} holds {Describe(top)}, not a state dict of name → tensor");
        var list = new List<(string, TensorRef)>(dict.Items.Count);
        foreach (var (key, value) in dict.Items)
        {
            if (key is not string name)
                throw new TensorFileException(fullPath, $"{entryName}: state dict key {Describe(key)} is not a string");
            if (value is not TensorRef tensor)
                throw new TensorFileException(fullPath, $"{entryName}: entry '{name}' is {Describe(value)}, not a tensor (a training checkpoint rather than a state dict?)");
            list.Add((name, tensor));
        }
        return list;
    }

    private static void ValidateView(string fullPath, string name, TensorRef t)
    {
        TensorFileException Bad(string problem) => new(fullPath, $"tensor '{name}': {problem}");
        if (t.Size.Length != t.Stride.Length)
            throw Bad($"size {TensorIO.FormatShape(t.Size)} and stride {TensorIO.FormatShape(t.Stride)} have different lengths");
        if (t.Offset < 0) throw Bad($"negative storage offset {t.Offset}");
        if (t.Size.Any(d => d < 0)) throw Bad($"negative dimension in size {TensorIO.FormatShape(t.Size)}");
        if (t.Stride.Any(d => d < 0)) throw Bad($"negative stride in {TensorIO.FormatShape(t.Stride)}");
        if (TensorIO.CheckedNumel([.. t.Size, TensorIO.ElementSize(t.Storage.Type)]) is null)
            throw Bad($"size {TensorIO.FormatShape(t.Size)} overflows");
        if (t.Size.Any(d => d == 0)) return; // empty: reads nothing

        // The view reads elements offset .. offset + sum((size_i - 1) * stride_i), all inclusive.
        long last;
        try
        {
            last = t.Offset;
            for (int i = 0; i < t.Size.Length; i++) last = checked(last + (t.Size[i] - 1) * t.Stride[i]);
        }
        catch (OverflowException)
        {
            throw Bad("size and stride overflow");
        }
        // last >= 0 here (offset, sizes and strides are not negative), so last + 1 fits a ulong even at long.MaxValue.
        if (last >= t.Storage.Numel)
            throw Bad($"view (offset {t.Offset}, size {TensorIO.FormatShape(t.Size)}, stride {TensorIO.FormatShape(t.Stride)}) needs {(ulong)last + 1} elements but storage '{t.Storage.Key}' has {t.Storage.Numel}");
    }

    private static byte[] ReadSmallEntry(string fullPath, ZipArchiveEntry entry, long limit)
    {
        if (entry.Length > limit)
            throw new TensorFileException(fullPath, $"{entry.FullName} is {entry.Length} bytes, more than the {limit}-byte limit");
        using var stream = entry.Open();
        using var buffer = new MemoryStream();
        // Copy with a cap: the size in the zip directory is not trusted for compressed entries.
        var chunk = new byte[81920];
        int read;
        while ((read = stream.Read(chunk)) > 0)
        {
            if (buffer.Length + read > limit)
                throw new TensorFileException(fullPath, $"{entry.FullName} is more than the {limit}-byte limit");
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }
}
