"""The `cskd` command line: one module per command, each with its parser next to its handler (as in accelerate's
`accelerate/commands/`), registered by `cskd_cli.build_parser`."""

from .cskd_cli import main

__all__ = ["main"]
