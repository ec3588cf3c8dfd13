"""`tcpaudit host`: audit this machine, or one remote host over SSH."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _remote as _r
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
    check_output_path,
    emit,
    emit_interrupted,
    parse_formats,
    sampling_notice,
    write_snapshot,
)


@app.command(short_help="Audit this machine, or one remote host over SSH.")
def host(
    destination: Annotated[
        str | None,
        typer.Argument(
            metavar="HOST", show_default=False, help="[user@]host[:port] to audit over SSH; omit to audit this machine."
        ),
    ] = None,
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    sample: Annotated[
        float,
        typer.Option(
            "--sample",
            min=0,
            max=3600,
            metavar="SECONDS",
            show_default=False,
            help="Sample counters twice, SECONDS apart, and report rates.",
        ),
    ] = 0.0,
    save_snapshot: Annotated[
        str | None, typer.Option("--save-snapshot", metavar="FILE", help="Also save the snapshot to FILE.")
    ] = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    show_suppressed: ShowSuppressedOpt = False,
    color: ColorOpt = None,
    baseline: BaselineOpt = None,
    all_netns: Annotated[
        bool,
        typer.Option(
            "--all-netns",
            help="Audit every network namespace of this machine (pods, containers, `ip netns`), each as a "
            "target; needs root (CAP_SYS_ADMIN and CAP_SYS_PTRACE). With HOST: of that host, over the same "
            "one SSH session (root or --sudo, and nsenter, on the host).",
        ),
    ] = False,
    policy: PolicyOpt = None,
    port: _r.PortOpt = None,
    user: _r.UserOpt = None,
    ssh_config: _r.SSHConfigOpt = None,
    known_hosts: _r.KnownHostsOpt = None,
    accept_new: _r.AcceptNewOpt = False,
    sudo: _r.SudoOpt = False,
    identity: _r.IdentityOpt = None,
    password_prompt: _r.PasswordPromptOpt = False,
    connect_timeout: _r.ConnectTimeoutOpt = None,
    command_timeout: _r.CommandTimeoutOpt = None,
) -> None:
    """Audit this machine (or one remote host over SSH) and report risks with evidence and fixes."""
    ssh = {k: v for k, v in locals().items() if k in _r.SSH_OPTION_NAMES}
    opts, _cfg = audit_options(
        config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable, no_auto_context, baseline, policy
    )
    formats = parse_formats(format)
    if save_snapshot:
        check_output_path(save_snapshot)
    if destination:
        from ._remote import audit_remote_host

        save = Path(save_snapshot) if save_snapshot else None
        try:
            code = audit_remote_host(destination, opts, formats, sample, save, verbose, all_netns=all_netns, **ssh)
        except KeyboardInterrupt:
            code = emit_interrupted([], [_destination_name(destination, ssh)], opts, formats, verbose)
        raise typer.Exit(code)
    if _r.ssh_options_given(ssh):
        raise UsageError(
            f"{', '.join(_r.ssh_options_given(ssh))}: SSH options need a remote host: tcpaudit host [user@]HOST ..."
        )
    if all_netns:
        raise typer.Exit(_all_netns(opts, formats, verbose, sample, save_snapshot))
    from ..audit import audit_snapshot, build_report
    from ..collect.local import collect_local

    sampling_notice(sample)
    try:
        snap = collect_local(sample_s=sample)
    except KeyboardInterrupt:
        import socket

        raise typer.Exit(emit_interrupted([], [socket.gethostname()], opts, formats, verbose)) from None
    if save_snapshot:
        write_snapshot(snap, save_snapshot)
    report = build_report([audit_snapshot(snap, opts)], opts.fail_on)
    raise typer.Exit(emit(report, formats, verbose))


def _all_netns(
    opts, formats: list[tuple[str, str | None]], verbose: bool, sample: float = 0.0, save: str | None = None
) -> int:
    """`--all-netns`: every namespace one target, in one report (tcpaudit.collect.netns); `save`: the whole
    sweep in one file (tcpaudit.netns_sweepfile) that `tcpaudit audit` reads back."""
    import socket

    from ..audit import audit_netns, build_report, failed_target
    from ..collect.netns import NetnsUnavailable, collect_all_netns, enumerate_netns, name_entries, target_names
    from ..exitcodes import ExitCode
    from ..model import TargetStatus
    from ._common import die

    try:
        enum = enumerate_netns()
    except NetnsUnavailable as exc:
        raise die(f"--all-netns: cannot enumerate network namespaces: {exc}", ExitCode.COLLECTION) from None
    name_entries(enum)
    targets: list = []
    interrupted = False
    captures = collect_all_netns(enum, sample_s=sample)
    writer = None
    if save:
        from ..netns_sweepfile import SweepWriter

        writer = SweepWriter(save, enum.summary())
        captures = writer.tee(captures)
    try:
        audit_netns(captures, opts, into=targets)
    except NetnsUnavailable as exc:
        if writer is not None:
            writer.abort()  # nothing was read: no file
        raise die(f"--all-netns: cannot enter network namespaces: {exc}", ExitCode.COLLECTION) from None
    except KeyboardInterrupt:
        interrupted = True
        typer.echo("tcpaudit: interrupted; the report covers the namespaces done", err=True)
        names = target_names(enum, targets[0].name if targets else socket.gethostname())
        for e in enum.entries[len(targets) :]:
            kind = "host" if e.info is not None and e.info.is_host else "netns"
            why = "interrupted before this namespace was done"
            targets.append(failed_target(names[e.inode], TargetStatus.interrupted, why, kind, e.info))
    finally:
        if writer is not None:
            writer.close()  # also when interrupted: the namespaces done are saved
    report = build_report(targets, opts.fail_on, interrupted=interrupted)
    report.extra.setdefault("netns", {}).update(enum.summary())  # beside build_report's "ns001" groups
    return emit(report, formats, verbose)


def _destination_name(destination: str, ssh: dict) -> str:
    """The report name of a remote host (as audit_remote_host names it), for an interrupted collection."""
    try:
        from ..collect.ssh import parse_destination

        return parse_destination(destination, user=ssh.get("user"), port=ssh.get("port")).name
    except Exception:  # noqa: BLE001 - only a name for the report
        return destination
