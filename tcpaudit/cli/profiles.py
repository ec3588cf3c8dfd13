"""`tcpaudit profiles`: the environment profiles and their idle timeouts."""

from __future__ import annotations

import typer

from ._app import app
from ._common import (
    ColorOpt,
    TableJsonOpt,
    table_or_json,
)


@app.command(short_help="List environment profiles and their idle timeouts.")
def profiles(format: TableJsonOpt = "table", color: ColorOpt = None) -> None:
    """List the environment profiles and their documented idle timeouts."""
    import json

    from .. import terminal
    from ..context import profile_summary

    format = table_or_json(format)
    rows = profile_summary()
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        text = terminal.plain_table(
            ["profile", "environment", "idle timeout (s)", "clients behind NAT"],
            [[r["id"], r["title"], r["idle_timeout"] or "-", r["clients_behind_nat"]] for r in rows],
            no_wrap=(0,),
        )
        typer.echo(text.rstrip("\n"), color=True)
