module VaeResearch.Properties.Placeholder

open NUnit.Framework

[<Test>]
let ``smoke`` () = Assert.That(VaeResearch.Engine.Smoke.Answer, Is.EqualTo 42)
