/// Assertion helpers and a temporary folder shared by the Properties and Regression test projects.
module VaeResearch.TestSupport

open System
open System.IO
open NUnit.Framework

/// NUnit's equality constraint on any value (arrays, lists and tuples compare element-wise; boxed to pick
/// the non-generic overload).
let equals (expected: obj | null) = Is.EqualTo expected

/// The exception of exactly type 'E that body throws (NUnit's Assert.Throws).
let throws<'E when 'E :> exn and 'E: not null> (body: unit -> unit) : 'E =
    match Assert.Throws<'E>(TestDelegate body) with
    | null -> failwith "unreachable: Assert.Throws returned null"
    | e -> e

/// The exception of type 'E or a subclass that body throws (NUnit's Assert.Catch).
let catches<'E when 'E :> exn and 'E: not null> (body: unit -> unit) : 'E =
    match Assert.Catch<'E>(TestDelegate body) with
    | null -> failwith "unreachable: Assert.Catch returned null"
    | e -> e

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
