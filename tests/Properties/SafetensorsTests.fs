module VaeResearch.Properties.SafetensorsTests

// Properties of the safetensors reader/writer (src/Core.CSharp/Engine/Safetensors*.cs):
//   1. round trips are bit-exact (Serialize/Parse and Save/Load), checked against an independent writer;
//   2. corrupt files either parse or raise FileFormatException, never anything else;
//   3. specific malformed headers name the field at fault;
//   4. Save is atomic.

open System
open System.Buffers.Binary
open System.Collections.Generic
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open VaeResearch
open VaeResearch.Engine
open VaeResearch.TestSupport

// ---------------------------------------------------------------------------------------------
// Generators

/// Bit patterns worth covering explicitly: NaNs with payloads (quiet and signalling, both signs),
/// infinities, signed zeros, subnormals and the extremes.
let private specialBits =
    [| 0x7fc00000u; 0xffc00000u; 0x7f800001u; 0x7fbfffffu; 0xffffffffu; 0x7fc0deadu; 0xff80beefu
       0x7f800000u; 0xff800000u; 0x80000000u; 0x00000000u; 0x00000001u; 0x807fffffu; 0x7f7fffffu; 0xff7fffffu |]

let private genBits : Gen<uint32> =
    Gen.map2 (fun (hi: int) (lo: int) -> (uint32 hi <<< 16) ||| uint32 lo) (Gen.choose (0, 0xffff)) (Gen.choose (0, 0xffff))

let private genFloat : Gen<float32> =
    Gen.frequency
        [ 3, genBits |> Gen.map BitConverter.UInt32BitsToSingle
          2, Gen.elements specialBits |> Gen.map BitConverter.UInt32BitsToSingle
          3, Gen.choose (-10000, 10000) |> Gen.map (fun i -> float32 i / 64.0f) ]

/// Name fragments: JSON metacharacters, control characters, non-ASCII and a surrogate pair.
let private namePieces =
    [ "a"; "b"; "z"; "0"; "9"; "."; "_"; "-"; " "; "\""; "\\"; "/"; "\u0000"; "\n"; "\t"; "\u007f"
      "é"; "Ω"; "中"; "😀"; "\u2028"; "{"; "}"; ":"; ","; "["; "weight"; "encoder."; "__metadata__" ]

let private genText : Gen<string> =
    Gen.listOf (Gen.elements namePieces) |> Gen.map (String.concat "") |> Gen.resize 12

/// Names are unique by construction (the index suffix) and never exactly "__metadata__".
let private genName (i: int) = genText |> Gen.map (fun s -> s + "#" + string i)

let private genShape : Gen<int[]> =
    gen {
        let! rank = Gen.choose (0, 4)
        return! Gen.arrayOfLength rank (Gen.frequency [ 1, Gen.constant 0; 6, Gen.choose (1, 6) ])
    }

let private genTensor (i: int) : Gen<NamedTensor> =
    gen {
        let! name = genName i
        let! shape = genShape
        let! data = Gen.arrayOfLength (Array.fold (*) 1 shape) genFloat
        return NamedTensor(name, shape, data)
    }

let private genMetadata : Gen<IReadOnlyDictionary<string, string>> =
    Gen.listOf (Gen.zip genText genText)
    |> Gen.resize 4
    |> Gen.map (fun kvs -> kvs |> List.distinctBy fst |> readOnlyDict)

type Case =
    { Tensors: NamedTensor list
      Metadata: IReadOnlyDictionary<string, string> }

let private genCase : Gen<Case> =
    gen {
        let! k = Gen.choose (0, 6)
        let! tensors = [ 0 .. k - 1 ] |> List.map genTensor |> Gen.sequenceToList
        let! metadata = Gen.frequency [ 1, Gen.constant (readOnlyDict []); 2, genMetadata ]
        return { Tensors = tensors; Metadata = metadata }
    }

let private arbCase = Arb.fromGen genCase

// ---------------------------------------------------------------------------------------------
// An independent writer: a tiny JSON AST rendered by hand, so headers can be malformed on purpose.

type Json =
    | JObj of (string * Json) list
    | JArr of Json list
    | JStr of string
    | JNum of string
    | JBool of bool
    | JNull
    /// Inserted verbatim (may be invalid JSON).
    | JRaw of string

