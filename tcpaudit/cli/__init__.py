"""Command line: each command parses options and calls one library function; one short module a command.

Report to stdout, logs and errors to stderr. Exit codes: tcpaudit.exitcodes.ExitCode.
Layout: _app (the typer app), _common (shared options and output), _remote (SSH options), _main (main()),
and one module per command, imported here in the order `tcpaudit --help` lists them.
"""

from __future__ import annotations

# The order of these imports is the order `tcpaudit --help` lists the commands in.
# isort: off
from . import host, snapshot, audit, catalogue, kernel, profiles, remediate  # noqa: F401 - each registers commands
from . import fleet, lint  # noqa: F401
from . import agent, completion  # noqa: F401

# isort: on
from ._app import app
from ._main import main

__all__ = ["app", "main"]
