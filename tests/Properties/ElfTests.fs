module VaeResearch.Properties.ElfTests

// The ELF routine of the build (build/Elf.fs): on a generated ELF64 with a .gnu.version_r section only the
// named version's flags change and every other byte is equal; a file without the section, or without that
// version, is left alone; every truncation of the file is an error before anything is written; and on a real
// system binary the marked entries are the only change.

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open VaeResearch.Build
open VaeResearch.TestSupport

/// FsCheck (seed, gamma) every property of this module replays.
let private Seed = (20261201UL, 6700417UL)

/// A little-endian buffer writer for the generated file.
type private Writer() =
    let bytes = ResizeArray<byte>()
    member _.Position = bytes.Count
    member _.U8(v: byte) = bytes.Add v
    member _.U16(v: int) = bytes.AddRange(BitConverter.GetBytes(uint16 v))
    member _.U32(v: int64) = bytes.AddRange(BitConverter.GetBytes(uint32 v))
    member _.U64(v: int64) = bytes.AddRange(BitConverter.GetBytes(uint64 v))
    member _.Bytes(b: byte[]) = bytes.AddRange b
    member this.Pad(align: int) = while this.Position % align <> 0 do this.U8 0uy
    member _.ToArray() = bytes.ToArray()

/// A minimal ELF64 shared object: .dynstr, .gnu.version_r with two needs (libstdc++.so.6: GLIBCXX_3.4.32 and
/// GLIBCXX_3.4; libc.so.6: GLIBC_2.14), .shstrtab, and the section headers at the end. Returns the bytes and
/// the offset of GLIBCXX_3.4.32's vna_flags. `verneedType` is the type of section 2 (0x6ffffffe or another).
let private generated (verneedType: int64) =
    let strings = [ ""; "libstdc++.so.6"; "GLIBCXX_3.4.32"; "GLIBCXX_3.4"; "libc.so.6"; "GLIBC_2.14" ]
    let dynstr = Encoding.ASCII.GetBytes(String.Join("\000", strings) + "\000")
    // NOTE: ordinal search: a culture-aware IndexOf ignores the NUL separators.
    let at (s: string) = (String.Join("\000", strings) + "\000").IndexOf("\000" + s + "\000", StringComparison.Ordinal) + 1 |> int64
    let shstrings = "\000.dynstr\000.gnu.version_r\000.shstrtab\000"
    let shname (s: string) = shstrings.IndexOf("\000" + s + "\000", StringComparison.Ordinal) + 1 |> int64
    let w = Writer()
    // ELF header (64 bytes); e_shoff is patched below.
    w.Bytes [| 0x7Fuy; byte 'E'; byte 'L'; byte 'F'; 2uy; 1uy; 1uy; 0uy |]
    w.Bytes(Array.zeroCreate 8)
    w.U16 3; w.U16 62; w.U32 1L; w.U64 0L; w.U64 0L; w.U64 0L // type DYN, machine x86-64, version, entry, phoff, shoff
    w.U32 0L; w.U16 64; w.U16 56; w.U16 0; w.U16 64; w.U16 4; w.U16 3 // flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    let dynstrAt = int64 w.Position
    w.Bytes dynstr
    w.Pad 8
    let verneedAt = int64 w.Position
    // libstdc++.so.6: two Vernaux; libc.so.6: one.
    w.U16 1; w.U16 2; w.U32 (at "libstdc++.so.6"); w.U32 16L; w.U32 48L
    let flagsAt = w.Position + 4 // vna_hash (4 bytes), then vna_flags
    w.U32 0x08922974L; w.U16 0; w.U16 2; w.U32 (at "GLIBCXX_3.4.32"); w.U32 16L
    w.U32 0x056bafd3L; w.U16 0; w.U16 3; w.U32 (at "GLIBCXX_3.4"); w.U32 0L
    w.U16 1; w.U16 1; w.U32 (at "libc.so.6"); w.U32 16L; w.U32 0L
    w.U32 0x06969194L; w.U16 0; w.U16 4; w.U32 (at "GLIBC_2.14"); w.U32 0L
    let verneedSize = int64 w.Position - verneedAt
    let shstrAt = int64 w.Position
    w.Bytes(Encoding.ASCII.GetBytes shstrings)
    w.Pad 8
    let shoff = int64 w.Position
    let header (name: int64) (kind: int64) (offset: int64) (size: int64) (link: int64) (info: int64) =
        w.U32 name; w.U32 kind; w.U64 0L; w.U64 0L; w.U64 offset; w.U64 size; w.U32 link; w.U32 info; w.U64 1L; w.U64 0L
    header 0L 0L 0L 0L 0L 0L
    header (shname ".dynstr") 3L dynstrAt (int64 dynstr.Length) 0L 0L
    header (shname ".gnu.version_r") verneedType verneedAt verneedSize 1L 2L
    header (shname ".shstrtab") 3L shstrAt (int64 shstrings.Length) 0L 0L
    let bytes = w.ToArray()
    BitConverter.GetBytes(uint64 shoff).CopyTo(bytes, 0x28)
    bytes, flagsAt