let private escape (s: string) =
    let sb = StringBuilder("\"")
    for c in s do
        match c with
        | '"' -> sb.Append("\\\"") |> ignore
        | '\\' -> sb.Append("\\\\") |> ignore
        | c when c < ' ' -> sb.AppendFormat("\\u{0:x4}", int c) |> ignore
        | c -> sb.Append(c) |> ignore
    sb.Append('"').ToString()

let rec private render (j: Json) : string =
    match j with
    | JObj props -> "{" + (props |> List.map (fun (k, v) -> escape k + ":" + render v) |> String.concat ",") + "}"
    | JArr items -> "[" + (items |> List.map render |> String.concat ",") + "]"
    | JStr s -> escape s
    | JNum n -> n
    | JBool b -> if b then "true" else "false"
    | JNull -> "null"
    | JRaw r -> r

let private dataBytes (tensors: NamedTensor seq) =
    [| for t in tensors do
         for v in t.Data do
             let b = Array.zeroCreate<byte> 4
             BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(), v)
             yield! b |]

/// The header of a correct file for the case, built by hand (tensors contiguous in order).
let private headerAst (case: Case) : Json =
    let meta =
        if case.Metadata.Count = 0 then []
        else [ "__metadata__", JObj [ for kv in case.Metadata -> kv.Key, JStr kv.Value ] ]
    let mutable offset = 0L
    let entries =
        [ for t in case.Tensors ->
              let b = offset
              offset <- offset + 4L * int64 t.Data.Length
              t.Name,
              JObj [ "dtype", JStr "F32"
                     "shape", JArr [ for d in t.Shape -> JNum(string d) ]
                     "data_offsets", JArr [ JNum(string b); JNum(string offset) ] ] ]
    JObj(meta @ entries)

/// Length prefix + header (padded with spaces to a multiple of 8 when asked) + data.
let private assemble (pad: bool) (header: byte[]) (data: byte[]) =
    let padded = if pad then (header.Length + 7) / 8 * 8 else header.Length
    let bytes = Array.create (8 + padded + data.Length) (byte ' ')
    BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(), uint64 padded)
    header.CopyTo(bytes, 8)
    data.CopyTo(bytes, 8 + padded)
    bytes

let private fileOf (header: string) (data: byte[]) = assemble true (Encoding.UTF8.GetBytes header) data

// ---------------------------------------------------------------------------------------------
// Checks

let private bits (x: float32) = BitConverter.SingleToUInt32Bits x

let private check (ok: bool) (what: string) = if not ok then failwith what

let private sameContent (case: Case) (content: SafetensorsContent) =
    check (content.Tensors.Count = case.Tensors.Length) $"tensor count {content.Tensors.Count} <> {case.Tensors.Length}"
    for (expected, actual) in Seq.zip case.Tensors content.Tensors do
        check (actual.Name = expected.Name) $"name {actual.Name} <> {expected.Name}"
        check (actual.Shape = expected.Shape) $"shape of {expected.Name}"
        check (actual.Data.Length = expected.Data.Length) $"data length of {expected.Name}"
        for i in 0 .. expected.Data.Length - 1 do
            check (bits actual.Data[i] = bits expected.Data[i])
                $"{expected.Name}[{i}]: bits {bits actual.Data[i]:x8} <> {bits expected.Data[i]:x8}"
        check (content.Contains expected.Name && Object.ReferenceEquals(content[expected.Name], actual)) $"lookup of {expected.Name}"
    check (content.Metadata.Count = case.Metadata.Count) "metadata count"
    for kv in case.Metadata do
        check (content.Metadata.ContainsKey kv.Key && content.Metadata[kv.Key] = kv.Value) $"metadata {kv.Key}"

/// Parse must return content or raise FileFormatException; anything else propagates and fails the property.
let private tryParse (bytes: byte[]) : Result<SafetensorsContent, FileFormatException> =
    try Ok(Safetensors.Parse(ReadOnlySpan bytes, "corrupt.safetensors"))
    with :? FileFormatException as e -> Error e

