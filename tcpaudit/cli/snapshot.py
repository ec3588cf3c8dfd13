"""`tcpaudit snapshot`: save this machine's state to a file."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ._app import app
from ._common import (
    check_output_path,
    check_socket_source_env,
    sampling_notice,
    write_snapshot,
)


@app.command(short_help="Save this machine's state to a snapshot file.")
def snapshot(
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="Where to write the snapshot JSON ('-' for stdout).")
    ],
    sample: Annotated[
        float,
        typer.Option(
            "--sample",
            min=0,
            max=3600,
            metavar="SECONDS",
            show_default=False,
            help="Sample counters twice, SECONDS apart.",
        ),
    ] = 0.0,
) -> None:
    """Collect this machine into a snapshot file, for `tcpaudit audit` later or elsewhere."""
    from ..collect.local import collect_local

    check_socket_source_env()
    if output != "-":
        check_output_path(output)
    sampling_notice(sample)
    snap = collect_local(sample_s=sample)
    if output == "-":
        sys.stdout.write(snap.model_dump_json(indent=1) + "\n")
    else:
        write_snapshot(snap, output)
        typer.echo(
            f"tcpaudit: wrote {output} ({len(snap.sysctls)} sysctls, {snap.sockets.total} sockets, "
            f"{len(snap.gaps)} gaps)",
            err=True,
        )
