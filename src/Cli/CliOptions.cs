using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace VaeResearch.Cli;

/// <summary>Option builders shared by the commands, so every command parses and documents values the same way.</summary>
static class CliOptions
{
    public static Option<T> Value<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<T?> Optional<T>(string name, string description) where T : struct =>
        new(name) { Description = description };

    public static Option<string> Choice(string name, string description, string defaultValue, params string[] choices)
    {
        var option = new Option<string>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.AcceptOnlyFromAmong(choices);
        return option;
    }

    public static Option<string?> OptionalChoice(string name, string description, params string[] choices)
    {
        var option = new Option<string?>(name) { Description = description };
        option.AcceptOnlyFromAmong(choices);
        return option;
    }

    /// <summary>A comma-separated list of integers, e.g. "200,200".</summary>
    public static Option<int[]> IntList(string name, string description, int[] defaultValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = r =>
        {
            var parts = r.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
            var values = new int[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out values[i]))
                {
                    r.AddError($"{name}: '{parts[i]}' is not an integer (expected a comma-separated list such as 200,200)");
                    return [];
                }
            return values;
        },
    };

    /// <summary>The MNIST folder option every data-reading command takes.</summary>
    public static Option<string?> DataDirectory() => new("--data-dir")
    {
        Description = $"MNIST folder (default: ${Data.DataDirectory.EnvironmentVariable}, else the per-user cache, here {Data.DataDirectory.Default}).",
        HelpName = "DIR",
    };

    /// <summary>The worker-thread option (applied with <c>Parallelism.Threads</c>).</summary>
    public static Option<int?> Threads(string description = "Worker threads (default: all cores).") =>
        new("--threads") { Description = description };

    /// <summary>Whether the user gave <paramref name="option"/> on the command line (not just its default).</summary>
    public static bool IsExplicit(this ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>
    /// The flag that sets a configuration key: <c>--</c> and the key with dashes (<c>epitome_size</c> is
    /// <c>--epitome-size</c>), except where the CLI's flag is shorter.
    /// </summary>
    public static string Flag(string key) => key switch
    {
        "synthetic_dimension" => "--synthetic-dim",
        _ => "--" + key.Replace('_', '-'),
    };

    /// <summary>The configuration key a flag sets (the inverse of <see cref="Flag"/>).</summary>
    public static string Key(string flag) => flag switch
    {
        "--synthetic-dim" => "synthetic_dimension",
        _ => flag.TrimStart('-').Replace('-', '_'),
    };

    /// <summary>Parses a lower-case (snake_case) enum name as the CLI spells it, e.g. <c>train_first</c>.</summary>
    public static TEnum ParseEnum<TEnum>(string value) where TEnum : struct, Enum =>
        Enum.Parse<TEnum>(value.Replace("_", ""), ignoreCase: true);

    /// <summary>The CLI spelling of an enum value.</summary>
    public static string Name<TEnum>(TEnum value) where TEnum : struct, Enum => value.ToString().ToLowerInvariant();
}