let private withTempDir (f: string -> 'a) : 'a =
    let dir = Path.Combine(Path.GetTempPath(), "vae-st-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let private headerLength (bytes: byte[]) = int (BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan bytes))

// ---------------------------------------------------------------------------------------------
// 2. Corruptions

type Corrupted =
    { Kind: string
      Bytes: byte[]
      /// Every valid reading is impossible: the reader must raise FileFormatException.
      MustFail: bool
      /// Only data bytes changed: the reader must succeed.
      DataOnly: bool }

/// Structurally wrong values for any place in a header.
let private genWrongValue : Gen<Json> =
    let deep = String('[', 5000) + String(']', 5000)
    Gen.oneof
        [ Gen.elements
              [ JNum "-1"; JNum "1.5"; JNum "1e3"; JNum "-0"; JNum "99999999999999999999999"; JNum "2147483648"
                JNum "9223372036854775807"; JNum "18446744073709551616"; JNum "0"; JNum "4"; JNum "-4"
                JStr "F16"; JStr "BF16"; JStr "f32"; JStr ""; JStr "F64"; JStr "I64"; JStr "F32"
                JNull; JBool true; JObj []; JArr []; JArr [ JNum "1" ]; JArr [ JNum "8"; JNum "0" ]
                JArr [ JNum "0"; JNum "4"; JNum "8" ]; JArr [ JNum "2147483647"; JNum "2147483647"; JNum "2147483647" ]
                JRaw "\"\\ud800\""; JRaw "\"\\udc00x\""; JRaw deep; JRaw "{"; JRaw ""; JRaw "[1,]"; JRaw "/*c*/1"
                JRaw "\"unterminated"; JRaw "01"; JRaw "NaN"; JRaw "\"\\u12\"" ]
          Gen.choose (-5, 100) |> Gen.map (string >> JNum)
          Gen.listOf (Gen.choose (-3, 40)) |> Gen.resize 5 |> Gen.map (List.map (string >> JNum) >> JArr)
          genText |> Gen.map JStr ]

let private genKey : Gen<string> =
    Gen.oneof [ Gen.elements [ "dtype"; "shape"; "data_offsets"; "__metadata__"; "Shape"; "" ]; genText ]

let private replaceAt i x xs = xs |> List.mapi (fun j y -> if j = i then x else y)
let private removeAt i xs = xs |> List.indexed |> List.filter (fun (j, _) -> j <> i) |> List.map snd

/// One random structural mutation somewhere in the tree.
let rec private mutate (j: Json) : Gen<Json> =
    match j with
    | JObj props when not props.IsEmpty ->
        gen {
            let! i = Gen.choose (0, props.Length - 1)
            let (k, v) = props[i]
            return!
                Gen.frequency
                    [ 4, mutate v |> Gen.map (fun v' -> JObj(replaceAt i (k, v') props))
                      1, genWrongValue
                      1, Gen.constant (JObj(removeAt i props))
                      1, Gen.constant (JObj(props @ [ k, v ]))
                      1, Gen.zip genKey genWrongValue |> Gen.map (fun kv -> JObj(props @ [ kv ]))
                      1, genKey |> Gen.map (fun k' -> JObj(replaceAt i (k', v) props)) ]
        }
    | JArr items when not items.IsEmpty ->
        gen {
            let! i = Gen.choose (0, items.Length - 1)
            return!
                Gen.frequency
                    [ 3, mutate items[i] |> Gen.map (fun v' -> JArr(replaceAt i v' items))
                      1, genWrongValue
                      1, Gen.constant (JArr(removeAt i items))
                      1, genWrongValue |> Gen.map (fun v -> JArr(items @ [ v ]))
                      1, Gen.constant (JArr(List.rev items)) ]
        }
    | _ -> genWrongValue

let private genByte = Gen.choose (0, 255) |> Gen.map byte