/// The offsets where two byte arrays of equal length differ.
let private differences (a: byte[]) (b: byte[]) = [ for i in 0 .. a.Length - 1 do if a[i] <> b[i] then yield i ]

let tests =
    testList "Elf" [

        testCase "only the named version's flags change, to weak; a second pass changes nothing" <| fun () ->
            let original, flagsAt = generated (int64 Elf.ShtGnuVerneed)
            let bytes = Array.copy original
            Expect.equal (Elf.markWeak bytes "GLIBCXX_3.4.32") (Elf.Marked 1) "one need marked"
            Expect.equal (differences original bytes) [ flagsAt ] "only the low byte of its vna_flags differs"
            Expect.equal bytes[flagsAt] (byte Elf.VerFlgWeak) "VER_FLG_WEAK set"
            let once = Array.copy bytes
            Expect.equal (Elf.markWeak bytes "GLIBCXX_3.4.32") (Elf.AlreadyWeak 1) "already weak"
            Expect.equal bytes once "unchanged the second time"

        testCase "a version the file does not need, and a file without .gnu.version_r, are left alone" <| fun () ->
            let original, _ = generated (int64 Elf.ShtGnuVerneed)
            let bytes = Array.copy original
            Expect.equal (Elf.markWeak bytes "GLIBCXX_3.4.99") Elf.NotNeeded "not needed"
            Expect.equal bytes original "unchanged"
            let withoutSection, _ = generated 1L // PROGBITS instead of the version needs
            let copy = Array.copy withoutSection
            Expect.equal (Elf.markWeak copy "GLIBCXX_3.4.32") Elf.NoVersionNeeds "no version needs"
            Expect.equal copy withoutSection "unchanged"

        property Seed 300 "every truncation of the file is an error, and leaves the bytes as they were" <| fun () ->
            let original, _ = generated (int64 Elf.ShtGnuVerneed)
            Prop.forAll (Arb.fromGen (Gen.choose (0, original.Length - 1))) (fun length ->
                let cut = original[.. length - 1]
                let before = Array.copy cut
                let failed = try Elf.markWeak cut "GLIBCXX_3.4.32" |> ignore; false with Elf.ElfError _ -> true
                failed && cut = before)

        testCase "other files are refused with what is wrong" <| fun () ->
            let message (bytes: byte[]) = try Elf.markWeak bytes "x" |> ignore; "" with Elf.ElfError m -> m
            Expect.stringContains (message (Encoding.ASCII.GetBytes(String('x', 100)))) "not an ELF file" "text"
            let original, _ = generated (int64 Elf.ShtGnuVerneed)
            let bits32 = Array.copy original
            bits32[4] <- 1uy
            Expect.stringContains (message bits32) "not a 64-bit ELF" "ELF32"
            let bigEndian = Array.copy original
            bigEndian[5] <- 2uy
            Expect.stringContains (message bigEndian) "not a little-endian ELF" "big-endian"

        testCase "on a real system binary only the flags of the marked needs change" <| fun () ->
            // /bin/ls on Debian needs GLIBC_2.2.5 (the x86-64 baseline) from libc.so.6.
            let path = "/bin/ls"
            if not (File.Exists path) || not (OperatingSystem.IsLinux()) || Runtime.InteropServices.RuntimeInformation.OSArchitecture <> Runtime.InteropServices.Architecture.X64 then
                skiptest "needs /bin/ls of an x86-64 Linux"
            let original = File.ReadAllBytes path
            let bytes = Array.copy original
            match Elf.markWeak bytes "GLIBC_2.2.5" with
            | Elf.Marked n ->
                let changed = differences original bytes
                Expect.isTrue (changed.Length >= 1 && changed.Length <= n) $"{changed.Length} bytes changed for {n} needs"
                for i in changed do
                    Expect.equal (bytes[i] &&& ~~~original[i]) (byte Elf.VerFlgWeak) $"byte {i}: only VER_FLG_WEAK added"
            | other -> failtestf "expected GLIBC_2.2.5 to be marked in %s, got %A" path other
    ]
