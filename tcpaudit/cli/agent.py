"""`tcpaudit agent`: audit this machine every --interval and write the result atomically (README, "The agent")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._common import (
    BaselineOpt,
    ClientsNatOpt,
    ConfigOpt,
    DisableOpt,
    FailOnOpt,
    FormatOpt,
    NatIdleOpt,
    NoAutoOpt,
    ProfileOpt,
    UsageError,
    audit_options,
    parse_formats,
)


@app.command(short_help="Audit this machine every --interval, writing e.g. node_exporter's textfile.")
def agent(
    format: FormatOpt = None,
    interval: Annotated[
        str, typer.Option("--interval", metavar="DURATION", help="Time between runs: 10m, 60s, 1h (default 10m).")
    ] = "10m",
    jitter: Annotated[
        str,
        typer.Option("--jitter", metavar="DURATION", help="Add a random 0..DURATION to each sleep (default 0)."),
    ] = "0",
    all_netns: Annotated[
        bool, typer.Option("--all-netns", help="Audit every network namespace of this machine (needs root).")
    ] = False,
    snapshot: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            metavar="FILE",
            readable=False,
            help="Audit this saved snapshot each run instead of collecting.",
        ),
    ] = None,
    runs: Annotated[
        int | None, typer.Option("--runs", min=1, metavar="N", help="Stop after N runs (default: until SIGTERM).")
    ] = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    baseline: BaselineOpt = None,
) -> None:
    """Audit this machine, write each --format FORMAT:PATH atomically, sleep, repeat; SIGTERM ends it (exit 0).

    A failed run keeps the last good findings in the file with tcpaudit_run_success 0."""
    from ..agent import Agent, AgentConfig, parse_duration

    opts, _cfg = audit_options(
        config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable, no_auto_context, baseline
    )
    if not format:
        raise UsageError("tcpaudit agent needs an output: --format prometheus:PATH")
    outputs = []
    for fmt, path in parse_formats(format):
        if path is None:
            raise UsageError("tcpaudit agent writes files only: --format prometheus:PATH")
        outputs.append((fmt, path))
    if all_netns and snapshot is not None:
        raise UsageError("--all-netns and --snapshot exclude each other")
    try:
        interval_s, jitter_s = parse_duration(interval), parse_duration(jitter)
    except ValueError as exc:
        raise UsageError(f"--interval/--jitter: {exc}") from None
    cfg = AgentConfig(
        outputs=outputs,
        interval_s=interval_s,
        jitter_s=jitter_s,
        opts=opts,
        all_netns=all_netns,
        snapshot=snapshot,
        max_runs=runs,
    )
    raise typer.Exit(Agent(cfg).run())
