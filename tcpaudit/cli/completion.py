"""`tcpaudit completion SHELL`: the shell completion script (bash, zsh, fish), to source or install.

The same scripts as `tcpaudit --show-completion`, without guessing the shell: for dotfiles, packages and CI.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app
from ._common import UsageError

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_TCPAUDIT_COMPLETE"  # main() passes it to the app, so `python -m tcpaudit` completes too


@app.command(short_help="Print the shell completion script (bash, zsh, fish).")
def completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", show_default=False, help="bash, zsh or fish.")],
) -> None:
    """Print the completion script for SHELL: commands, options and their values complete on TAB."""
    from typer._completion_shared import get_completion_script  # typer's own scripts (pinned in constraints/)

    name = shell.strip().lower()
    if name not in SHELLS:
        raise UsageError(f"completion: unknown shell {shell!r} (choose from {', '.join(SHELLS)})")
    typer.echo(get_completion_script(prog_name="tcpaudit", complete_var=COMPLETE_VAR, shell=name))
