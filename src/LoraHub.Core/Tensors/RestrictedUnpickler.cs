using System.Buffers.Binary;
using System.Text;
using TorchSharp;

namespace LoraHub.Core.Tensors;

/// <summary>
/// A pickle reader for the data.pkl of a torch.save archive that never executes anything.
/// Python's unpickler imports and calls whatever the pickle names (GLOBAL + REDUCE), which is how a
/// malicious checkpoint runs code. Here only the opcodes torch.save emits are understood, globals are
/// checked against a short allow-list the moment they are named, and "calling" an allowed global only
/// builds a plain description (<see cref="TensorRef"/>, <see cref="PyDict"/>): no reflection, no I/O.
/// </summary>
internal sealed class RestrictedUnpickler
{
    // ----- the Python values this reader can produce ---------------------------------------------

    /// <summary>An allow-listed global; <see cref="Kind"/> decides what REDUCE does with it.</summary>
    internal sealed record PyGlobal(string Module, string Name, GlobalKind Kind, torch.ScalarType StorageType = default)
    {
        public string FullName => $"{Module}.{Name}";
    }

    internal enum GlobalKind { OrderedDict, RebuildTensorV2, RebuildTensor, RebuildParameter, Storage }

    /// <summary>A storage named by a persistent id: the bytes live in the archive entry data/&lt;Key&gt;.</summary>
    internal sealed record StorageRef(string Key, torch.ScalarType Type, long Numel, string Location);

    /// <summary>A tensor as a strided view of a storage; materialized later by the caller.</summary>
    internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

    /// <summary>dict / OrderedDict, keeping insertion order like Python.</summary>
    internal sealed class PyDict
    {
        private readonly Dictionary<object, int> _index = new();
        public List<KeyValuePair<object, object?>> Items { get; } = [];

        public void Set(object key, object? value)
        {
            if (_index.TryGetValue(key, out var i)) Items[i] = new(key, value);
            else
            {
                _index[key] = Items.Count;
                Items.Add(new(key, value));
            }
        }
    }

    internal sealed class PyList(List<object?> items)
    {
        public List<object?> Items { get; } = items;
    }

    internal sealed record PyTuple(object?[] Items);

    /// <summary>Python None (null is not used on the stack so that a missing value is never confused with it).</summary>
    internal sealed class PyNone
    {
        public static readonly PyNone Instance = new();
        private PyNone() { }
    }

    // ----- allow-list ------------------------------------------------------------------------------

    private static readonly Dictionary<string, PyGlobal> AllowedGlobals = BuildAllowList();

    private static Dictionary<string, PyGlobal> BuildAllowList()
    {
        var list = new List<PyGlobal>
        {
            new("collections", "OrderedDict", GlobalKind.OrderedDict),
            new("torch._utils", "_rebuild_tensor_v2", GlobalKind.RebuildTensorV2),
            new("torch._utils", "_rebuild_tensor", GlobalKind.RebuildTensor),
            new("torch._utils", "_rebuild_parameter", GlobalKind.RebuildParameter),
        };
        (string Name, torch.ScalarType Type)[] storages =
        [
            ("FloatStorage", torch.ScalarType.Float32), ("HalfStorage", torch.ScalarType.Float16),
            ("BFloat16Storage", torch.ScalarType.BFloat16), ("DoubleStorage", torch.ScalarType.Float64),
            ("LongStorage", torch.ScalarType.Int64), ("IntStorage", torch.ScalarType.Int32),
            ("ShortStorage", torch.ScalarType.Int16), ("CharStorage", torch.ScalarType.Int8),
            ("ByteStorage", torch.ScalarType.Byte), ("BoolStorage", torch.ScalarType.Bool),
            // Newer torch names an untyped (byte) storage in the persistent id.
            ("UntypedStorage", torch.ScalarType.Byte),
        ];
        foreach (var (name, type) in storages) list.Add(new("torch", name, GlobalKind.Storage, type));
        return list.ToDictionary(g => g.FullName, StringComparer.Ordinal);
    }

