/// Helpers shared by the Properties and Regression test programs (Expecto + FsCheck): seeded property
/// configurations, the assertions Expecto lacks (exception capture, tolerances), optional native libraries,
/// and a temporary folder.
module VaeResearch.TestSupport

open System
open System.IO
open Expecto

// ---------------------------------------------------------------------------------------------
// Properties

/// An FsCheck configuration that replays (seed, gamma) and runs maxTest cases. Every property of the
/// suite is seeded, so every run draws the same cases; a failure prints the replay triple, which can be
/// pasted into `replayed` below (see README, "Replaying a failing property").
/// The native engine as a compute context: the first argument of every model and layer built in a test.
let native: VaeResearch.Compute.ComputeContext<VaeResearch.Engine.Tensor> = VaeResearch.Compute.NativeContext.Cpu

let seeded (seed: uint64 * uint64) (maxTest: int) : FsCheckConfig =
    { FsCheckConfig.defaultConfig with maxTest = maxTest; replay = Some(fst seed, snd seed, None) }

/// The failing case of a property, from the triple Expecto prints under "Focus on error:"
/// (`etestPropertyWithConfig (seed, gamma, Some size) "name"`): one case, the failing one.
let replayed (seed: uint64, gamma: uint64, size: int option) : FsCheckConfig =
    { FsCheckConfig.defaultConfig with maxTest = 1; replay = Some(seed, gamma, size) }

/// A seeded FsCheck property test: `property seed maxTest name body`, body being a Property, a bool or a
/// function of generated arguments.
let property (seed: uint64 * uint64) (maxTest: int) (name: string) body =
    testPropertyWithConfig (seeded seed maxTest) name body

// ---------------------------------------------------------------------------------------------
// Assertions

let private describe (e: exn) = $"{e.GetType().Name}: {e.Message}"

/// The exception of exactly type 'E that body throws; fails the test when body returns or throws another type.
let throws<'E when 'E :> exn> (body: unit -> unit) : 'E =
    let thrown = try body (); None with e -> Some e
    match thrown with
    | Some(:? 'E as e) when e.GetType() = typeof<'E> -> e
    | Some e -> failtestf "expected %s, but got %s" typeof<'E>.Name (describe e)
    | None -> failtestf "expected %s, but nothing was thrown" typeof<'E>.Name

/// The exception of type 'E or a subclass that body throws; fails the test otherwise.
let catches<'E when 'E :> exn> (body: unit -> unit) : 'E =
    let thrown = try body (); None with e -> Some e
    match thrown with
    | Some(:? 'E as e) -> e
    | Some e -> failtestf "expected %s or a subclass, but got %s" typeof<'E>.Name (describe e)
    | None -> failtestf "expected %s, but nothing was thrown" typeof<'E>.Name

/// |actual - expected| <= tolerance (NaN fails).
let within (tolerance: float) (actual: float) (expected: float) (message: string) =
    if not (abs (actual - expected) <= tolerance) then
        failtestf "%s: expected %.17g within %g, got %.17g (off by %g)" message expected tolerance actual (abs (actual - expected))

/// Element-wise |actual[i] - expected[i]| <= tolerance, and the same length.
let inline withinEach (tolerance: float) (actual: ^T[]) (expected: ^T[]) (message: string) =
    if actual.Length <> expected.Length then
        failtestf "%s: expected %d values, got %d" message expected.Length actual.Length
    for i in 0 .. actual.Length - 1 do
        within tolerance (float actual[i]) (float expected[i]) $"{message}[{i}]"

/// lo <= actual <= hi (NaN fails).
let inRange (lo: 'T) (hi: 'T) (actual: 'T) (message: string) =
    if not (lo <= actual && actual <= hi) then failtestf "%s: expected a value in [%A, %A], got %A" message lo hi actual

/// text does not contain needle.
let notContains (text: string) (needle: string) (message: string) =
    if text.Contains needle then failtestf "%s: expected no %A in %A" message needle text

/// actual and expected are the same object.
let sameAs (actual: obj) (expected: obj) (message: string) =
    if not (obj.ReferenceEquals(actual, expected)) then failtestf "%s: expected the same object" message

// ---------------------------------------------------------------------------------------------
// Optional native libraries

/// Whether this is a CI run (CI=true): there an optional native library that does not load fails its tests.
let isCi =
    match Environment.GetEnvironmentVariable "CI" with
    | null -> false
    | v -> v.Equals("true", StringComparison.OrdinalIgnoreCase) || v = "1"

/// Guards a test that needs an optional native library: returns when it loads; otherwise skips the test
/// with the reason and the install command, or fails it under CI=true (so CI always runs such tests).
let requireNative (library: string) (loadError: string option) (install: string) =
    match loadError with
    | None -> ()
    | Some why ->
        let message = $"{library} is not available ({why}); install it with: {install}"
        if isCi then failtestf "%s (CI=true requires it)" message else skiptest message

// ---------------------------------------------------------------------------------------------
// Test programs

/// Runs a test program's tests in sequence (they share process-wide engine settings) with Expecto's
/// command line, plus `--match TEXT`: only the tests whose full name ("Properties.Gemm.alpha = 0 ...")
/// contains TEXT, ignoring case. Returns Expecto's exit code.
let runSuite (argv: string[]) (tests: Test) =
    let rec split (args: string list) =
        match args with
        | "--match" :: text :: rest -> let _, others = split rest in Some text, others
        | arg :: rest -> let text, others = split rest in text, arg :: others
        | [] -> None, []
    let text, expectoArgs = split (List.ofArray argv)
    let selected =
        match text with
        | None -> tests
        | Some text -> tests |> Test.filter "." (fun path -> (String.concat "." path).Contains(text, StringComparison.OrdinalIgnoreCase))
    runTestsWithCLIArgs [ CLIArguments.Sequenced ] (Array.ofList expectoArgs) selected

// ---------------------------------------------------------------------------------------------
// Files

/// A fresh temporary folder named after <paramref name="prefix"/>, deleted (with its contents) by `use`.
type TempFolder(prefix: string) =
    let info = Directory.CreateTempSubdirectory prefix
    /// The folder.
    member _.Path = info.FullName
    /// A path inside the folder.
    member _.Sub(name: string) = Path.Combine(info.FullName, name)
    /// A path inside the folder (same as Sub).
    member _.File(name: string) = Path.Combine(info.FullName, name)
    /// The names of the folder's entries, sorted.
    member _.Entries() = Directory.GetFileSystemEntries info.FullName |> Array.map (Path.GetFileName >> nonNull) |> Array.sort
    interface IDisposable with
        member _.Dispose() = try info.Delete true with :? IOException -> ()
