"""`tcpaudit remediate`: a commented sysctl.d file with the fixes (never applied)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._common import (
    ClientsNatOpt,
    ConfigOpt,
    NatIdleOpt,
    ProfileOpt,
    audit_options,
    check_output_path,
    load_snapshots,
    write_text,
)


@app.command(short_help="Write a sysctl.d file with the fixes (never applied).")
def remediate(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE",
            readable=False,
            show_default=False,
            help="Snapshot files (or collector dumps; '-' for stdin) to write fixes for.",
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="sysctl.d file to write ('-' for stdout).")
    ] = "-",
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a commented sysctl.d file with the fixes for a target's findings. Never applies anything.

    Fixes that trade one failure for another (tcp_retries2, tcp_rfc1337, conntrack's loose/liberal modes) are
    written commented out, with their price, for you to decide.
    """
    from ..audit import audit_snapshot
    from ..remediation import remediation_plan

    opts, _ = audit_options(config, None, nat_idle_timeout, profile, clients_behind_nat, None, False)
    if output != "-":
        check_output_path(output)
    targets = [audit_snapshot(s, opts) for s in load_snapshots(files)]
    plan = remediation_plan(targets)
    if output == "-":
        sys.stdout.write(plan.text)
    else:
        write_text(output, plan.text)
        typer.echo(f"tcpaudit: wrote {output}: {plan.summary()}; review it, nothing was applied", err=True)
