namespace VaeResearch;

/// <summary>
/// An error the user can act on: bad input, an impossible setting, a corrupt file, a failed download.
/// The CLI prints its message (no stack trace) and exits non-zero.
/// </summary>
public class VaeResearchException : Exception
{
    /// <summary>Creates the error with a message that says what is wrong and, where possible, what to do.</summary>
    public VaeResearchException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// An impossible setting, named by its configuration key (the snake_case key of <c>config.json</c>, such as
/// <c>latent</c> or <c>epitome_size</c>). Only front ends know how the key is spelled to their users: the CLI
/// shows it as its flag (<c>--latent</c>), a sweep spec as the key in its file.
/// </summary>
public sealed class ConfigException : VaeResearchException
{
    /// <summary>Creates the error: <paramref name="key"/> <paramref name="detail"/> (e.g. "latent", "must be >= 1, got 0").</summary>
    public ConfigException(string key, string detail) : base($"{key} {detail}")
    {
        Key = key;
        Detail = detail;
    }

    /// <summary>The configuration key that is wrong.</summary>
    public string Key { get; }

    /// <summary>What is wrong with it, without the key.</summary>
    public string Detail { get; }
}

/// <summary>A file whose contents do not have the expected format.</summary>
/// <remarks>The message names the file, the field and what was expected.</remarks>
public sealed class FileFormatException : VaeResearchException
{
    /// <summary>Creates the error for <paramref name="path"/>: <paramref name="field"/> was not <paramref name="expected"/>.</summary>
    public FileFormatException(string path, string field, string expected, string found, Exception? inner = null)
        : base($"{path}: {field}: expected {expected}, found {found}", inner)
    {
        Path = path;
        Field = field;
        Expected = expected;
        Found = found;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The field (header entry, section, tensor name) that is wrong.</summary>
    public string Field { get; }

    /// <summary>What the reader expected there.</summary>
    public string Expected { get; }

    /// <summary>What the file had instead.</summary>
    public string Found { get; }
}
