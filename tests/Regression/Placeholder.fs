module VaeResearch.Regression.Placeholder

open NUnit.Framework

[<Test>]
let ``smoke`` () = Assert.That(1 + 1, Is.EqualTo 2)
