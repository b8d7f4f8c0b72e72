using System.Globalization;
using System.Text;
using System.Text.Json;
using LoraHub.Core.Tensors;
using Xunit;
using static LoraHub.Core.Tensors.RestrictedUnpickler;

namespace LoraHub.Core.Tests.Tensors;

/// <summary>
/// The pickle reader on its own: what it builds from each opcode (checked against pickles CPython itself wrote, see
/// fixtures/pickle/make_cpython_pickles.py), and how it refuses a malformed or oversized pickle: one error that names the
/// file, the entry, the byte offset of the opcode and the problem.
/// </summary>
public class PickleOpcodeTests
{
    private const string File = "/models/m/adapter_model.bin";
    private const string Entry = "archive/data.pkl";

    private static object Load(params byte[] pickle) => RestrictedUnpickler.Load(pickle, File, Entry);

    /// <summary>PROTO 2, the body, STOP.</summary>
    private static byte[] P(params byte[] body) => [0x80, 2, .. body, (byte)'.'];

    private static byte[] U32(int n) => BitConverter.GetBytes((uint)n);

    /// <summary>The text make_cpython_pickles.py's canon() writes for the same value.</summary>
    internal static string Canon(object? value) => value switch
    {
        PyNone => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => double.IsInteger(d) ? d.ToString("0.0", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e'),
        string s => $"'{s}'",
        PyTuple t => "(" + string.Join(", ", t.Items.Select(Canon)) + ")",
        PyList l => "[" + string.Join(", ", l.Items.Select(Canon)) + "]",
        PyDict d => "{" + string.Join(", ", d.Items.Select(kv => Canon(kv.Key) + ": " + Canon(kv.Value))) + "}",
        _ => throw new InvalidOperationException($"unexpected {value?.GetType().Name ?? "null"}"),
    };

    private static void Refused(byte[] pickle, int atByte, string problem)
    {
        var e = Assert.Throws<TensorFileException>(() => Load(pickle));
        Assert.Equal(File, e.FilePath);
        Assert.Equal($"{File}: {Entry} at byte {atByte}: {problem}", e.Message);
    }

    [Fact]
    public void Pickles_written_by_cpython_read_as_python_reads_them()
    {
        using var json = JsonDocument.Parse(System.IO.File.ReadAllText(TensorFixtures.Path("pickle", "cpython_pickles.json")));
        var cases = json.RootElement.GetProperty("cases").EnumerateArray().ToList();
        Assert.Equal(36, cases.Count); // nine values, protocols 2 to 5
        foreach (var c in cases)
        {
            var bytes = Convert.FromHexString(c.GetProperty("pickle").GetString()!);
            var label = $"{c.GetProperty("name").GetString()} (protocol {c.GetProperty("protocol").GetInt32()})";
            Assert.True(c.GetProperty("canon").GetString() == Canon(Load(bytes)), label);
        }
    }

    [Fact]
    public void A_memo_get_returns_the_very_object_that_was_put()
    {
        // [l, l] with l = [] : EMPTY_LIST, BINPUT 0, MARK, EMPTY_LIST BINPUT 1, BINGET 1, APPENDS ... as CPython writes it.
        var top = (PyList)Load(P([(byte)']', (byte)'q', 0, (byte)'(', (byte)']', (byte)'q', 1, (byte)'h', 1, (byte)'e']));
        Assert.Equal(2, top.Items.Count);
        Assert.Same(top.Items[0], top.Items[1]);
        // MEMOIZE numbers entries in order; LONG_BINPUT/LONG_BINGET take a 4-byte key.
        var memo = Load(P([(byte)'K', 5, 0x94, (byte)'0', (byte)'K', 6, 0x94, (byte)'r', .. U32(70000), (byte)'0',
            (byte)'h', 0, (byte)'h', 1, (byte)'j', .. U32(70000), 0x87]));
        Assert.Equal("(5, 6, 6)", Canon(memo));
    }

    [Fact]
    public void Opcodes_python_3_does_not_write_but_the_format_allows_are_read()
    {
        // BINSTRING and SHORT_BINSTRING (Python 2 str, Latin-1), BINUNICODE8, DICT and LIST from a MARK.
        Assert.Equal("'né'", Canon(Load(P([(byte)'T', .. U32(2), (byte)'n', 0xE9]))));
        Assert.Equal("'ab'", Canon(Load(P([(byte)'U', 2, (byte)'a', (byte)'b']))));
        Assert.Equal("''", Canon(Load(P([(byte)'U', 0]))));
        Assert.Equal("'日'", Canon(Load(P([0x8d, .. BitConverter.GetBytes(3UL), .. Encoding.UTF8.GetBytes("日")]))));
        Assert.Equal("{'a': 1, 'b': 2}", Canon(Load(P([(byte)'(', (byte)'X', .. U32(1), (byte)'a', (byte)'K', 1, (byte)'X', .. U32(1), (byte)'b', (byte)'K', 2, (byte)'d']))));
        Assert.Equal("[1, True, None]", Canon(Load(P([(byte)'(', (byte)'K', 1, 0x88, (byte)'N', (byte)'l']))));
        // A repeated key keeps its first position and takes the last value, as in Python.
        Assert.Equal("{'a': 3, 'b': 2}", Canon(Load(P([(byte)'}', (byte)'(', (byte)'U', 1, (byte)'a', (byte)'K', 1, (byte)'U', 1, (byte)'b', (byte)'K', 2, (byte)'U', 1, (byte)'a', (byte)'K', 3, (byte)'u']))));
        // LONG1 of zero bytes is 0; of 8 bytes is a whole int64 (no sign extension needed).
        Assert.Equal("0", Canon(Load(P([0x8a, 0]))));
        Assert.Equal("-2", Canon(Load(P([0x8a, 8, .. BitConverter.GetBytes(-2L)]))));
        Assert.Equal("-128", Canon(Load(P([0x8a, 1, 0x80]))));
        Assert.Equal("255", Canon(Load(P([0x8a, 2, 0xFF, 0x00]))));
    }

    [Fact]
    public void Pop_pop_mark_and_build_on_a_dict_leave_the_value_python_would()
    {
        // POP drops the top value; POP_MARK drops everything down to the MARK.
        Assert.Equal("1", Canon(Load(P([(byte)'K', 1, (byte)'K', 2, (byte)'0']))));
        Assert.Equal("1", Canon(Load(P([(byte)'K', 1, (byte)'(', (byte)'K', 2, (byte)'K', 3, (byte)'1']))));
        // BUILD on a dict drops the state (torch's _metadata of module versions).
        Assert.Equal("{'a': 1}", Canon(Load(P([(byte)'}', (byte)'U', 1, (byte)'a', (byte)'K', 1, (byte)'s', (byte)'}', (byte)'U', 1, (byte)'v', (byte)'K', 9, (byte)'s', (byte)'b']))));
        // FRAME is a read-ahead hint: its 8-byte length is skipped, whatever it says.
        Assert.Equal("7", Canon(Load([0x80, 4, 0x95, .. BitConverter.GetBytes(123456789L), (byte)'K', 7, (byte)'.'])));
        // Protocol 5 is the newest this reader knows.
        Assert.Equal("7", Canon(Load([0x80, 5, (byte)'K', 7, (byte)'.'])));
    }

    public static TheoryData<byte[], int, string> MalformedPickles() => new()
    {
        { [0x80, 6, (byte)'.'], 0, "unsupported pickle protocol 6" },
        { P([(byte)'K', 1, (byte)'K', 2]), 6, "STOP with 2 values on the stack and 0 open marks" },
        { P([(byte)'(', (byte)'K', 1]), 5, "STOP with 1 values on the stack and 1 open marks" },
        { P(), 2, "STOP with 0 values on the stack and 0 open marks" },
        { P([(byte)'0']), 2, "pickle stack underflow" },
        { P([(byte)'K', 1, (byte)'(', (byte)'0']), 5, "pickle stack underflow" },
        { P([(byte)']', (byte)'(', (byte)'K', 1, (byte)'a']), 6, "pickle stack underflow" },
        { P([(byte)'1']), 2, "no MARK to pop to" },
        { P([(byte)'t']), 2, "no MARK to pop to" },
        { P([(byte)'T', .. BitConverter.GetBytes(-1)]), 2, "negative BINSTRING length -1" },
        { [0x80, 2, (byte)'K'], 2, "pickle ends in the middle of an opcode (truncated?)" },
        { [0x80, 2, (byte)'J', 1, 2], 2, "pickle declares 4 bytes but only 2 remain (truncated?)" },
        { [0x80, 2, (byte)'X', .. U32(100), (byte)'a'], 2, "pickle declares a 100-byte string but only 1 bytes remain (truncated?)" },
        { [0x80, 2, (byte)'U', 5, (byte)'a', (byte)'b'], 2, "pickle declares 5 bytes but only 2 remain (truncated?)" },
        { P([(byte)'X', .. U32(2), 0xC3, 0x28]), 2, "string is not valid UTF-8" },
        { [0x80, 2, (byte)'c', .. "collections"u8], 2, "GLOBAL name is not terminated by a newline (truncated?)" },
        { P([0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 2, "LONG1 integer of 9 bytes is too large" },
        { P([(byte)'h', 5]), 2, "memo key 5 was never stored" },
        { P([(byte)'j', .. U32(300)]), 2, "memo key 300 was never stored" },
        { P([(byte)'}', (byte)'K', 1, (byte)'a']), 5, "APPEND on a dict, expected a list" },
        { P([(byte)'K', 3, (byte)'(', (byte)'K', 1, (byte)'e']), 7, "APPENDS on int 3, expected a list" },
        { P([(byte)']', (byte)'K', 1, (byte)'K', 2, (byte)'s']), 7, "SETITEM on a list, expected a dict" },
        { P([0x88, (byte)'(', (byte)'u']), 4, "SETITEMS on True, expected a dict" },
        { P([(byte)'}', (byte)'(', (byte)'K', 1, (byte)'u']), 6, "odd number of items for a dict" },
        { P([(byte)'(', (byte)'K', 1, (byte)'d']), 5, "odd number of items for a dict" },
        { P([(byte)'}', (byte)')', (byte)'K', 1, (byte)'s']), 6, "dict key of type a tuple of 0 is not supported" },
        { P([(byte)'}', (byte)']', (byte)'K', 1, (byte)'s']), 6, "dict key of type a list is not supported" },
        { P([(byte)'K', 1, (byte)'U', 1, (byte)'b', 0x93]), 7, "STACK_GLOBAL needs two strings (module, name)" },
        { P([(byte)'U', 1, (byte)'a', (byte)'K', 1, 0x93]), 7, "STACK_GLOBAL needs two strings (module, name)" },
        { P([(byte)'K', 1, (byte)')', (byte)'R']), 5, "REDUCE on int 1, which is not an allowed callable" },
        { P([(byte)'X', .. U32(50), .. Encoding.ASCII.GetBytes(new string('x', 50)), (byte)')', (byte)'R']), 58, $"REDUCE on str '{new string('x', 40)}…', which is not an allowed callable" },
        { P([(byte)'c', .. "collections\nOrderedDict\n"u8, (byte)']', (byte)'R']), 28, "REDUCE arguments for 'collections.OrderedDict' are a list, not a tuple" },
        { P([(byte)'c', .. "collections\nOrderedDict\n"u8, (byte)'K', 1, 0x85, (byte)'R']), 30, "OrderedDict called with arguments" },
        { P([(byte)']', (byte)'}', (byte)'b']), 4, "BUILD on a list is not supported" },
        { P([(byte)'K', 1, (byte)'Q']), 4, "unsupported persistent id int 1; expected ('storage', type, key, location, numel)" },
        { P([(byte)'i']), 2, "unsupported pickle opcode 0x69 ('i'); only the opcodes torch.save writes are accepted" },
        { P([0xFF]), 2, "unsupported pickle opcode 0xff; only the opcodes torch.save writes are accepted" },
        { P([0x7F]), 2, "unsupported pickle opcode 0x7f; only the opcodes torch.save writes are accepted" },
        { P([0x1F]), 2, "unsupported pickle opcode 0x1f; only the opcodes torch.save writes are accepted" },
        { P([(byte)' ']), 2, "unsupported pickle opcode 0x20 (' '); only the opcodes torch.save writes are accepted" },
        { [0x80, 2, (byte)'K', 1], 2, "pickle ends without a STOP opcode (truncated?)" },
        { [0x80, 2, (byte)'J', 1, 2, 3, 4], 2, "pickle ends without a STOP opcode (truncated?)" },
        { [0x80, 2, (byte)'X', .. U32(1), (byte)'a'], 2, "pickle ends without a STOP opcode (truncated?)" },
        { P([(byte)'X', .. U32(40), .. Encoding.ASCII.GetBytes(new string('y', 40)), (byte)')', (byte)'R']), 48, $"REDUCE on str '{new string('y', 40)}', which is not an allowed callable" },
        { P([0x89, (byte)')', (byte)'R']), 4, "REDUCE on False, which is not an allowed callable" },
        { P([(byte)'G', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, (byte)')', (byte)'R']), 12, "REDUCE on float, which is not an allowed callable" },
        { P([(byte)'N', (byte)')', (byte)'R']), 4, "REDUCE on None, which is not an allowed callable" },
        { P([(byte)'(', (byte)'t', (byte)')', (byte)'R']), 5, "REDUCE on a tuple of 0, which is not an allowed callable" },
        { P([(byte)'}', (byte)')', (byte)'R']), 4, "REDUCE on a dict, which is not an allowed callable" },
        { P([(byte)'c', .. "torch\nFloatStorage\n"u8, (byte)')', (byte)'R']), 23, "'torch.FloatStorage' cannot be called" },
        { P([.. StoragePid, (byte)')', (byte)'R']), 2 + StoragePid.Length + 1, "REDUCE on a storage, which is not an allowed callable" },
        { P([.. TensorOfStorage, (byte)')', (byte)'R']), 2 + TensorOfStorage.Length + 1, "REDUCE on a tensor, which is not an allowed callable" },
    };

    /// <summary>('storage', torch.FloatStorage, '0', 'cpu', 4) then BINPERSID: a storage on the stack.</summary>
    private static readonly byte[] StoragePid =
        [(byte)'(', (byte)'U', 7, .. "storage"u8, (byte)'c', .. "torch\nFloatStorage\n"u8, (byte)'U', 1, (byte)'0', (byte)'U', 3, .. "cpu"u8, (byte)'K', 4, (byte)'t', (byte)'Q'];

    /// <summary>_rebuild_tensor(storage, 0, (4,), (1,)): a tensor on the stack.</summary>
    private static readonly byte[] TensorOfStorage =
        [(byte)'c', .. "torch._utils\n_rebuild_tensor\n"u8, (byte)'(', .. StoragePid, (byte)'K', 0, (byte)'K', 4, 0x85, (byte)'K', 1, 0x85, (byte)'t', (byte)'R'];

    [Theory]
    [MemberData(nameof(MalformedPickles))]
    public void Malformed_pickles_are_refused_naming_the_file_the_entry_the_byte_and_the_problem(byte[] pickle, int atByte, string problem) =>
        Refused(pickle, atByte, problem);

    [Fact]
    public void A_pickle_as_large_as_a_big_models_state_dict_is_within_every_budget()
    {
        // 100,000 entries, as a state dict of a large model has tens of thousands: {"k0": 0, "k1": 1, ...} through
        // SETITEMS batches of 1000 as CPython writes them, and a list of the same length through APPENDS.
        var dict = new List<byte> { 0x80, 2, (byte)'}' };
        var list = new List<byte> { 0x80, 2, (byte)']' };
        for (int batch = 0; batch < 100; batch++)
        {
            dict.Add((byte)'('); list.Add((byte)'(');
            for (int i = batch * 1000; i < (batch + 1) * 1000; i++)
            {
                var key = Encoding.ASCII.GetBytes($"k{i}");
                dict.AddRange([(byte)'U', (byte)key.Length, .. key, (byte)'J', .. BitConverter.GetBytes(i)]);
                list.Add(0x88);
            }
            dict.Add((byte)'u'); list.Add((byte)'e');
        }
        var d = (PyDict)Load([.. dict, (byte)'.']);
        Assert.Equal(100_000, d.Items.Count);
        Assert.Equal(new KeyValuePair<object, object?>("k99999", 99999L), d.Items[^1]);
        Assert.Equal(100_000, ((PyList)Load([.. list, (byte)'.'])).Items.Count);
    }

    [Fact]
    public void Globals_outside_the_allow_list_are_refused_when_named()
    {
        // Named with GLOBAL or STACK_GLOBAL, refused before anything could call them; close relatives of allowed names too.
        Refused(P([(byte)'c', .. "builtins\neval\n"u8]), 2, "refusing pickle global 'builtins.eval' (only tensor rebuild globals are allowed)");
        Refused(P([(byte)'U', 2, (byte)'o', (byte)'s', (byte)'U', 6, .. "system"u8, 0x93]), 14, "refusing pickle global 'os.system' (only tensor rebuild globals are allowed)");
        Refused(P([(byte)'c', .. "torch\nComplexFloatStorage\n"u8]), 2, "refusing pickle global 'torch.ComplexFloatStorage' (only tensor rebuild globals are allowed)");
        Refused(P([(byte)'c', .. "torch._utils\n_rebuild_qtensor\n"u8]), 2, "refusing pickle global 'torch._utils._rebuild_qtensor' (only tensor rebuild globals are allowed)");
        Refused(P([(byte)'c', .. "Collections\nOrderedDict\n"u8]), 2, "refusing pickle global 'Collections.OrderedDict' (only tensor rebuild globals are allowed)");
    }

    [Fact]
    public void Budgets_cap_the_stack_the_nesting_and_the_memo_of_an_oversized_pickle()
    {
        // Exactly at each cap is fine (the pickle then fails for its own reason); one more is refused as over budget.
        byte[] Repeat(byte op, int n, params byte[] tail) => [0x80, 2, .. Enumerable.Repeat(op, n), .. tail];

        Refused(Repeat(0x88, MaxStackDepth, (byte)'.'), 2 + MaxStackDepth, $"STOP with {MaxStackDepth} values on the stack and 0 open marks");
        Refused(Repeat(0x88, MaxStackDepth + 1, (byte)'.'), 2 + MaxStackDepth, $"more than {MaxStackDepth} values on the pickle stack (budget)");

        Refused(Repeat((byte)'(', MaxMarks, (byte)'.'), 2 + MaxMarks, $"STOP with 0 values on the stack and {MaxMarks} open marks");
        Refused(Repeat((byte)'(', MaxMarks + 1, (byte)'.'), 2 + MaxMarks, $"more than {MaxMarks} nested MARKs (budget)");

        byte[] memo = [0x80, 4, 0x88, .. Enumerable.Repeat((byte)0x94, MaxMemo), (byte)'q', 0, (byte)'.'];
        Assert.True((bool)Load(memo)); // a full memo still takes a put to a key it holds
        Refused([0x80, 4, 0x88, .. Enumerable.Repeat((byte)0x94, MaxMemo + 1), (byte)'.'], 3 + MaxMemo, $"more than {MaxMemo} memo entries (budget)");
    }
}