    // ----- opcodes (the subset torch.save produces with pickle protocol 2, plus a few harmless ones) --

    private const byte MARK = (byte)'(', STOP = (byte)'.', POP = (byte)'0', POP_MARK = (byte)'1';
    private const byte BININT = (byte)'J', BININT1 = (byte)'K', BININT2 = (byte)'M', NONE = (byte)'N';
    private const byte BINPERSID = (byte)'Q', REDUCE = (byte)'R', BINSTRING = (byte)'T', SHORT_BINSTRING = (byte)'U';
    private const byte BINUNICODE = (byte)'X', APPEND = (byte)'a', BUILD = (byte)'b', GLOBAL = (byte)'c';
    private const byte DICT = (byte)'d', EMPTY_DICT = (byte)'}', APPENDS = (byte)'e', BINGET = (byte)'h';
    private const byte LONG_BINGET = (byte)'j', LIST = (byte)'l', EMPTY_LIST = (byte)']', BINPUT = (byte)'q';
    private const byte LONG_BINPUT = (byte)'r', SETITEM = (byte)'s', TUPLE = (byte)'t', EMPTY_TUPLE = (byte)')';
    private const byte SETITEMS = (byte)'u', BINFLOAT = (byte)'G';
    private const byte PROTO = 0x80, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89;
    private const byte LONG1 = 0x8a, SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, MEMOIZE = 0x94, FRAME = 0x95;
    private const byte STACK_GLOBAL = 0x93;

    // ----- state -------------------------------------------------------------------------------------

    private readonly byte[] _data;
    private readonly string _filePath;
    private readonly string _entryName;
    private int _pos;
    private int _opcodeStart;
    private readonly List<object> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object> _memo = new();

    // ----- budgets ---------------------------------------------------------------------------------------
    // Every opcode reads at least one byte, so what a pickle builds is already linear in its size; these caps make the
    // bound explicit and small, far below the machine: a state dict's pickle needs a few entries per tensor.

    /// <summary>Values on the stack at once.</summary>
    internal const int MaxStackDepth = 1 << 20;

    /// <summary>Open MARKs at once (nesting depth).</summary>
    internal const int MaxMarks = 1 << 12;

    /// <summary>Memo entries.</summary>
    internal const int MaxMemo = 1 << 20;

    /// <summary>Dimensions of one tensor.</summary>
    internal const int MaxDimensions = 64;

    /// <summary>Values placed into containers (tuples, lists, dicts) over the whole pickle, per byte of pickle.</summary>
    internal const int MaxItemsPerByte = 4;

    private long _items;

    private RestrictedUnpickler(byte[] data, string filePath, string entryName)
    {
        _data = data;
        _filePath = filePath;
        _entryName = entryName;
    }

    /// <summary>Unpickles <paramref name="data"/>; errors name <paramref name="filePath"/> and the entry.</summary>
    public static object Load(byte[] data, string filePath, string entryName) =>
        new RestrictedUnpickler(data, filePath, entryName).Run();

    private TensorFileException Error(string problem) =>
        new(_filePath, $"{_entryName} at byte {_opcodeStart}: {problem}");

