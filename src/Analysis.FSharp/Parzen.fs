namespace VaeResearch.Analysis

// The Parzen-window log-likelihood of generated samples (Breuleux et al. 2011; the protocol of
// Goodfellow et al. 2014 that the eVAE paper's Tables 1, 3 and 4 and Figure 7 use): Gaussian kernels
// of width sigma on m samples s_i,
//
//     log p(x) = logsumexp_i ( -||x - s_i||^2 / (2 sigma^2) ) - log m - (d/2) log(2 pi sigma^2),
//
// sigma chosen from logspace(-1, 0, 10) by the mean log-likelihood of validation images, then the mean
// over the test images with its standard error.

open System
open System.Numerics.Tensors
open VaeResearch
open VaeResearch.Data
open VaeResearch.Engine
open VaeResearch.IO
open VaeResearch.Training

/// Points in R^Dim, row-major [Count, Dim] float32: generated samples or images.
type Points =
    { /// The coordinates, row-major [Count, Dim].
      Values: float32[]
      /// Number of points.
      Count: int
      /// Dimension of each point.
      Dim: int }

/// <summary>
/// Where the protocol's sigma-validation images lie in a run's training set, and how much of it the run trained on.
/// </summary>
type ValidationRange =
    { /// Index of the first validation image in the data set's training images (MNIST: 50,000).
      First: int
      /// Validation images (<c>--validation</c>).
      Count: int
      /// The run trained on training images [0, Trained): its train_subset, else every training image.
      Trained: int }

    /// Whether the run trained on some of the validation images (Goodfellow et al. choose sigma on unseen images).
    member r.Overlaps = r.Trained > r.First

