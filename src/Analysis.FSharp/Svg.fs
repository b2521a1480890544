namespace VaeResearch.Analysis

// A small SVG writer: a tree of elements rendered as well-formed, escaped XML.

open System
open System.Globalization
open System.Text
open VaeResearch

/// An SVG (XML) node.
type SvgNode =
    /// An element with attributes (in order) and children.
    | Element of name: string * attributes: (string * string) list * children: SvgNode list
    /// Character data (escaped on output).
    | Text of string

/// Builds and renders SVG documents; colours shared by the charts and the PNG images.
[<RequireQualifiedAccess>]
module Svg =

    /// A number as SVG writes it: invariant culture, at most two decimals.
    let num (v: float) =
        if Double.IsFinite v then Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture) else "0"

    /// An element.
    let element name (attributes: (string * string) list) (children: SvgNode list) = Element(name, attributes, children)

    /// A group of nodes.
    let group (attributes: (string * string) list) (children: SvgNode list) = Element("g", attributes, children)

    /// <summary>
    /// A tooltip and accessible name for the enclosing element (an SVG &lt;title&gt;).
    /// </summary>
    let title (text: string) = Element("title", [], [ Text text ])

    /// A straight line.
    let line (x1: float) (y1: float) (x2: float) (y2: float) (attributes: (string * string) list) =
        Element("line", [ "x1", num x1; "y1", num y1; "x2", num x2; "y2", num y2 ] @ attributes, [])

    /// A rectangle.
    let rect (x: float) (y: float) (width: float) (height: float) (attributes: (string * string) list) =
        Element("rect", [ "x", num x; "y", num y; "width", num (max 0.0 width); "height", num (max 0.0 height) ] @ attributes, [])

    /// A circle.
    let circle (cx: float) (cy: float) (r: float) (attributes: (string * string) list) =
        Element("circle", [ "cx", num cx; "cy", num cy; "r", num r ] @ attributes, [])

    /// A polyline through the points.
    let polyline (points: (float * float) seq) (attributes: (string * string) list) =
        let coordinates = points |> Seq.map (fun (x, y) -> $"{num x},{num y}") |> String.concat " "
        Element("polyline", [ "points", coordinates; "fill", "none" ] @ attributes, [])

    /// <summary>
    /// Text at (x, y); <paramref name="anchor"/> is start, middle or end.
    /// </summary>
    let text (x: float) (y: float) (anchor: string) (content: string) (attributes: (string * string) list) =
        Element("text", [ "x", num x; "y", num y; "text-anchor", anchor ] @ attributes, [ Text content ])

    /// A standalone SVG document of the given size in pixels, with a white background and a sans-serif font.
    let document (width: float) (height: float) (children: SvgNode list) =
        Element(
            "svg",
            [ "xmlns", "http://www.w3.org/2000/svg"
              "width", num width
              "height", num height
              "viewBox", $"0 0 {num width} {num height}"
              "font-family", "DejaVu Sans, Helvetica, Arial, sans-serif"
              "font-size", "12" ],
            rect 0.0 0.0 width height [ "fill", "white" ] :: children
        )

    let private escape (s: string) (quote: bool) =
        let sb = StringBuilder(s.Length)
        for c in s do
            match c with
            | '&' -> sb.Append "&amp;" |> ignore
            | '<' -> sb.Append "&lt;" |> ignore
            | '>' -> sb.Append "&gt;" |> ignore
            | '"' when quote -> sb.Append "&quot;" |> ignore
            // NOTE: XML 1.0 forbids most control characters even escaped; drop them.
            | c when c < ' ' && c <> '\n' && c <> '\t' && c <> '\r' -> ()
            | c -> sb.Append c |> ignore
        sb.ToString()

    /// The document as XML text (with an XML declaration), indented one element per line.
    let render (node: SvgNode) =
        let sb = StringBuilder("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        let rec write depth node =
            match node with
            | Text t -> sb.Append(escape t false) |> ignore
            | Element(name, attributes, children) ->
                sb.Append(' ', 2 * depth).Append('<').Append(name) |> ignore
                for key, value in attributes do
                    sb.Append(' ').Append(key).Append("=\"").Append(escape value true).Append('"') |> ignore
                match children with
                | [] -> sb.Append("/>\n") |> ignore
                | [ Text t ] -> sb.Append('>').Append(escape t false).Append("</").Append(name).Append(">\n") |> ignore
                | _ ->
                    sb.Append(">\n") |> ignore
                    for child in children do
                        match child with
                        | Text _ -> sb.Append(' ', 2 * depth + 2) |> ignore; write (depth + 1) child; sb.Append('\n') |> ignore
                        | _ -> write (depth + 1) child
                    sb.Append(' ', 2 * depth).Append("</").Append(name).Append(">\n") |> ignore
        write 0 node
        sb.ToString()

    /// <summary>
    /// Writes the document to <paramref name="path"/> atomically.
    /// </summary>
    let save (path: string) (node: SvgNode) = AtomicFile.WriteAllText(path, render node)

    /// Ten distinguishable colours (Tableau 10), for series and for the digits 0-9.
    let palette : (byte * byte * byte)[] =
        [| 31uy, 119uy, 180uy
           255uy, 127uy, 14uy
           44uy, 160uy, 44uy
           214uy, 39uy, 40uy
           148uy, 103uy, 189uy
           140uy, 86uy, 75uy
           227uy, 119uy, 194uy
           127uy, 127uy, 127uy
           188uy, 189uy, 34uy
           23uy, 190uy, 207uy |]

    /// A colour as #rrggbb.
    let hex ((r, g, b): byte * byte * byte) = $"#{r:x2}{g:x2}{b:x2}"

    /// The i-th palette colour (cycling) as #rrggbb.
    let colour (i: int) = hex palette[((i % palette.Length) + palette.Length) % palette.Length]
