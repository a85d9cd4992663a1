"""genlab's subcommands besides training: each parses its arguments before any heavy import."""