let private genCorruption (case: Case) : Gen<Corrupted> =
    let orig = Safetensors.Serialize(case.Tensors, case.Metadata)
    let len = orig.Length
    let dataStart = 8 + headerLength orig
    let truncate =
        gen {
            let! cut =
                Gen.oneof
                    [ Gen.choose (0, 7) // inside the length prefix
                      Gen.choose (8, dataStart - 1) // inside the header
                      Gen.choose (min dataStart (len - 1), len - 1) // inside the data (or the header's last byte)
                      Gen.constant (len - 1) ] // one byte short
            return { Kind = $"truncate to {cut} of {len} bytes"; Bytes = orig[.. cut - 1]; MustFail = true; DataOnly = false }
        }
    let flip (lo: int) =
        gen {
            let! k = Gen.choose (1, 8)
            let! positions = Gen.listOfLength k (Gen.choose (lo, len - 1))
            let! masks = Gen.listOfLength k (Gen.choose (1, 255))
            let bytes = Array.copy orig
            for (p, m) in List.zip positions masks do
                bytes[p] <- bytes[p] ^^^ byte m
            let changedData = not (bytes.AsSpan(0, dataStart).SequenceEqual(ReadOnlySpan(orig, 0, dataStart)))
            return { Kind = $"flip bytes {positions}"; Bytes = bytes; MustFail = false; DataOnly = not changedData }
        }
    let rewriteLength =
        gen {
            let! v =
                Gen.frequency
                    [ 3, Gen.choose (0, len + 16) |> Gen.map uint64
                      1, Gen.map2 (fun (a: uint32) (b: uint32) -> (uint64 a <<< 32) ||| uint64 b) genBits genBits
                      1, Gen.elements [ 104857600UL; 104857601UL; UInt64.MaxValue; 1UL <<< 63; uint64 (len - 8) ] ]
                |> Gen.filter (fun v -> v <> uint64 (dataStart - 8))
            let bytes = Array.copy orig
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(), v)
            return { Kind = $"header length rewritten to {v}"; Bytes = bytes; MustFail = true; DataOnly = false }
        }
    let garbage =
        gen {
            let! junk = Gen.arrayOf genByte |> Gen.resize 64
            let! pad = Gen.elements [ true; false ]
            let data = orig[dataStart..]
            return { Kind = $"header replaced by bytes {Convert.ToHexString junk}"; Bytes = assemble pad junk data; MustFail = false; DataOnly = false }
        }
    let structural =
        gen {
            let! wrong = mutate (headerAst case)
            let! pad = Gen.elements [ true; false ]
            let text = render wrong
            let shown = if text.Length > 300 then text[..299] + "..." else text
            return
                { Kind = $"header replaced by {shown}"
                  Bytes = assemble pad (Encoding.UTF8.GetBytes text) (dataBytes case.Tensors)
                  MustFail = false
                  DataOnly = false }
        }
    Gen.frequency [ 3, truncate; 2, flip 0; 2, flip (max 0 (dataStart - 8)); 2, rewriteLength; 2, garbage; 8, structural ]

let private arbCorrupted = Arb.fromGen (genCase |> Gen.bind genCorruption)

// ---------------------------------------------------------------------------------------------
// 3. Specific malformed files name the field

let private failure (bytes: byte[]) =
    match tryParse bytes with
    | Ok _ -> failwith "expected a FileFormatException"
    | Error e -> e

let private entry (dtype: string) (shape: string) (offsets: string) =
    $"{{\"dtype\":{dtype},\"shape\":{shape},\"data_offsets\":{offsets}}}"

let private expectFailure (header: string) (dataLength: int) (field: string) (found: string) =
    let e = failure (fileOf header (Array.zeroCreate dataLength))
    Expect.stringStarts e.Message ("corrupt.safetensors: ") "e.Message"
    Expect.stringContains e.Field field "e.Field"
    Expect.stringContains e.Found found "e.Found"
    e

/// FsCheck (seed, gamma) every property of this module replays.
let private Seed = (20261202UL, 104729UL)

// ---------------------------------------------------------------------------------------------

