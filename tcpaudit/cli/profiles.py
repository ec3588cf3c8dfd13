"""`tcpaudit profiles`: the environment profiles and their idle timeouts."""

from __future__ import annotations

import typer

from ._app import app
from ._common import (
    TableJsonOpt,
    table_or_json,
)


@app.command(short_help="List environment profiles and their idle timeouts.")
def profiles(format: TableJsonOpt = "table") -> None:
    """List the environment profiles and their documented idle timeouts."""
    import json

    from tabulate import tabulate

    from ..context import profile_summary

    format = table_or_json(format)
    rows = profile_summary()
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(
            tabulate(
                [[r["id"], r["title"], r["idle_timeout"] or "-", r["clients_behind_nat"]] for r in rows],
                headers=["profile", "environment", "idle timeout (s)", "clients behind NAT"],
            )
        )
