"""`tcpaudit schema`, `rules`, `explain`: the snapshot format and the rule catalogue."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app
from ._common import (
    ColorOpt,
    TableJsonOpt,
    UsageError,
    table_or_json,
)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the snapshot format."""
    import json

    from ..snapshot import Snapshot

    # the dialect pydantic generates: JSON Schema 2020-12
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Snapshot.model_json_schema()}
    typer.echo(json.dumps(schema, indent=2))


@app.command()
def rules(format: TableJsonOpt = "table", color: ColorOpt = None) -> None:
    """List the rule catalogue."""
    from ..catalogue import catalogue_json, catalogue_table

    format = table_or_json(format)
    typer.echo(catalogue_json() if format == "json" else catalogue_table(), color=True)  # colour: tcpaudit.terminal


@app.command(
    short_help="Print everything about one rule or known kernel issue.",
)
def explain(
    rule: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            show_default=False,
            help="Rule id (TCP001) or known kernel issue id (KI-CT-CHALLENGE-ACK-RST, from `tcpaudit kernel`).",
        ),
    ],
    color: ColorOpt = None,
) -> None:
    """Print the full text of one rule (mechanism, when it matters, fix, references) or of a known kernel
    issue (affected range, fix, backports, sources)."""
    import sys

    from .. import terminal

    if rule.strip().upper().startswith("KI-"):
        from ..kernel.summary import UnknownIssueError, explain_issue

        try:
            typer.echo(explain_issue(rule), nl=False)
        except UnknownIssueError as exc:
            raise UsageError(str(exc)) from None
        return
    from ..catalogue import explain_rule

    text = explain_rule(rule)
    if sys.stdout.isatty():  # wrapped to the terminal; a pipe or file gets the Markdown as it is
        lines = text.rstrip("\n").split("\n")
        text = terminal.render([terminal.text(line) for line in lines], terminal.width(), False).rstrip("\n") + "\n"
    typer.echo(text)
