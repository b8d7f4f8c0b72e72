using System.Text;

namespace LoraHub.Storage;

/// <summary>
/// The names a hub accepts, checked before any I/O so no name can reach outside its area.
/// <para>
/// A name (an item such as a model, module, adapter or task, or one segment of a file path) is 1 to 128
/// characters of ASCII letters, digits, '.', '_' and '-', starting with a letter or digit, without "..",
/// not ending with '.', and not a Windows device name (con, nul, com1...). A path inside an area is names
/// joined by '/': no leading, trailing or double '/', no '\', no '%', no control characters, at most 16
/// segments and 1024 characters. Entries whose name starts with '.' are hidden (temporary files, .gitattributes):
/// stores never list, publish or download them.
/// </para>
/// </summary>
public static class HubNames
{
    public const int MaxNameLength = 128;
    public const int MaxPathLength = 1024;
    public const int MaxSegments = 16;

    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "con", "prn", "aux", "nul",
        "com0", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9",
        "lpt0", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
    };

    /// <summary>The container (blob) or top-level folder (local) of an area: models, modules, examples, adapters.</summary>
    public static string AreaName(HubArea area) => area switch
    {
        HubArea.Models => "models",
        HubArea.Modules => "modules",
        HubArea.Examples => "examples",
        HubArea.Adapters => "adapters",
        _ => throw new ArgumentOutOfRangeException(nameof(area), area, "unknown hub area"),
    };

    public static IReadOnlyList<HubArea> Areas { get; } = [HubArea.Models, HubArea.Modules, HubArea.Examples, HubArea.Adapters];

    /// <summary>Parses "models", "modules", "examples" or "adapters" (any case).</summary>
    public static bool TryParseArea(string? text, out HubArea area)
    {
        foreach (var a in Areas)
        {
            if (string.Equals(text, AreaName(a), StringComparison.OrdinalIgnoreCase))
            {
                area = a;
                return true;
            }
        }
        area = default;
        return false;
    }

    /// <summary>
    /// The file whose presence says a folder item is complete: config.json (models), adapter_config.json (modules),
    /// lorahub.json (adapters); null for examples (single files). Listings show only items that have it, and
    /// MaterializeAsync refuses items without it (not published, or a publish is in progress).
    /// </summary>
    public static string? CommitMarker(HubArea area) => area switch
    {
        HubArea.Models => "config.json",
        HubArea.Modules => "adapter_config.json",
        HubArea.Adapters => "lorahub.json",
        _ => null,
    };

    /// <summary>True for areas whose items are folders (models, modules, adapters); examples hold files.</summary>
    public static bool IsFolderArea(HubArea area) => area != HubArea.Examples;

    public static bool IsValidName(string? name) => NameProblem(name) is null;

    public static bool IsValidPath(string? path) => PathProblem(path) is null;

    /// <summary>True for a name that stores skip: it starts with '.' (temporary and staging entries, .gitattributes).</summary>
    public static bool IsHidden(string name) => name.StartsWith('.');

    /// <summary>Returns the name, or throws HubNameException naming it and the rule it breaks.</summary>
    public static string ValidateName(string? name, string what = "name")
    {
        if (NameProblem(name) is { } problem) throw new HubNameException($"invalid hub {what} {Show(name)}: {problem}");
        return name!;
    }

    /// <summary>Returns the path's segments, or throws HubNameException naming the path and the rule it breaks.</summary>
    public static string[] ValidatePath(string? path, string what = "path")
    {
        if (PathProblem(path) is { } problem) throw new HubNameException($"invalid hub {what} {Show(path)}: {problem}");
        return path!.Split('/');
    }

    /// <summary>
    /// A file path inside an area: exactly one name in examples ("task.jsonl"); an item name and at least one
    /// more segment in the folder areas ("tiny-t5/config.json"). Returns the segments.
    /// </summary>
    public static string[] ValidateAreaPath(HubArea area, string? path)
    {
        var segments = ValidatePath(path, $"path in {AreaName(area)}");
        if (area == HubArea.Examples && segments.Length != 1)
            throw new HubNameException($"invalid hub path in examples {Show(path)}: examples holds files only (\"task.jsonl\"), not folders");
        if (area != HubArea.Examples && segments.Length < 2)
            throw new HubNameException($"invalid hub path in {AreaName(area)} {Show(path)}: expected \"item/file\" (an item of {AreaName(area)} is a folder)");
        return segments;
    }

    /// <summary>Validates an item name of an area (a folder name, or an examples file name).</summary>
    public static string ValidateItemName(HubArea area, string? name) =>
        ValidateName(name, area == HubArea.Examples ? "examples file name" : $"{AreaName(area)} item name");

    private static string? NameProblem(string? name)
    {
        if (name is null) return "it is missing";
        if (name.Length == 0) return "it is empty";
        if (name.Length > MaxNameLength) return $"it is {name.Length} characters long (at most {MaxNameLength})";
        foreach (var c in name)
        {
            if (char.IsControl(c)) return "it contains a control character";
            if (c is '/' or '\\') return "it contains a path separator";
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
                return $"'{c}' is not allowed (letters, digits, '.', '_' and '-' only)";
        }
        if (name.Contains("..", StringComparison.Ordinal)) return "\"..\" is not allowed";
        if (!char.IsAsciiLetterOrDigit(name[0])) return "it must start with a letter or a digit";
        if (name[^1] == '.') return "it must not end with '.'";
        var stem = name.Split('.')[0];
        if (Reserved.Contains(stem)) return $"\"{stem}\" is a reserved device name";
        return null;
    }

    private static string? PathProblem(string? path)
    {
        if (path is null) return "it is missing";
        if (path.Length == 0) return "it is empty";
        if (path.Length > MaxPathLength) return $"it is {path.Length} characters long (at most {MaxPathLength})";
        if (path.Contains('\\')) return "'\\' is not allowed (use '/')";
        if (path[0] == '/') return "it must be relative (no leading '/')";
        var segments = path.Split('/');
        if (segments.Length > MaxSegments) return $"it has {segments.Length} segments (at most {MaxSegments})";
        foreach (var segment in segments)
        {
            if (segment.Length == 0) return "it has an empty segment (trailing or double '/')";
            if (NameProblem(segment) is { } problem) return $"segment {Show(segment)}: {problem}";
        }
        return null;
    }

    /// <summary>The input quoted for a message: control characters escaped, long inputs cut.</summary>
    internal static string Show(string? text)
    {
        if (text is null) return "(null)";
        const int max = 80;
        var sb = new StringBuilder("'");
        foreach (var c in text.Length > max ? text[..max] : text)
        {
            switch (c)
            {
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\0': sb.Append("\\0"); break;
                case '\'': sb.Append("\\'"); break;
                default:
                    if (char.IsControl(c) || char.IsSurrogate(c) || c is '\u2028' or '\u2029') sb.Append($"\\u{(int)c:x4}");
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('\'');
        if (text.Length > max) sb.Append($"... ({text.Length} characters)");
        return sb.ToString();
    }
}
