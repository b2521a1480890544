/// The Properties test program: every FsCheck property and unit test of the engine, data, models and
/// analysis layer, run in sequence (tests share process-wide engine settings).
module VaeResearch.Properties.Program

open Expecto

[<EntryPoint>]
let main argv =
    testList "Properties"
        [ RngTests.tests
          GemmTests.tests
          SafetensorsTests.tests
          DataTests.tests
          GradientTests.tests
          EngineTests.tests
          ModelTests.tests
          AnalysisTests.tests
          FrameTests.tests
          SweepTableTests.tests
          ProtocolTests.tests
          EpitomeProtocolTests.tests
          ActivityProtocolTests.tests
          SweepTests.tests
          CostTests.tests
          ElfTests.tests
          BackendTests.tests
          TorchTests.tests ]
    |> VaeResearch.TestSupport.runSuite argv