    private object Run()
    {
        while (_pos < _data.Length)
        {
            _opcodeStart = _pos;
            byte op = _data[_pos++];
            switch (op)
            {
                case PROTO:
                    var protocol = ReadByte();
                    if (protocol > 5) throw Error($"unsupported pickle protocol {protocol}");
                    break;
                case FRAME:
                    ReadBytes(8); // framing is only a read-ahead hint
                    break;
                case STOP:
                    if (_stack.Count != 1 || _marks.Count != 0)
                        throw Error($"STOP with {_stack.Count} values on the stack and {_marks.Count} open marks");
                    return _stack[0];

                case MARK:
                    if (_marks.Count >= MaxMarks) throw Error($"more than {MaxMarks} nested MARKs (budget)");
                    _marks.Push(_stack.Count);
                    break;
                case POP: Pop(); break;
                case POP_MARK: PopMark(); break;

                case NONE: Push(PyNone.Instance); break;
                case NEWTRUE: Push(true); break;
                case NEWFALSE: Push(false); break;
                case BININT: Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))); break;
                case BININT1: Push((long)ReadByte()); break;
                case BININT2: Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2))); break;
                case LONG1: Push(ReadLong1()); break;
                case BINFLOAT: Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break;

                case BINUNICODE: Push(ReadUtf8(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))); break;
                case SHORT_BINUNICODE: Push(ReadUtf8(ReadByte())); break;
                case BINUNICODE8: Push(ReadUtf8(BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8)))); break;
                case BINSTRING:
                    var length = BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4));
                    if (length < 0) throw Error($"negative BINSTRING length {length}");
                    Push(Encoding.Latin1.GetString(ReadBytes(length)));
                    break;
                case SHORT_BINSTRING: Push(Encoding.Latin1.GetString(ReadBytes(ReadByte()))); break;

                case EMPTY_TUPLE: Push(new PyTuple([])); break;
                case TUPLE: Push(new PyTuple(PopMark().ToArray())); break;
                case TUPLE1: { var a = Pop(); Push(new PyTuple([a])); break; }
                case TUPLE2: { var b = Pop(); var a = Pop(); Push(new PyTuple([a, b])); break; }
                case TUPLE3: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PyTuple([a, b, c])); break; }

                case EMPTY_LIST: Push(new PyList([])); break;
                case LIST: Push(new PyList(PopMark())); break;
                case APPEND: { var item = Pop(); Spend(1); ExpectList(Peek(), "APPEND").Items.Add(item); break; }
                case APPENDS: { var items = PopMark(); ExpectList(Peek(), "APPENDS").Items.AddRange(items); break; }

                case EMPTY_DICT: Push(new PyDict()); break;
                case DICT: { var dict = new PyDict(); SetItems(dict, PopMark()); Push(dict); break; }
                case SETITEM: { var value = Pop(); var key = Pop(); Spend(2); SetItem(ExpectDict(Peek(), "SETITEM"), key, value); break; }
                case SETITEMS: { var items = PopMark(); SetItems(ExpectDict(Peek(), "SETITEMS"), items); break; }

                case BINPUT: Memo(ReadByte()); break;
                case LONG_BINPUT: Memo(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))); break;
                case MEMOIZE: Memo(_memo.Count); break;
                case BINGET: Push(GetMemo(ReadByte())); break;
                case LONG_BINGET: Push(GetMemo(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))); break;

                case GLOBAL:
                    {
                        var module = ReadLine();
                        var name = ReadLine();
                        Push(ResolveGlobal(module, name));
                        break;
                    }
                case STACK_GLOBAL:
                    {
                        var name = Pop();
                        var module = Pop();
                        if (module is not string m || name is not string n)
                            throw Error("STACK_GLOBAL needs two strings (module, name)");
                        Push(ResolveGlobal(m, n));
                        break;
                    }
                case REDUCE:
                    {
                        var args = Pop();
                        var callable = Pop();
                        Push(Reduce(callable, args));
                        break;
                    }
                case BUILD:
                    {
                        Pop(); // the state
                        var target = Peek();
                        // torch attaches a `_metadata` attribute to state dicts (OrderedDict state); it only
                        // carries module version numbers, so it is dropped. Nothing else may be BUILT.
                        if (target is not PyDict)
                            throw Error($"BUILD on {Describe(target)} is not supported");
                        break;
                    }
                case BINPERSID: Push(PersistentLoad(Pop())); break;

                default:
                    throw Error($"unsupported pickle opcode 0x{op:x2}{(op is >= 0x20 and < 0x7f ? $" ('{(char)op}')" : "")}; only the opcodes torch.save writes are accepted");
            }
        }
        throw Error("pickle ends without a STOP opcode (truncated?)");
    }

    // ----- helpers -----------------------------------------------------------------------------------

    private void Push(object value)
    {
        if (_stack.Count >= MaxStackDepth) throw Error($"more than {MaxStackDepth} values on the pickle stack (budget)");
        _stack.Add(value);
    }

    private void Memo(long key)
    {
        if (_memo.Count >= MaxMemo && !_memo.ContainsKey(key)) throw Error($"more than {MaxMemo} memo entries (budget)");
        _memo[key] = Peek();
    }

    /// <summary>Counts values put into containers against the pickle's budget (MaxItemsPerByte per byte).</summary>
    private void Spend(long items)
    {
        _items += items;
        if (_items > (long)MaxItemsPerByte * _data.Length + 1024)
            throw Error($"builds more than {MaxItemsPerByte} container items per pickle byte (budget)");
    }

    private object Pop()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _stack.Count <= _marks.Peek()))
            throw Error("pickle stack underflow");
        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object Peek()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _stack.Count <= _marks.Peek()))
            throw Error("pickle stack underflow");
        return _stack[^1];
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Error("no MARK to pop to");
        int start = _marks.Pop();
        Spend(_stack.Count - start);
        var items = _stack.GetRange(start, _stack.Count - start).Cast<object?>().ToList();
        _stack.RemoveRange(start, _stack.Count - start);
        return items;
    }

    private byte ReadByte()
    {
        if (_pos >= _data.Length) throw Error("pickle ends in the middle of an opcode (truncated?)");
        return _data[_pos++];
    }

    private ReadOnlySpan<byte> ReadBytes(long count)
    {
        // Length fields come from the file: compare against what is left before trusting them.
        if (count < 0 || count > _data.Length - _pos)
            throw Error($"pickle declares {count} bytes but only {_data.Length - _pos} remain (truncated?)");
        var span = _data.AsSpan(_pos, (int)count);
        _pos += (int)count;
        return span;
    }

    private string ReadUtf8(ulong count)
    {
        if (count > (ulong)(_data.Length - _pos))
            throw Error($"pickle declares a {count}-byte string but only {_data.Length - _pos} bytes remain (truncated?)");
        try
        {
            return new UTF8Encoding(false, true).GetString(ReadBytes((long)count));
        }
        catch (DecoderFallbackException e)
        {
            throw new TensorFileException(_filePath, $"{_entryName} at byte {_opcodeStart}: string is not valid UTF-8", e);
        }
    }

    private string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Error("GLOBAL name is not terminated by a newline (truncated?)");
        var line = Encoding.UTF8.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return line;
    }

    private long ReadLong1()
    {
        int n = ReadByte();
        if (n > 8) throw Error($"LONG1 integer of {n} bytes is too large");
        var bytes = ReadBytes(n);
        if (n == 0) return 0;
        long value = 0;
        for (int i = n - 1; i >= 0; i--) value = (value << 8) | bytes[i];
        // Two's complement: sign-extend from the top byte.
        if (n < 8 && (bytes[n - 1] & 0x80) != 0) value -= 1L << (8 * n);
        return value;
    }

    private object GetMemo(long key) =>
        _memo.TryGetValue(key, out var value) ? value : throw Error($"memo key {key} was never stored");

    private PyList ExpectList(object target, string op) =>
        target as PyList ?? throw Error($"{op} on {Describe(target)}, expected a list");

    private PyDict ExpectDict(object target, string op) =>
        target as PyDict ?? throw Error($"{op} on {Describe(target)}, expected a dict");

    private void SetItems(PyDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Error("odd number of items for a dict");
        for (int i = 0; i < items.Count; i += 2) SetItem(dict, items[i]!, items[i + 1]);
    }

    private void SetItem(PyDict dict, object key, object? value)
    {
        // Only hashable-by-value keys; a state dict's keys are strings.
        if (key is not (string or long or bool or double or PyNone))
            throw Error($"dict key of type {Describe(key)} is not supported");
        dict.Set(key, value);
    }

    private PyGlobal ResolveGlobal(string module, string name)
    {
        var fullName = $"{module}.{name}";
        if (!AllowedGlobals.TryGetValue(fullName, out var global))
            throw Error($"refusing pickle global '{fullName}' (only tensor rebuild globals are allowed)");
        return global;
    }

    private object Reduce(object callable, object args)
    {
        if (callable is not PyGlobal global)
            throw Error($"REDUCE on {Describe(callable)}, which is not an allowed callable");
        if (args is not PyTuple tuple)
            throw Error($"REDUCE arguments for '{global.FullName}' are {Describe(args)}, not a tuple");
        var a = tuple.Items;
        switch (global.Kind)
        {
            case GlobalKind.OrderedDict:
                // OrderedDict() is how torch writes state dicts; items follow via SETITEMS.
                if (a.Length != 0) throw Error("OrderedDict called with arguments");
                return new PyDict();
            case GlobalKind.RebuildTensorV2:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (a.Length is < 6 or > 7) throw Error($"_rebuild_tensor_v2 called with {a.Length} arguments, expected 6 or 7");
                return RebuildTensor(global, a);
            case GlobalKind.RebuildTensor:
                // (storage, storage_offset, size, stride), written by older torch versions
                if (a.Length != 4) throw Error($"_rebuild_tensor called with {a.Length} arguments, expected 4");
                return RebuildTensor(global, a);
            case GlobalKind.RebuildParameter:
                // (data, requires_grad, backward_hooks): an nn.Parameter is just its data here
                if (a.Length != 3 || a[0] is not TensorRef data)
                    throw Error("_rebuild_parameter expects (tensor, requires_grad, backward_hooks)");
                return data;
            default:
                throw Error($"'{global.FullName}' cannot be called");
        }
    }

    private TensorRef RebuildTensor(PyGlobal global, object?[] a)
    {
        if (a[0] is not StorageRef storage)
            throw Error($"{global.Name}: first argument is {Describe(a[0])}, not a storage");
        if (a[1] is not long offset)
            throw Error($"{global.Name}: storage_offset is {Describe(a[1])}, not an integer");
        var size = IntTuple(a[2], global.Name, "size");
        var stride = IntTuple(a[3], global.Name, "stride");
        return new TensorRef(storage, offset, size, stride);
    }

    private long[] IntTuple(object? value, string function, string what)
    {
        if (value is not PyTuple t) throw Error($"{function}: {what} is {Describe(value)}, not a tuple");
        if (t.Items.Length > MaxDimensions) throw Error($"{function}: {what} has {t.Items.Length} dimensions, more than {MaxDimensions}");
        var result = new long[t.Items.Length];
        for (int i = 0; i < result.Length; i++)
            result[i] = t.Items[i] is long v ? v : throw Error($"{function}: {what} holds {Describe(t.Items[i])}, not an integer");
        return result;
    }

    private StorageRef PersistentLoad(object pid)
    {
        // torch.save writes ('storage', storage_type, key, location, numel).
        if (pid is not PyTuple { Items: var p } || p.Length != 5 || p[0] is not "storage")
            throw Error($"unsupported persistent id {Describe(pid)}; expected ('storage', type, key, location, numel)");
        if (p[1] is not PyGlobal { Kind: GlobalKind.Storage } storageType)
            throw Error($"persistent id names {Describe(p[1])} instead of a storage type");
        if (p[2] is not string key || p[3] is not string location || p[4] is not long numel || numel < 0)
            throw Error("persistent id must be ('storage', type, key: str, location: str, numel: int >= 0)");
        return new StorageRef(key, storageType.StorageType, numel, location);
    }

    internal static string Describe(object? value) => value switch
    {
        null => "nothing",
        PyNone => "None",
        string s => $"str '{(s.Length > 40 ? s[..40] + "…" : s)}'",
        long l => $"int {l}",
        bool b => b ? "True" : "False",
        double => "float",
        PyTuple t => $"a tuple of {t.Items.Length}",
        PyList => "a list",
        PyDict => "a dict",
        PyGlobal g => $"'{g.FullName}'",
        StorageRef => "a storage",
        TensorRef => "a tensor",
        _ => value.GetType().Name,
    };
}
