namespace VaeResearch.Analysis

// Image grids as PNG through the core's ImageGrid and Png writers: reconstructions (inputs above
// outputs), samples from the prior, per-epitome samples (eVAE), the 2-D latent scatter coloured by
// label, and the decoded manifold lattice (activity paper, section 4; eVAE paper, Figures 5, 6, 9).

open System
open VaeResearch
open VaeResearch.Engine
open VaeResearch.IO
open VaeResearch.Models
open VaeResearch.Training

/// PNG figures of a model: reconstructions, samples, epitomes, latent scatter and manifold lattice.
[<RequireQualifiedAccess>]
module Images =

    /// Side of an image in pixels (MNIST and the synthetic set are 28 x 28).
    [<Literal>]
    let Side = 28

    /// Probabilities of the lattice's first and last rows and columns: linspace(0.05, 0.95, steps)
    /// through the Gaussian inverse CDF (Kingma and Welling 2014, Figure 4).
    let LatticeProbabilities = 0.05, 0.95

    /// The standard normal inverse CDF Phi^-1(p) for p in (0, 1), by Acklam's rational approximation
    /// (relative error below 1.2e-9); -inf at 0 and +inf at 1.
    let inverseNormalCdf (p: float) =
        if Double.IsNaN p || p < 0.0 || p > 1.0 then invalidArg (nameof p) $"a probability must lie in [0, 1], got {p}"
        let a = [| -39.69683028665376; 220.9460984245205; -275.9285104469687; 138.3577518672690; -30.66479806614716; 2.506628277459239 |]
        let b = [| -54.47609879822406; 161.5858368580409; -155.6989798598866; 66.80131188771972; -13.28068155288572 |]
        let c = [| -0.007784894002430293; -0.3223964580411365; -2.400758277161838; -2.549732539343734; 4.374664141464968; 2.938163982698783 |]
        let d = [| 0.007784695709041462; 0.3224671290700398; 2.445134137142996; 3.754408661907416 |]
        let tail q =
            // NOTE: the tails use q = sqrt(-2 log p), which keeps full relative accuracy down to p ~ 1e-300.
            (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
        let low = 0.02425
        if p = 0.0 then Double.NegativeInfinity
        elif p = 1.0 then Double.PositiveInfinity
        elif p < low then tail (sqrt (-2.0 * log p))
        elif p > 1.0 - low then -(tail (sqrt (-2.0 * log (1.0 - p))))
        else
            let q = p - 0.5
            let r = q * q
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)

    /// <summary>
    /// Reconstructions (eVAE paper, Figure 9): the first <paramref name="count"/> images as the model sees them fill
    /// whole rows of <paramref name="columns"/>, then their reconstructions E[x | z = E_q[z|x]] start on a fresh row.
    /// </summary>
    let reconstructions (model: IGenerativeModel) (images: float32[]) (count: int) (columns: int) (path: string) =
        if count < 1 || columns < 1 then raise (VaeResearchException($"reconstructions need n >= 1 and columns >= 1, got {count} and {columns}"))
        let dim = model.Input
        let output = Evaluation.Reconstructions(model, images, count)
        let rows = (count + columns - 1) / columns
        let grid = Array.zeroCreate<float32> (2 * rows * columns * dim)
        Array.blit images 0 grid 0 (count * dim)
        Array.blit output 0 grid (rows * columns * dim) (count * dim)
        ImageGrid.SavePng(path, ReadOnlySpan grid, 2 * rows * columns, Side, Side, Nullable columns)

    /// <paramref name="count"/> samples from the prior (decoder means), drawn as <c>vae sample --seed SEED</c> draws them.
    let samples (model: IGenerativeModel) (count: int) (seed: uint64) (path: string) =
        if count < 1 then raise (VaeResearchException($"samples need n >= 1, got {count}"))
        let values = Evaluation.Samples(model, count, Rng(seed, TrainStreams.Tool 2u))
        ImageGrid.SavePng(path, ReadOnlySpan values, count, Side, Side, Nullable())

    /// <summary>
    /// Per-epitome samples (eVAE paper, Figure 5 and 6): row y holds <paramref name="perGroup"/> decoder means for
    /// z ~ N(0, I) with epitome (or mixture component) y fixed. Models without groups are an error.
    /// </summary>
    let epitomeSamples (model: IGenerativeModel) (perGroup: int) (seed: uint64) (path: string) =
        if model.Groups < 2 then raise (VaeResearchException("per-epitome samples need an eVAE or mVAE (the model has no epitomes)"))
        if perGroup < 1 then raise (VaeResearchException($"samples per epitome must be >= 1, got {perGroup}"))
        let count = model.Groups * perGroup
        let groups = Array.init count (fun i -> i / perGroup)
        let rng = Rng(seed, TrainStreams.Tool 6u)
        let z = Array.zeroCreate<float32> (count * model.Latent)
        rng.FillNormal(Span z)
        let values = model.Evaluator.DecodeMeans(z, groups)
        ImageGrid.SavePng(path, ReadOnlySpan values, count, Side, Side, Nullable perGroup)

    /// <summary>
    /// The decoded manifold lattice (activity paper, Figure 4.3): units <paramref name="unitX"/> and
    /// <paramref name="unitY"/> take Phi^-1 of linspace(0.05, 0.95, steps) (z_x grows to the right, z_y upwards),
    /// the other units are 0, decoded through <paramref name="group"/> (0 for a VAE).
    /// </summary>
    let manifoldOf (model: IGenerativeModel) (unitX: int) (unitY: int) (group: int) (steps: int) (path: string) =
        if steps < 2 then raise (VaeResearchException($"the lattice needs at least 2 steps, got {steps}"))
        for u in [ unitX; unitY ] do
            if u < 0 || u >= model.Latent then raise (VaeResearchException($"unit {u} is outside the latent units [0, {model.Latent})"))
        if group < 0 || group >= model.Groups then raise (VaeResearchException($"group {group} is outside [0, {model.Groups})"))
        let p0, p1 = LatticeProbabilities
        let values = Array.init steps (fun i -> inverseNormalCdf (p0 + (p1 - p0) * float i / float (steps - 1)))
        let count = steps * steps
        let data = Array.zeroCreate<float32> (count * model.Latent)
        for row in 0 .. steps - 1 do
            for column in 0 .. steps - 1 do
                let i = row * steps + column
                data[i * model.Latent + unitX] <- float32 values[column]
                data[i * model.Latent + unitY] <- float32 values[steps - 1 - row]
        let decoded = model.Evaluator.DecodeMeans(data, Array.create count group)
        ImageGrid.SavePng(path, ReadOnlySpan decoded, count, Side, Side, Nullable steps)

    /// The manifold lattice of a model with a 2-D latent space (units 0 and 1, group 0).
    let manifold (model: IGenerativeModel) (steps: int) (path: string) =
        if model.Latent <> 2 then raise (VaeResearchException($"the manifold lattice needs a 2-D latent space, the model has D = {model.Latent}"))
        manifoldOf model 0 1 0 steps path

    /// The extent E of a scatter: the square [-E, E]^2 holds every point (E a whole number, at least 1).
    let scatterExtent (points: (float * float)[]) =
        points |> Array.fold (fun m (x, y) -> max m (max (abs x) (abs y))) 1.0 |> ceil

    /// RGB pixels [size, size, 3] of a 2-D scatter: white background, grey grid at whole numbers, darker axes at 0,
    /// and a small cross per point in the label's palette colour (later points on top).
    let scatterPixels (points: (float * float)[]) (labels: int[]) (size: int) : byte[] =
        if points.Length <> labels.Length then invalidArg (nameof labels) $"{points.Length} points but {labels.Length} labels"
        let extent = scatterExtent points
        let rgb = Array.create (size * size * 3) 255uy
        let put x y (r, g, b) =
            if x >= 0 && x < size && y >= 0 && y < size then
                let i = 3 * (y * size + x)
                rgb[i] <- r
                rgb[i + 1] <- g
                rgb[i + 2] <- b
        let toPixel (v: float) = int (round ((v + extent) / (2.0 * extent) * float (size - 1)))
        for k in int -extent .. int extent do
            let shade = if k = 0 then (150uy, 150uy, 150uy) else (225uy, 225uy, 225uy)
            let p = toPixel (float k)
            for i in 0 .. size - 1 do
                put p i shade
                put i (size - 1 - p) shade
        for (x, y), label in Array.zip points labels do
            let px, py = toPixel x, size - 1 - toPixel y
            let colour = Svg.palette[((label % 10) + 10) % 10]
            for dx, dy in [ 0, 0; 1, 0; -1, 0; 0, 1; 0, -1 ] do
                put (px + dx) (py + dy) colour
        rgb

    /// <summary>
    /// The 2-D latent scatter (activity paper, Figure 4.2) as a <paramref name="size"/>-pixel square PNG: posterior
    /// means [count, 2] coloured by label (palette order 0-9); see <see cref="scatterPixels"/>.
    /// </summary>
    let latentScatter (means: float32[]) (labels: int[]) (count: int) (size: int) (path: string) =
        if means.Length < 2 * count then invalidArg (nameof means) $"{means.Length} values cannot hold {count} 2-D points"
        let points = Array.init count (fun i -> float means[2 * i], float means[2 * i + 1])
        Png.SaveRgb(path, ReadOnlySpan(scatterPixels points labels[.. count - 1] size), size, size)
