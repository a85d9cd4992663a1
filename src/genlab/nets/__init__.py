"""Pure torch networks: nn.Modules only, no Lightning."""
