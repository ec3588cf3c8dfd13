"""`tcpaudit audit`: audit saved snapshots or collector dumps offline."""

from __future__ import annotations

import typer

from ._app import app
from ._common import (
    BaselineOpt,
    ClientsNatOpt,
    ConfigOpt,
    DisableOpt,
    FailOnOpt,
    FilesArg,
    FormatOpt,
    NatIdleOpt,
    NoAutoOpt,
    PolicyOpt,
    ProfileOpt,
    VerboseOpt,
    audit_options,
    emit,
    emit_interrupted,
    load_snapshots,
    parse_formats,
)


@app.command(short_help="Audit saved snapshots or collector dumps offline.")
def audit(
    files: FilesArg,
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    verbose: VerboseOpt = False,
    baseline: BaselineOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Audit saved snapshots (`tcpaudit snapshot`) or collector dumps offline."""
    from ..audit import audit_snapshot, build_report

    opts, _cfg = audit_options(
        config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable, no_auto_context, baseline, policy
    )
    formats = parse_formats(format)
    snaps = load_snapshots(files)
    targets = []
    try:
        for snap in snaps:
            targets.append(audit_snapshot(snap, opts))
    except KeyboardInterrupt:
        pending = [s.hostname for s in snaps[len(targets) :]]
        code = emit_interrupted(targets, pending, opts, formats, verbose, what="snapshot")
        raise typer.Exit(code) from None
    report = build_report(targets, opts.fail_on)
    raise typer.Exit(emit(report, formats, verbose))
