Console.WriteLine("vae");
