"""`tcpaudit schema`, `rules`, `explain`: the snapshot format and the rule catalogue."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app
from ._common import (
    TableJsonOpt,
    UsageError,
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
def rules(format: TableJsonOpt = "table") -> None:
    """List the rule catalogue."""
    from ..catalogue import catalogue_json, catalogue_table

    if format not in ("table", "json"):
        raise UsageError("--format must be table or json")
    typer.echo(catalogue_json() if format == "json" else catalogue_table())


@app.command(short_help="Print everything about one rule.")
def explain(
    rule: Annotated[str, typer.Argument(metavar="RULE", show_default=False, help="Rule id, e.g. TCP001.")],
) -> None:
    """Print the full text of one rule: mechanism, when it matters, fix, references."""
    from ..catalogue import explain_rule

    typer.echo(explain_rule(rule))
