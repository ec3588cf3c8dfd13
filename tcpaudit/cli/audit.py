"""`tcpaudit audit`: audit saved snapshots, collector dumps or Ansible result trees offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._common import (
    BaselineOpt,
    ClientsNatOpt,
    ColorOpt,
    ConfigOpt,
    DisableOpt,
    FailOnOpt,
    FormatOpt,
    NatIdleOpt,
    NoAutoOpt,
    PolicyOpt,
    ProfileOpt,
    QuietOpt,
    ShowSuppressedOpt,
    UsageError,
    VerboseOpt,
    audit_options,
    emit,
    emit_interrupted,
    load_snapshots,
    parse_formats,
)

PathsArg = Annotated[
    list[Path],
    typer.Argument(
        metavar="PATH",
        readable=False,
        show_default=False,
        help="Snapshot JSON files, collector dumps (`tcpaudit collector-script` output), `tcpaudit host --all-netns "
        "--save-snapshot` files (every namespace one target), or a directory written by "
        "`ansible HOSTS -m script -a \"$(tcpaudit collector-script path)\" -t DIR`; '-' reads one from stdin.",
    ),
]


def _is_tree(path: Path) -> bool:
    return str(path) != "-" and path.is_dir()


@app.command(short_help="Audit saved snapshots, collector dumps or Ansible result trees offline.")
def audit(
    files: PathsArg,
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    show_suppressed: ShowSuppressedOpt = False,
    color: ColorOpt = None,
    baseline: BaselineOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Audit saved snapshots (`tcpaudit snapshot`), collector dumps, or Ansible tree directories offline.

    A directory is read as the output of Ansible's tree callback (`-t DIR`, one JSON file per host): every
    host appears once, hosts Ansible could not reach or whose task failed with Ansible's reason (exit 3),
    and the report carries the same fleet view as `tcpaudit fleet` (rules by hosts affected, drift).
    """
    from ..audit import audit_snapshot, build_report, failed_target
    from ..collect.ansible_tree import AnsibleTreeError, HostResult, read_tree
    from ..model import TargetStatus

    opts, _cfg = audit_options(
        config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable, no_auto_context, baseline, policy
    )
    formats = parse_formats(format)
    from ..netns_sweepfile import is_sweep_file

    sweeps = {p for p in files if str(p) != "-" and not _is_tree(p) and is_sweep_file(p)}
    snaps = iter(load_snapshots([p for p in files if not _is_tree(p) and p not in sweeps]))
    inputs: list[HostResult | Path] = []  # in the order given; snapshot files keep their own (host)name
    seen: dict[str, Path] = {}
    trees = False
    for p in files:
        if p in sweeps:  # `host --all-netns --save-snapshot`: one target per namespace
            inputs.append(p)
            continue
        if not _is_tree(p):
            snap = next(snaps)
            inputs.append(HostResult(snap.hostname, TargetStatus.ok, snapshot=snap))
            continue
        trees = True
        try:
            hosts = read_tree(p)
        except AnsibleTreeError as exc:
            raise UsageError(str(exc)) from None
        for h in hosts:
            if h.name in seen:
                typer.echo(f"tcpaudit: host {h.name} is in both {seen[h.name]} and {p}; using {seen[h.name]}", err=True)
                continue
            seen[h.name] = p
            inputs.append(h)

    targets: list = []
    sysctls: dict[str, dict[str, str]] = {}
    netns_summary = None
    try:
        for item in inputs:
            if isinstance(item, Path):
                netns_summary = _audit_sweep(item, opts, targets)
                continue
            h = item
            if h.snapshot is None:
                targets.append(failed_target(h.name, h.status, h.error or h.status.value))
                continue
            t = audit_snapshot(h.snapshot, opts, name=h.name)
            targets.append(t)
            sysctls[t.name] = h.snapshot.sysctls
    except KeyboardInterrupt:
        pending = [h.name for h in inputs[len(targets) :] if not isinstance(h, Path)]
        code = emit_interrupted(targets, pending, opts, formats, verbose, what="snapshot")
        raise typer.Exit(code) from None
    if trees:
        from ..fleet import DEFAULT_GROUP, SweepResult, fleet_report

        groups = {t.name: DEFAULT_GROUP for t in targets}
        report = fleet_report(SweepResult(targets=targets, groups=groups, sysctls=sysctls), opts.fail_on)
    else:
        report = build_report(targets, opts.fail_on)
    if netns_summary is not None:
        report.extra.setdefault("netns", {}).update(netns_summary)
    raise typer.Exit(emit(report, formats, verbose))


def _audit_sweep(path: Path, opts, targets: list) -> dict:
    """A saved --all-netns sweep: its namespaces as targets, as `host --all-netns` made them."""
    from ..audit import audit_netns
    from ..netns_sweepfile import SweepFileError, read_sweep

    try:
        summary, records = read_sweep(path)
        audit_netns(records, opts, into=targets)
    except SweepFileError as exc:
        raise UsageError(str(exc)) from None
    return summary
