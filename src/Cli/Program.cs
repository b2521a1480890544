using System.CommandLine;
using VaeResearch.Cli;
using VaeResearch.Cli.Commands;

var root = new RootCommand("vae: variational autoencoders and the over-pruning of their latent units.");
foreach (var command in CommandCatalog.All())
    root.Subcommands.Add(command);
return root.Parse(args).Invoke();
