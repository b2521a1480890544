using VaeResearch.Cli.Commands;

return CommandCatalog.Invoke(args);