/// The Parzen-window estimator with GEMM distances and a double-precision log-sum-exp.
[<RequireQualifiedAccess>]
module Parzen =

    /// The protocol's sigma grid: logspace(-1, 0, 10), i.e. 10^(-1 + i/9) for i = 0..9.
    let SigmaGrid : float[] = Array.init 10 (fun i -> Math.Pow(10.0, -1.0 + float i / 9.0))

    /// Generated samples the protocol uses.
    [<Literal>]
    let DefaultSamples = 10_000

    /// Validation images of the sigma search.
    [<Literal>]
    let DefaultValidation = 1_000

    /// Validation images are taken from the last this many training images (MNIST's usual 50k/10k split).
    [<Literal>]
    let ValidationPool = 10_000

    /// Distance-matrix entries per block (16 MB of float32): bounds memory for any number of points.
    [<Literal>]
    let BlockEntries = 4_000_000

    /// Points from row-major values; the sizes must match.
    let points (values: float32[]) (count: int) (dim: int) : Points =
        if count < 1 || dim < 1 then invalidArg (nameof count) $"points need a positive count and dimension, got {count} x {dim}"
        if values.Length <> count * dim then invalidArg (nameof values) $"{values.Length} values for {count} points of dimension {dim}"
        { Values = values; Count = count; Dim = dim }

    /// The grey levels of a data set's images as points.
    let ofDataset (data: Dataset) : Points = points data.Images data.Count data.Dim

    /// Rows of a float32 (or float64) .npy file [n, d] or [n, h, w] as points (an image is flattened).
    let ofNpy (path: string) : Points =
        let struct (values, shape) = Npy.Load path
        if shape.Length < 2 || Array.contains 0 shape then
            raise (FileFormatException(path, "shape", "[n, d] or [n, h, w] with n, d > 0 (one sample per row)", $"""({String.Join(", ", shape)})"""))
        points values shape[0] (values.Length / shape[0])

    let private checkSigma (sigma: float) =
        if not (Double.IsFinite sigma) || sigma <= 0.0 then
            raise (VaeResearchException($"sigma must be a positive number, got {sigma}"))

    /// <summary>
    /// log p_sigma(x_j) under the Parzen window on <paramref name="samples"/> for every point x_j of
    /// <paramref name="data"/> and every sigma: result[k][j] for sigmas[k].
    /// </summary>
    /// <remarks>
    /// Squared distances ||x||^2 + ||s||^2 - 2 x.s come from one sgemm per block of points (shared by all
    /// sigmas), after centring both sets on the samples' mean, which shrinks the norms and with them the
    /// float32 cancellation; the norms and the log-sum-exp over the samples are in double. Rows of a block
    /// are processed in parallel. Accuracy: the float32 dot products put an error of order sqrt(d) 2^-24 |x.s|
    /// (at worst d^2 2^-24 r^2, r the largest centred coordinate) on each squared distance, which moves a
    /// log-density by that over 2 sigma^2. Measured on MNIST against a double-precision oracle: at most
    /// 0.001 nats at sigma = 0.1 and 0.0002 nats at sigma = 0.22, far below the standard errors.
    /// </remarks>
    let logDensities (samples: Points) (data: Points) (sigmas: float[]) : float[][] =
        if samples.Dim <> data.Dim then
            raise (VaeResearchException($"samples have dimension {samples.Dim} but the images have {data.Dim}"))
        Array.iter checkSigma sigmas
        let m, n, d = samples.Count, data.Count, samples.Dim
        let centre = Array.zeroCreate<float> d
        for i in 0 .. m - 1 do
            for c in 0 .. d - 1 do
                centre[c] <- centre[c] + float samples.Values[i * d + c]
        for c in 0 .. d - 1 do
            centre[c] <- centre[c] / float m
        let centred (p: Points) =
            let values = Array.zeroCreate<float32> p.Values.Length
            let norms = Array.zeroCreate<float> p.Count
            for i in 0 .. p.Count - 1 do
                let mutable norm = 0.0
                for c in 0 .. d - 1 do
                    let v = float32 (float p.Values[i * d + c] - centre[c])
                    values[i * d + c] <- v
                    norm <- norm + float v * float v
                norms[i] <- norm
            values, norms
        let s, sNorm = centred samples
        let x, xNorm = centred data
        let coefficients = sigmas |> Array.map (fun sigma -> 1.0 / (2.0 * sigma * sigma))
        let constants = sigmas |> Array.map (fun sigma -> -log (float m) - 0.5 * float d * log (2.0 * Math.PI * sigma * sigma))
        let result = Array.init sigmas.Length (fun _ -> Array.zeroCreate<float> n)
        let block = max 1 (min n (BlockEntries / m))
        let dots = Array.zeroCreate<float32> (block * m)
        for start in 0 .. block .. n - 1 do
            let rows = min block (n - start)
            // dots[r, i] = -2 x_(start + r) . s_i
            Gemm.Sgemm(false, true, rows, m, d, -2.0f, ReadOnlySpan(x, start * d, rows * d), d, ReadOnlySpan s, d, 0.0f, Span(dots, 0, rows * m), m)
            Parallelism.For(rows, 8, fun lo hi ->
                let distance = Array.zeroCreate<float> m
                let terms = Array.zeroCreate<float> m
                for r in lo .. hi - 1 do
                    let j = start + r
                    TensorPrimitives.ConvertChecked<float32, float>(ReadOnlySpan(dots, r * m, m), Span distance)
                    TensorPrimitives.Add(ReadOnlySpan distance, ReadOnlySpan sNorm, Span distance)
                    TensorPrimitives.Add(ReadOnlySpan distance, xNorm[j], Span distance)
                    // NOTE: rounding can make a tiny squared distance negative; it is a distance, so clamp at 0.
                    TensorPrimitives.Max(ReadOnlySpan distance, 0.0, Span distance)
                    let nearest = TensorPrimitives.Min(ReadOnlySpan distance)
                    for k in 0 .. sigmas.Length - 1 do
                        // NOTE: log-sum-exp with the nearest sample factored out: every exponent is <= 0 and the
                        // largest term is exactly 1, so the sum neither overflows nor underflows to 0.
                        TensorPrimitives.Subtract(ReadOnlySpan distance, nearest, Span terms)
                        TensorPrimitives.Multiply(ReadOnlySpan terms, -coefficients[k], Span terms)
                        TensorPrimitives.Exp(ReadOnlySpan terms, Span terms)
                        result[k][j] <- -nearest * coefficients[k] + log (TensorPrimitives.Sum(ReadOnlySpan terms)) + constants[k])
        result

    /// <summary>
    /// log p_sigma(x_j) for every point of <paramref name="data"/> under the window on <paramref name="samples"/>.
    /// </summary>
    let logDensity (samples: Points) (data: Points) (sigma: float) : float[] = (logDensities samples data [| sigma |])[0]

    /// <summary>
    /// (sigma, mean validation log-likelihood) for every sigma of <paramref name="grid"/>.
    /// </summary>
    let searchSigma (samples: Points) (validation: Points) (grid: float[]) : (float * float)[] =
        logDensities samples validation grid |> Array.map Array.average |> Array.zip grid

    /// The sigma with the highest mean validation log-likelihood (NaN scores lose; ties go to the smaller sigma).
    let bestSigma (search: (float * float)[]) : float * float =
        if search.Length = 0 then invalidArg (nameof search) "the sigma grid is empty"
        search |> Array.reduce (fun (s1, l1) (s2, l2) -> if l2 > l1 || (Double.IsNaN l1 && not (Double.IsNaN l2)) then s2, l2 else s1, l1)

    /// <summary>
    /// The protocol: sigma from <paramref name="sigma"/> or, when None, the grid search over <see cref="SigmaGrid"/>
    /// on <paramref name="validation"/>; then the mean test log-likelihood with its standard error.
    /// </summary>
    let evaluate (samples: Points) (validation: Points) (test: Points) (sigma: float option) : ParzenResult =
        let grid = match sigma with Some s -> [| s |] | None -> SigmaGrid
        let search = searchSigma samples validation grid
        let chosen, validationLl = bestSigma search
        let scores = logDensity samples test chosen
        let estimate = Estimate.Of scores
        { Sigma = chosen
          LogLikelihood = estimate.Mean
          StandardError = estimate.StandardError
          ValidationLogLikelihood = validationLl
          NSamples = samples.Count
          NTest = test.Count
          NValidation = validation.Count
          SigmaSearch = search
          ValidationInTraining = false }

    /// <summary>
    /// n samples from a trained run's prior, as <c>vae sample --seed SEED</c> draws them: y uniform (eVAE, mVAE),
    /// z ~ N(0, I), and the decoder means E[x|z] (for a Bernoulli decoder the pixel probabilities, as the protocol does).
    /// </summary>
    let samplesOfRun (trained: TrainedRun) (n: int) (seed: uint64) : Points =
        if n < 1 then raise (VaeResearchException($"--n must be >= 1, got {n}"))
        let values = Evaluation.Samples(trained.Model, n, Rng(seed, TrainStreams.Tool 2u))
        points values n trained.Model.Input

    /// <summary>
    /// The training-set range of the <paramref name="validation"/> images <c>referenceData</c> takes for a run of
    /// <paramref name="config"/>, with the images the run trained on: MNIST's validation images start at training
    /// image 50,000 (60,000 - <see cref="ValidationPool"/>), the synthetic set's are its last <paramref name="validation"/>.
    /// </summary>
    let validationRange (config: TrainConfig) (validation: int) : ValidationRange =
        let pool = if config.Dataset = SyntheticData.Name then SyntheticData.DefaultTrainCount else Mnist.TrainCount
        let first = if config.Dataset = SyntheticData.Name then pool - validation else pool - ValidationPool
        { First = first
          Count = validation
          Trained = match Option.ofNullable config.TrainSubset with Some n -> min n pool | None -> pool }

    /// <summary>
    /// Goodfellow et al.'s condition that sigma is chosen on images the model never trained on, for the run in
    /// <paramref name="runPath"/>: true when its validation images were in its training set, which is an error unless
    /// <paramref name="allow"/> (<c>--allow-trained-validation</c>); false when the protocol holds.
    /// </summary>
    /// <exception cref="VaeResearchException">The run trained on its validation images and <paramref name="allow"/> is false.</exception>
    let checkValidation (runPath: string) (config: TrainConfig) (validation: int) (allow: bool) : bool =
        let range = validationRange config validation
        if range.Overlaps && not allow then
            let subset = match Option.ofNullable config.TrainSubset with Some n -> string n | None -> "not set: every training image"
            raise (VaeResearchException(
                $"{runPath}: trained on training images 0-{range.Trained - 1} (train_subset {subset}), which include the " +
                $"validation images {range.First}-{range.First + range.Count - 1} that choose sigma; Goodfellow et al.'s protocol " +
                $"chooses sigma on images the model never trained on. Train with --train-subset {range.First}, or pass " +
                "--allow-trained-validation to score it anyway (parzen.json then records validation_in_training)"))
        range.Overlaps

    /// The estimate marked as having chosen sigma on images the model trained on (<c>validation_in_training</c>).
    let inTraining (result: ParzenResult) : ParzenResult = { result with ValidationInTraining = true }

    /// <summary>
    /// The protocol's reference images in grey levels, of the data set <paramref name="config"/> names (None: MNIST):
    /// <paramref name="validation"/> validation images and the whole test set. MNIST's validation images are the
    /// first of the last 10,000 training images (training images 50,000 on); the synthetic set's are the last
    /// <paramref name="validation"/> training examples.
    /// </summary>
    let referenceData (config: TrainConfig option) (dataDirectory: string option) (validation: int) : Points * Points =
        if validation < 1 || validation > ValidationPool then
            raise (VaeResearchException($"--validation must be between 1 and {ValidationPool}, got {validation}"))
        let splits =
            match config with
            | Some c when c.Dataset = SyntheticData.Name -> SyntheticData.Generate(c.Seed, c.SyntheticDimension, validation = validation)
            | _ -> Mnist.Load(Option.toObj dataDirectory, ValidationPool, null)
        let valid = (nonNull splits.Validation).Take validation
        ofDataset valid, ofDataset splits.Test
