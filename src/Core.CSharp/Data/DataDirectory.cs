namespace VaeResearch.Data;

/// <summary>Where data sets are cached: <c>--data-dir</c>, else <c>VAE_DATA</c>, else a per-user cache folder.</summary>
public static class DataDirectory
{
    /// <summary>The environment variable that overrides the default data folder.</summary>
    public const string EnvironmentVariable = "VAE_DATA";

    /// <summary>The folder name used inside the per-user cache.</summary>
    public const string CacheFolderName = "vaeresearch";

    /// <summary>
    /// The default data folder: <c>$VAE_DATA</c> when set; else <c>$XDG_CACHE_HOME/vaeresearch</c>
    /// when that is an absolute path; else <c>~/.cache/vaeresearch</c> (on Windows,
    /// <c>%LOCALAPPDATA%\vaeresearch</c>).
    /// </summary>
    public static string Default
    {
        get
        {
            var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (!string.IsNullOrWhiteSpace(fromEnvironment)) return Path.GetFullPath(fromEnvironment);
            if (OperatingSystem.IsWindows())
                return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), CacheFolderName);
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (!string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg)) return Path.Combine(xdg, CacheFolderName);
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", CacheFolderName);
        }
    }

    /// <summary>The absolute data folder for an optional <c>--data-dir</c> value (null or empty: <see cref="Default"/>).</summary>
    public static string Resolve(string? dataDirectory) =>
        string.IsNullOrWhiteSpace(dataDirectory) ? Default : Path.GetFullPath(dataDirectory);
}