/// The tests of this module.
let tests =
    testList "Safetensors" [

        // ---------------------------------------------------------------------------------------------
        // 1. Round trips
        property Seed 300 "Serialize then Parse is bit-exact" <| fun () ->
            Prop.forAll arbCase (fun case ->
                let bytes = Safetensors.Serialize(case.Tensors, case.Metadata)
                let n = headerLength bytes
                check (n % 8 = 0) "header length is a multiple of 8"
                let dataLength = case.Tensors |> List.sumBy (fun t -> 4 * t.Data.Length)
                check (bytes.Length = 8 + n + dataLength) "file size = 8 + header + 4 x values"
                sameContent case (Safetensors.Parse(ReadOnlySpan bytes, "memory")))

        property Seed 300 "Parse reads a file from an independent writer; the data bytes are identical" <| fun () ->
            Prop.forAll arbCase (fun case ->
                let data = dataBytes case.Tensors
                let handmade = assemble true (Encoding.UTF8.GetBytes(render (headerAst case))) data
                sameContent case (Safetensors.Parse(ReadOnlySpan handmade, "handmade"))
                let ours = Safetensors.Serialize(case.Tensors, case.Metadata)
                check (ours.AsSpan(8 + headerLength ours).SequenceEqual(ReadOnlySpan data)) "data buffer bytes")

        property Seed 60 "Save then Load is bit-exact" <| fun () ->
            Prop.forAll arbCase (fun case ->
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "model.safetensors")
                    Safetensors.Save(path, case.Tensors, case.Metadata)
                    let content = Safetensors.Load path
                    check (content.Source = path) "source is the path"
                    sameContent case content
                    check (File.ReadAllBytes(path) = Safetensors.Serialize(case.Tensors, case.Metadata)) "Save writes Serialize's bytes"
                    check (Directory.GetFiles(dir).Length = 1) "no temporary files left"))

        testCase "Serialize writes the documented layout byte for byte" <| fun () ->
            let bytes = Safetensors.Serialize([ NamedTensor("w", [| 2 |], [| 1.0f; -2.0f |]) ], readOnlyDict [ "format", "pt" ])
            let json = """{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"""
            // 85 bytes of JSON, padded with spaces to 88.
            let expected =
                Array.concat
                    [ [| 88uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy |]
                      Encoding.ASCII.GetBytes(json + String(' ', 88 - json.Length))
                      [| 0x00uy; 0x00uy; 0x80uy; 0x3fuy; 0x00uy; 0x00uy; 0x00uy; 0xc0uy |] ] // 1.0f, -2.0f little-endian
            Expect.equal json.Length 85 "json.Length"
            Expect.equal bytes expected "bytes"

        testCase "tensors come back in data-offset order, whatever the JSON order" <| fun () ->
            let header =
                """{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}, "e":{"shape":[0],"dtype":"F32","data_offsets":[8,8],"extra":1},
                    "__metadata__":{"k":"v"}, "a":{"data_offsets":[0,4],"shape":[],"dtype":"F32"}}"""
            let content = Safetensors.Parse(ReadOnlySpan(fileOf header (Array.zeroCreate 8)), "order")
            Expect.equal ([ for t in content.Tensors -> t.Name ]) ([ "a"; "b"; "e" ]) "[ for t in content.Tensors -> t.Name ]"
            Expect.equal (content.Metadata["k"]) ("v") "content.Metadata[\"k\"]"
            Expect.isEmpty (content.Get("a").Shape) "content.Get(\"a\").Shape"
            Expect.isEmpty (content.Get("e", 0).Data) "content.Get(\"e\", 0).Data"

        property Seed 3000 "a corrupted file parses or raises FileFormatException, nothing else" <| fun () ->
            Prop.forAll arbCorrupted (fun c ->
                match tryParse c.Bytes with
                | Ok _ -> check (not c.MustFail) $"{c.Kind}: parsed, but must fail"
                | Error e ->
                    check (not c.DataOnly) $"{c.Kind}: only data changed, yet failed: {e.Message}"
                    check (e.Message.StartsWith "corrupt.safetensors: ") $"{c.Kind}: message does not name the file: {e.Message}"
                    check (e.Field <> "") $"{c.Kind}: no field")

        property Seed 150 "Load agrees with Parse on corrupted files" <| fun () ->
            Prop.forAll arbCorrupted (fun c ->
                withTempDir (fun dir ->
                    let path = Path.Combine(dir, "corrupt.safetensors")
                    File.WriteAllBytes(path, c.Bytes)
                    let loaded =
                        try Ok(Safetensors.Load path)
                        with :? FileFormatException as e -> Error e
                    match tryParse c.Bytes, loaded with
                    | Ok a, Ok b -> check (a.Tensors.Count = b.Tensors.Count) $"{c.Kind}: tensor counts differ"
                    | Error a, Error b -> check (a.Field = b.Field && a.Found = b.Found) $"{c.Kind}: {a.Message} vs {b.Message}"
                    | a, b -> failwith $"{c.Kind}: Parse gave {a}, Load gave {b}"))

        testCase "unsupported dtype: names the dtype and says only F32 is supported" <| fun () ->
            let e = expectFailure ("{\"w\":" + entry "\"F16\"" "[2]" "[0,4]" + "}") 4 "tensor \"w\" dtype" "F16"
            Expect.stringContains e.Expected ("F32") "e.Expected"
            Expect.stringContains e.Message ("only dtype supported") "e.Message"

        testCase "shape entries must be non-negative integers" <| fun () ->
            expectFailure ("{\"w\":" + entry "\"F32\"" "[2,-1]" "[0,0]" + "}") 0 "tensor \"w\" shape[1]" "-1" |> ignore
            expectFailure ("{\"w\":" + entry "\"F32\"" "[1.5]" "[0,4]" + "}") 4 "tensor \"w\" shape[0]" "1.5" |> ignore
            expectFailure ("{\"w\":" + entry "\"F32\"" "[\"2\"]" "[0,8]" + "}") 8 "tensor \"w\" shape[0]" "\"2\"" |> ignore
            expectFailure ("{\"w\":" + entry "\"F32\"" "[4294967296]" "[0,8]" + "}") 8 "tensor \"w\" shape[0]" "4294967296" |> ignore
            expectFailure ("{\"w\":" + entry "\"F32\"" "{}" "[0,8]" + "}") 8 "tensor \"w\" shape" "object" |> ignore

        testCase "shape product overflow is reported, not wrapped" <| fun () ->
            let e = expectFailure ("{\"w\":" + entry "\"F32\"" "[65536,65536,65536,65536]" "[0,0]" + "}") 0 "tensor \"w\" shape" "overflows"
            Expect.stringContains e.Found ("[65536, 65536, 65536, 65536]") "e.Found"

        testCase "data_offsets problems name the tensor and data_offsets" <| fun () ->
            let w offsets = "{\"w\":" + entry "\"F32\"" "[2]" offsets + "}"
            expectFailure (w "[8,0]") 8 "tensor \"w\" data_offsets" "reversed" |> ignore
            expectFailure (w "[0,16]") 8 "tensor \"w\" data_offsets" "[0, 16]" |> ignore
            expectFailure (w "[0,4]") 8 "tensor \"w\" data_offsets" "4 bytes" |> ignore
            expectFailure (w "[0.0,8]") 8 "tensor \"w\" data_offsets" "0.0" |> ignore
            expectFailure (w "[-8,0]") 8 "tensor \"w\" data_offsets" "-8" |> ignore
            expectFailure (w "[0,8,16]") 8 "tensor \"w\" data_offsets" "array" |> ignore
            expectFailure (w "[8,16]") 16 "tensor \"w\" data_offsets" "hole of 8 bytes" |> ignore
            let two = "{\"a\":" + entry "\"F32\"" "[2]" "[0,8]" + ",\"b\":" + entry "\"F32\"" "[2]" "[4,12]" + "}"
            expectFailure two 12 "tensor \"b\" data_offsets" "overlapping tensor \"a\"" |> ignore

        testCase "a data buffer longer than the tensors is rejected" <| fun () ->
            let e = expectFailure ("{\"w\":" + entry "\"F32\"" "[2]" "[0,8]" + "}") 12 "data buffer" "12 bytes"
            Expect.stringContains e.Expected ("8 bytes") "e.Expected"

        testCase "header length field problems" <| fun () ->
            let valid = Safetensors.Serialize([ NamedTensor("w", [| 1 |], [| 1.0f |]) ])
            let withLength (v: uint64) =
                let b = Array.copy valid
                BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(), v)
                b
            for bytes, found in [ withLength 1000UL, "1000 bytes"; withLength UInt64.MaxValue, "18446744073709551615"; valid[..4], "5 bytes"; [||], "0 bytes" ] do
                let e = failure bytes
                Expect.stringContains e.Field ("header length") "e.Field"
                Expect.stringContains e.Found found "e.Found"
            let huge = failure (withLength 104857601UL)
            Expect.stringContains huge.Expected ("100 MB") "huge.Expected"

        testCase "header that is not a JSON object, not JSON or not UTF-8" <| fun () ->
            expectFailure "[]" 0 "header" "array" |> ignore
            expectFailure "\"F32\"" 0 "header" "string" |> ignore
            expectFailure "{\"w\":" 0 "header" "invalid JSON" |> ignore
            expectFailure "{} x" 0 "header" "invalid JSON" |> ignore
            expectFailure (String('[', 10000)) 0 "header" "invalid JSON" |> ignore
            let bytes = assemble true [| byte '{'; 0xffuy; byte '}' |] [||]
            Expect.stringContains ((failure bytes).Found) ("UTF-8") "(failure bytes).Found"
            expectFailure "{\"\\ud800\":{}}" 0 "header" "invalid string" |> ignore

        testCase "duplicate names and keys are rejected" <| fun () ->
            let w = entry "\"F32\"" "[1]" "[0,4]"
            expectFailure ("{\"w\":" + w + ",\"w\":" + w + "}") 4 "tensor \"w\"" "duplicate" |> ignore
            expectFailure ("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}") 4 "tensor \"w\" dtype" "duplicate" |> ignore
            expectFailure ("{\"__metadata__\":{},\"__metadata__\":{}}") 0 "__metadata__" "duplicate" |> ignore
            expectFailure ("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}") 0 "__metadata__ \"k\"" "duplicate" |> ignore
            expectFailure ("{\"\":" + w + "}") 4 "tensor name" "\"\"" |> ignore

        testCase "metadata must be an object of strings" <| fun () ->
            expectFailure "{\"__metadata__\":{\"epoch\":3}}" 0 "__metadata__ \"epoch\"" "3" |> ignore
            expectFailure "{\"__metadata__\":[]}" 0 "__metadata__" "array" |> ignore

        testCase "missing keys are named" <| fun () ->
            expectFailure "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}" 4 "tensor \"w\" dtype" "no dtype" |> ignore
            expectFailure "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}" 4 "tensor \"w\" shape" "no shape" |> ignore
            expectFailure "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}" 4 "tensor \"w\" data_offsets" "no data_offsets" |> ignore
            expectFailure "{\"w\":[]}" 4 "tensor \"w\"" "array" |> ignore

        testCase "Get and the indexer name missing tensors and wrong shapes" <| fun () ->
            let content =
                Safetensors.Parse(ReadOnlySpan(Safetensors.Serialize([ NamedTensor("encoder.mu.weight", [| 2; 3 |], Array.zeroCreate 6) ])), "ckpt")
            let e = throws<FileFormatException> (fun () -> content.Get("encoder.mu.weight", 3, 2) |> ignore)
            Expect.equal e.Message ("ckpt: tensor \"encoder.mu.weight\" shape: expected [3, 2], found [2, 3]") "e.Message"
            let missing = throws<FileFormatException> (fun () -> content["decoder.mu.weight"] |> ignore)
            Expect.stringStarts missing.Message ("ckpt: tensor \"decoder.mu.weight\"") "missing.Message"
            Expect.stringContains missing.Found ("encoder.mu.weight") "missing.Found"
            Expect.isFalse (content.Contains "decoder.mu.weight") "content.Contains \"decoder.mu.weight\""
            Expect.equal (content.Get("encoder.mu.weight", 2, 3).Data.Length) 6 "content.Get(\"encoder.mu.weight\", 2, 3).Data.Length"

        testCase "Load of a missing file is a VaeResearchException naming the file" <| fun () ->
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "nope.safetensors")
                let e = throws<VaeResearchException> (fun () -> Safetensors.Load path |> ignore)
                Expect.stringStarts e.Message path "e.Message")

        // ---------------------------------------------------------------------------------------------
        // 4. Save validates its arguments and is atomic
        testCase "Save and Serialize reject invalid tensors with ArgumentException" <| fun () ->
            let bad: (string * NamedTensor list) list =
                [ "shape/data mismatch", [ NamedTensor("w", [| 2; 2 |], Array.zeroCreate 3) ]
                  "negative dimension", [ NamedTensor("w", [| -1 |], [||]) ]
                  "empty name", [ NamedTensor("", [| 1 |], [| 0.0f |]) ]
                  "reserved name", [ NamedTensor("__metadata__", [| 1 |], [| 0.0f |]) ]
                  "lone surrogate", [ NamedTensor(String([| 'w'; char 0xD800 |]), [| 1 |], [| 0.0f |]) ]
                  "duplicate", [ NamedTensor("w", [| 1 |], [| 0.0f |]); NamedTensor("w", [| 1 |], [| 0.0f |]) ]
                  "null data", [ NamedTensor("w", [| 0 |], Unchecked.defaultof<float32[]>) ]
                  "overflowing shape", [ NamedTensor("w", [| 65536; 65536; 65536 |], [||]) ] ]
            for (what, tensors) in bad do
                match (try Safetensors.Serialize tensors |> ignore; None with e -> Some e) with
                | Some(:? ArgumentException) -> ()
                | other -> failtest $"{what}: expected ArgumentException, got {other}"
            throws<ArgumentException> (fun () -> Safetensors.Serialize([], readOnlyDict [ "k", String(char 0xDC00, 1) ]) |> ignore) |> ignore
            // A zero dimension makes the tensor empty even when the other dimensions are huge.
            let empty = Safetensors.Serialize [ NamedTensor("w", [| Int32.MaxValue; Int32.MaxValue; 0 |], [||]) ]
            Expect.equal ((Safetensors.Parse(ReadOnlySpan empty, "e")["w"]).Shape) ([| Int32.MaxValue; Int32.MaxValue; 0 |]) "(Safetensors.Parse(ReadOnlySpan empty, \"e\")[\"w\"]).Shape"

        testCase "a failed Save leaves the existing file byte-identical and no temporary files" <| fun () ->
            withTempDir (fun dir ->
                let path = Path.Combine(dir, "checkpoint.safetensors")
                Safetensors.Save(path, [ NamedTensor("w", [| 2 |], [| 1.0f; 2.0f |]) ], readOnlyDict [ "epoch", "1" ])
                let before = File.ReadAllBytes path
                throws<ArgumentException> (fun () ->
                    Safetensors.Save(path, [ NamedTensor("ok", [| 1 |], [| 3.0f |]); NamedTensor("w", [| 3 |], [| 1.0f; 2.0f |]) ]))
                |> ignore
                // An enumeration that fails part-way.
                let failing = seq { NamedTensor("w", [| 1 |], [| 5.0f |]); failwith "producer failed" }
                throws<Exception> (fun () -> Safetensors.Save(path, failing)) |> ignore
                Expect.equal (File.ReadAllBytes path) before "File.ReadAllBytes path"
                Expect.equal (Directory.GetFiles dir) ([| path |]) "Directory.GetFiles dir"
                // A failure at the final rename (the target is a directory): the temporary file is removed.
                let blocked = Path.Combine(dir, "blocked.safetensors")
                Directory.CreateDirectory blocked |> ignore
                throws<VaeResearchException> (fun () -> Safetensors.Save(blocked, [ NamedTensor("w", [| 1 |], [| 5.0f |]) ])) |> ignore
                Expect.equal (Directory.GetFiles dir) ([| path |]) "Directory.GetFiles dir"
                Expect.isEmpty (Directory.GetFileSystemEntries blocked) "Directory.GetFileSystemEntries blocked"
                // Missing directory: a clear error, nothing created.
                let nowhere = Path.Combine(dir, "missing", "x.safetensors")
                let e = throws<VaeResearchException> (fun () -> Safetensors.Save(nowhere, []))
                Expect.stringStarts e.Message nowhere "e.Message"
                // A successful Save replaces the content.
                Safetensors.Save(path, [ NamedTensor("w", [| 1 |], [| 7.0f |]) ])
                let reloaded = Safetensors.Load path
                Expect.equal (reloaded["w"].Data) ([| 7.0f |]) "reloaded[\"w\"].Data"
                Expect.equal (Directory.GetFiles dir) ([| path |]) "Directory.GetFiles dir")
    ]
