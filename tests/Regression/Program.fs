/// The Regression test program: real-MNIST goldens, training and resume, end-to-end CLI runs, the
/// eVAE/mVAE variants and the analysis layer on trained runs, run in sequence.
module VaeResearch.Regression.Program

open Expecto

[<EntryPoint>]
let main argv =
    testList "Regression"
        [ MnistTests.tests
          TrainingTests.tests
          CliTests.tests
          SlurmTests.tests
          SweepTests.tests
          VariantTests.tests
          AnalysisTests.tests
          ParzenProtocolTests.tests
          BackendTrainingTests.tests ]
    |> VaeResearch.TestSupport.runSuite argv
