using VaeResearch.Cli.Commands;

// NOTE: registering loads nothing; libtorch loads when a command first asks for --backend torch.
VaeResearch.Torch.TorchBackend.Register();

return CommandCatalog.Invoke(args);
