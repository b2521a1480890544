namespace VaeResearch.Cli;

/// <summary>Runs a command's body and turns user-facing failures into one clear line on stderr.</summary>
static class CliRunner
{
    /// <summary>Runs <paramref name="body"/>; errors go to stderr as "vae COMMAND: message" with exit code 1.</summary>
    public static int Run(string command, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"vae {command}: error: {CliOptions.Flag(e.Key)} {e.Detail}");
            return 1;
        }
        catch (Exception e) when (e is VaeResearchException or IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException)
        {
            Console.Error.WriteLine($"vae {command}: error: {e.Message}");
            return 1;
        }
    }
}
