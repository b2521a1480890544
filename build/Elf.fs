/// Marks one symbol-version need of an ELF shared object weak (VER_FLG_WEAK in `.gnu.version_r`), so the
/// dynamic loader loads the object where the system library lacks that version. This is the fix for
/// TorchSharp's `libLibTorchSharp.so`, which names GLIBCXX_3.4.32 only through an unused reference; the build
/// applies it to the copy under bin/, never to the NuGet cache. Plain F#, no packages, so `build.fsx` can
/// `#load` it and the tests can compile it.
module VaeResearch.Build.Elf

open System
open System.Buffers.Binary
open System.Text

/// The section type of the version needs (`.gnu.version_r`).
[<Literal>]
let ShtGnuVerneed = 0x6ffffffeu

/// Vernaux flag: a missing version is a warning, not an error.
[<Literal>]
let VerFlgWeak = 0x2us

/// What `markWeak` found and did.
type Outcome =
    /// The object has no `.gnu.version_r` section: nothing to do.
    | NoVersionNeeds
    /// No version need has that name: the bytes are unchanged.
    | NotNeeded
    /// Every need of that name was already weak: the bytes are unchanged.
    | AlreadyWeak of count: int
    /// This many needs of that name were marked weak (the flags halfword of each, nothing else).
    | Marked of count: int

/// A malformed or unsupported file, with what was wrong.
exception ElfError of string

let private fail fmt = Printf.kprintf (fun s -> raise (ElfError s)) fmt

let private u16 (b: byte[]) (at: int64) =
    if at < 0L || at + 2L > int64 b.Length then fail "truncated: a 2-byte field at offset %d is past the end (%d bytes)" at b.Length
    BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(b, int at, 2))

let private u32 (b: byte[]) (at: int64) =
    if at < 0L || at + 4L > int64 b.Length then fail "truncated: a 4-byte field at offset %d is past the end (%d bytes)" at b.Length
    BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(b, int at, 4))

let private u64 (b: byte[]) (at: int64) =
    if at < 0L || at + 8L > int64 b.Length then fail "truncated: an 8-byte field at offset %d is past the end (%d bytes)" at b.Length
    int64 (BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan(b, int at, 8)))

/// The NUL-terminated string at `at`.
let private cstring (b: byte[]) (at: int64) =
    if at < 0L || at >= int64 b.Length then fail "truncated: a string at offset %d is past the end (%d bytes)" at b.Length
    let stop = Array.IndexOf(b, 0uy, int at)
    if stop < 0 then fail "truncated: the string at offset %d has no terminating NUL" at
    Encoding.ASCII.GetString(b, int at, stop - int at)

/// Section header fields: (type, offset, size, link, info) of section `i`.
let private section (b: byte[]) (shoff: int64) (entsize: int) (i: int) =
    let h = shoff + int64 i * int64 entsize
    u32 b (h + 4L), u64 b (h + 24L), u64 b (h + 32L), int (u32 b (h + 40L)), int (u32 b (h + 44L))

/// Marks every version need named `version` weak in an ELF64 little-endian image, in place. Only the 2-byte
/// `vna_flags` of those Vernaux entries change; a file that is not such an ELF, or whose tables run past its
/// end, raises `ElfError` before anything is written.
let markWeak (bytes: byte[]) (version: string) : Outcome =
    if bytes.Length < 64 || bytes[0] <> 0x7Fuy || bytes[1] <> byte 'E' || bytes[2] <> byte 'L' || bytes[3] <> byte 'F' then
        fail "not an ELF file (%d bytes, no \\x7FELF magic)" bytes.Length
    if bytes[4] <> 2uy then fail "not a 64-bit ELF (EI_CLASS = %d)" bytes[4]
    if bytes[5] <> 1uy then fail "not a little-endian ELF (EI_DATA = %d)" bytes[5]
    let shoff = u64 bytes 0x28L
    let entsize = int (u16 bytes 0x3AL)
    let count = int (u16 bytes 0x3CL)
    if count > 0 && entsize < 64 then fail "section headers of %d bytes (ELF64 needs 64)" entsize
    if shoff + int64 count * int64 entsize > int64 bytes.Length then
        fail "truncated: %d section headers at offset %d run past the end (%d bytes)" count shoff bytes.Length
    let sections = [ for i in 0 .. count - 1 -> section bytes shoff entsize i ]
    match sections |> List.tryFind (fun (kind, _, _, _, _) -> kind = ShtGnuVerneed) with
    | None -> NoVersionNeeds
    | Some (_, offset, size, link, entries) ->
        if offset + size > int64 bytes.Length then fail "truncated: .gnu.version_r at %d (%d bytes) runs past the end" offset size
        if link <= 0 || link >= count then fail ".gnu.version_r links to section %d of %d" link count
        let _, strtab, strsize, _, _ = sections[link]
        if strtab + strsize > int64 bytes.Length then fail "truncated: the version strings at %d (%d bytes) run past the end" strtab strsize
        // Walk the Verneed chain, Elf64_Verneed: vn_version (2), vn_cnt (2), vn_file (4), vn_aux (4), vn_next (4);
        // each has vn_cnt Vernaux entries. Collect the flags offsets of the matching names.
        let matches = ResizeArray<int64>()
        let mutable need = offset
        for _ in 1 .. entries do
            if need + 16L > offset + size then fail "truncated: a version need at %d runs past .gnu.version_r" need
            let auxCount = int (u16 bytes (need + 2L))
            let mutable aux = need + int64 (u32 bytes (need + 8L))
            for _ in 1 .. auxCount do
                if aux + 16L > offset + size then fail "truncated: a version entry at %d runs past .gnu.version_r" aux
                // Elf64_Vernaux: vna_hash (4), vna_flags (2), vna_other (2), vna_name (4), vna_next (4).
                if cstring bytes (strtab + int64 (u32 bytes (aux + 8L))) = version then matches.Add(aux + 4L)
                aux <- aux + int64 (u32 bytes (aux + 12L))
            need <- need + int64 (u32 bytes (need + 12L))
        if matches.Count = 0 then NotNeeded
        elif matches |> Seq.forall (fun at -> u16 bytes at &&& VerFlgWeak <> 0us) then AlreadyWeak matches.Count
        else
            for at in matches do
                BinaryPrimitives.WriteUInt16LittleEndian(Span(bytes, int at, 2), u16 bytes at ||| VerFlgWeak)
            Marked matches.Count
