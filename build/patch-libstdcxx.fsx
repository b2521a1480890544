// Makes TorchSharp's native shim load where the system libstdc++ is older than the one it was linked against.
//
//   dotnet fsi build/patch-libstdcxx.fsx FILE...
//
// Each FILE is a copy of libLibTorchSharp.so under a build or publish output folder (never the NuGet cache: the
// MSBuild target in build/Torch.targets passes only those). TorchSharp 0.107 names GLIBCXX_3.4.32 in its version
// needs, but only for an unused reference (std::ios_base_library_init, no relocation), so where the system
// libstdc++ does not define that version the need is marked weak (see Elf.fs) and the loader accepts the file.
// Where the system library defines it, the file is left as it is. Prints one line per file saying what it did,
// and writes FILE.libstdcxx-stamp beside it (the target's incremental output). A patched file keeps its size and
// its modification time, so MSBuild's copy step still sees it as the unchanged copy of the package's file.

#load "Elf.fs"

open System
open System.Diagnostics
open System.IO
open System.Buffers.Binary
open System.Text
open VaeResearch.Build

let Version = "GLIBCXX_3.4.32"

/// The x86-64 libstdc++.so.6 the dynamic loader would pick: from `ldconfig -p`, else the usual Debian/Fedora paths.
let systemLibStdCxx () =
    // NOTE: ldconfig lives in /sbin, which is not on every user's PATH.
    let ldconfig (exe: string) =
        try
            let psi = ProcessStartInfo(exe, "-p", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
            use p = Process.Start psi
            let text = p.StandardOutput.ReadToEnd()
            p.WaitForExit()
            text.Split('\n')
            |> Array.tryPick (fun line ->
                let line = line.Trim()
                let arrow = line.IndexOf " => "
                if line.StartsWith "libstdc++.so.6 " && line.Contains "x86-64" && arrow > 0 then Some(line.Substring(arrow + 4).Trim())
                else None)
        with _ -> None
    let fromLdconfig = [ "ldconfig"; "/sbin/ldconfig"; "/usr/sbin/ldconfig" ] |> List.tryPick ldconfig
    let candidates =
        Option.toList fromLdconfig
        @ [ "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"; "/lib/x86_64-linux-gnu/libstdc++.so.6"; "/usr/lib64/libstdc++.so.6"; "/lib64/libstdc++.so.6" ]
    candidates |> List.tryFind File.Exists

/// Whether the ELF64 little-endian shared object `bytes` defines symbol version `version` (an entry of its
/// `.gnu.version_d` section, SHT_GNU_verdef = 0x6ffffffd). Raises ElfError on a file it cannot read.
let definesVersion (bytes: byte[]) (version: string) =
    let fail what = raise (Elf.ElfError what)
    let check (at: int64) (width: int64) = if at < 0L || at + width > int64 bytes.Length then fail $"truncated at offset {at}"
    let u16 (at: int64) = check at 2L; int64 (BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(bytes, int at, 2)))
    let u32 (at: int64) = check at 4L; int64 (BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(bytes, int at, 4)))
    let u64 (at: int64) = check at 8L; int64 (BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(bytes, int at, 8)))
    let name (at: int64) =
        check at 1L
        let stop = Array.IndexOf(bytes, 0uy, int at)
        if stop < 0 then fail $"unterminated string at offset {at}"
        Encoding.ASCII.GetString(bytes, int at, stop - int at)
    if bytes.Length < 64 || bytes[0] <> 0x7Fuy || bytes[1] <> byte 'E' || bytes[2] <> byte 'L' || bytes[3] <> byte 'F' then fail "not an ELF file"
    if bytes[4] <> 2uy || bytes[5] <> 1uy then fail "not a 64-bit little-endian ELF"
    let shoff, entsize, count = u64 0x28L, u16 0x3AL, u16 0x3CL
    let header i = shoff + int64 i * entsize
    // Section header: sh_type at 4, sh_offset at 24, sh_link at 40, sh_info (the number of entries) at 44.
    match [ 0 .. int count - 1 ] |> List.tryFind (fun i -> u32 (header i + 4L) = 0x6ffffffdL) with
    | None -> false
    | Some i ->
        let offset = u64 (header i + 24L)
        let strtab = u64 (header (int (u32 (header i + 40L))) + 24L)
        // Elf64_Verdef: vd_version (2), vd_flags (2), vd_ndx (2), vd_cnt (2), vd_hash (4), vd_aux (4), vd_next (4);
        // its first Elf64_Verdaux (vda_name (4), vda_next (4)) names the version.
        let rec walk (entry: int64) remaining =
            if remaining = 0L then false
            elif name (strtab + u32 (entry + u32 (entry + 12L))) = version then true
            else
                let next = u32 (entry + 16L)
                next <> 0L && walk (entry + next) (remaining - 1L)
        walk offset (u32 (header i + 44L))

/// Replaces `path` by `bytes` through a new file beside it (so a hard link into the NuGet cache is never written
/// through), keeping the permissions and the modification time.
let replace (path: string) (bytes: byte[]) =
    let time = File.GetLastWriteTimeUtc path
    let mode = File.GetUnixFileMode path
    let temp = path + ".patching"
    File.WriteAllBytes(temp, bytes)
    File.SetUnixFileMode(temp, mode)
    File.SetLastWriteTimeUtc(temp, time)
    File.Move(temp, path, true)

let files = fsi.CommandLineArgs |> Array.skip 1
if files.Length = 0 then
    eprintfn "usage: dotnet fsi build/patch-libstdcxx.fsx FILE..."
    exit 2

let system = systemLibStdCxx ()
let systemHas =
    match system with
    | None -> None
    | Some path ->
        try Some(definesVersion (File.ReadAllBytes path) Version)
        with Elf.ElfError why ->
            eprintfn "patch-libstdcxx: warning: cannot read %s (%s); treating it as lacking %s" path why Version
            Some false

let mutable failed = false
for file in files do
    let shown =
        let relative = Path.GetRelativePath(Environment.CurrentDirectory, file)
        if relative.StartsWith ".." then file else relative
    try
        let message =
            match system, systemHas with
            | Some path, Some true -> $"unchanged (the system libstdc++ {path} defines {Version})"
            | _ ->
                let why = match system with Some path -> $"system libstdc++ {path} lacks it" | None -> "no system libstdc++.so.6 found"
                let bytes = File.ReadAllBytes file
                match Elf.markWeak bytes Version with
                | Elf.Marked count ->
                    replace file bytes
                    $"""marked {Version} weak ({why}; {count} need{(if count = 1 then "" else "s")})"""
                | Elf.AlreadyWeak _ -> $"{Version} already weak ({why})"
                | Elf.NotNeeded -> $"does not need {Version}: unchanged"
                | Elf.NoVersionNeeds -> "has no version needs: unchanged"
        printfn "%s: %s" shown message
        File.WriteAllText(file + ".libstdcxx-stamp", message + "\n")
    with
    | Elf.ElfError why ->
        eprintfn "%s: error: not patched: %s" shown why
        failed <- true
    | :? IOException as e ->
        eprintfn "%s: error: not patched: %s" shown e.Message
        failed <- true

if failed then exit 1
